"""Secrets Foyer issues and checks: staff passwords, API and session tokens, device passwords.

Pure functions over bytes and strings. Passwords are hashed with scrypt (stdlib,
memory-hard, RFC 7914); random tokens carry 256 bits of entropy, so a plain SHA-256
is enough to store them (no dictionary to attack).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import Final

# OWASP's scrypt floor (N=2^17 would cost ~128 MiB per login on a 2-core server).
SCRYPT_N: Final = 2**14
SCRYPT_R: Final = 8
SCRYPT_P: Final = 1
SALT_BYTES: Final = 16
TOKEN_BYTES: Final = 32
MIN_PASSWORD_LEN: Final = 10


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """`scrypt$N$r$p$salt$hash`, self-describing so the cost can be raised later."""
    salt = salt or secrets.token_bytes(SALT_BYTES)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    """Constant-time check against a `hash_password` string; malformed hashes never match."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        computed = hashlib.scrypt(
            password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p)
        )
    except ValueError:
        return False
    return hmac.compare_digest(computed, base64.b64decode(digest))


def new_token(prefix: str) -> str:
    """A bearer secret such as `foyer_at_...`; the prefix lets secret scanners spot leaks."""
    return f"{prefix}_{secrets.token_urlsafe(TOKEN_BYTES)}"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_device_password() -> str:
    """24 URL-safe characters (144 bits): typed on a phone only in an emergency."""
    return secrets.token_urlsafe(18)


def check_password_strength(password: str) -> None:
    if len(password) < MIN_PASSWORD_LEN:
        raise ValueError(f"password must have at least {MIN_PASSWORD_LEN} characters")
