"""Hashing and checking of the secrets Foyer issues."""

from __future__ import annotations

import pytest

from core.registry.secrets import (
    check_password_strength,
    hash_password,
    new_device_password,
    new_token,
    token_hash,
    verify_password,
)


def test_a_password_verifies_against_its_hash_and_nothing_else() -> None:
    stored = hash_password("a long passphrase")
    assert "a long passphrase" not in stored
    assert verify_password("a long passphrase", stored)
    assert not verify_password("a long passphrase!", stored)


def test_the_same_password_hashes_differently_each_time() -> None:
    assert hash_password("a long passphrase") != hash_password("a long passphrase")


@pytest.mark.parametrize(
    "stored", ["", "plain", "md5$x$y", "scrypt$1$2$3$!!$!!", "scrypt$a$b$c$d$e"]
)
def test_malformed_hashes_never_match(stored: str) -> None:
    assert not verify_password("anything at all", stored)


def test_tokens_are_unique_prefixed_and_hashed_to_hex() -> None:
    a, b = new_token("foyer_at"), new_token("foyer_at")
    assert a != b and a.startswith("foyer_at_")
    assert len(token_hash(a)) == 64 and token_hash(a) != token_hash(b)
    assert len(new_device_password()) == 24


def test_short_staff_passwords_are_refused() -> None:
    with pytest.raises(ValueError, match="at least"):
        check_password_strength("short")
