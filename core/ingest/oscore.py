"""Per-device CoAP keys, issued at commissioning and checked by the CoAP server.

OSCORE (RFC 8613) contexts, and a DTLS pre-shared key (RFC 7252 §9.1.3.1) per device for
clients that speak coaps:// instead (libcoap's coap-client).

Layout under `directory` (0700), one aiocoap FilesystemSecurityContext per device:

    state.json                      next id to allocate, generation of the key set
    lock                            serialises issue/revoke between processes (CLI, server)
    devices/<device_id>/secret.json the server side of the context (0600)
    devices/<device_id>/dtls.json   the device's DTLS pre-shared key, identity = device_id (0600)
    devices/<device_id>/sequence.json  sender sequence number and replay window, written
                                    by aiocoap so that both survive a restart (RFC 8613 §7.5)
    tmp/                            contexts being written or deleted (renames are atomic)

OSCORE is symmetric: the master secret has to live on the server. It lives only here, in
0600 files, and is never logged; the technician is shown the client side once.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import filelock
from aiocoap import oscore
from aiocoap.credentials import DTLS, CredentialsMap

log = logging.getLogger(__name__)

ALGORITHM = "AES-CCM-16-64-128"  # RFC 8613 §3.2.1 mandatory-to-implement AEAD
HKDF = "sha256"  # RFC 8613 §3.2.1 default HKDF hash
MASTER_SECRET_BYTES = 32
MASTER_SALT_BYTES = 8
# The nonce is 13 bytes for AES-CCM-16-64-128 and a Sender ID takes at most nonce - 6 of
# them (RFC 8613 §5.2), so ids are short integers allocated here, never the device_id.
MAX_ID_BYTES = 7
MISS_RELOAD_INTERVAL_S = 1.0  # an unknown kid re-reads the key set at most this often
# A request's remote carries authenticated_claims `device:<device_id>#<kid hex>`: the kid
# tells keys apart across a re-issue, so a DTLS session made with old keys stops counting.
CLAIM_PREFIX = "device:"
# tinydtls (aiocoap's DTLS server) takes a PSK of at most 16 bytes (DTLS_PSK_MAX_KEY_LEN)
# and an identity of at most 32. The PSK is typed as text (`coap-client -k`): 12 random
# bytes in base64url are 16 characters, 96 bits. A longer device_id gets no DTLS key.
PSK_RANDOM_BYTES = 12
MAX_PSK_IDENTITY = 32
_DEVICE_ID = re.compile(r"[A-Za-z0-9._-]{3,64}")  # PROTOCOL.md device_id syntax


class KeysError(ValueError):
    """A device id that cannot have keys, or a key store that cannot be written."""


def _id_bytes(n: int) -> bytes:
    raw = n.to_bytes(max(1, (n.bit_length() + 7) // 8), "big")
    if len(raw) > MAX_ID_BYTES:
        raise KeysError("OSCORE id space exhausted")
    return raw


def client_material(
    device_kid: bytes, server_kid: bytes, secret: bytes, salt: bytes
) -> dict[str, str]:
    """What the device needs, from the device's point of view (its Sender ID is our kid)."""
    return {
        "master_secret": secret.hex(),
        "master_salt": salt.hex(),
        "sender_id": device_kid.hex(),
        "recipient_id": server_kid.hex(),
        "algorithm": ALGORITHM,
        "hkdf": HKDF,
    }


def aiocoap_secret_json(material: dict[str, str]) -> dict[str, str]:
    """One side's material as an aiocoap FilesystemSecurityContext `secret.json`."""
    return {
        "secret_hex": material["master_secret"],
        "salt_hex": material["master_salt"],
        "sender-id_hex": material["sender_id"],
        "recipient-id_hex": material["recipient_id"],
        "algorithm": material["algorithm"],
        "kdf-hashfun": material["hkdf"],
    }


def _server_side(material: dict[str, str]) -> dict[str, str]:
    """The same context seen from the server: sender and recipient swap (RFC 8613 §3.1)."""
    swapped = dict(material, sender_id=material["recipient_id"], recipient_id=material["sender_id"])
    return aiocoap_secret_json(swapped)


def _claim(device_id: str, kid: bytes) -> str:
    return f"{CLAIM_PREFIX}{device_id}#{kid.hex()}"


def _write_private(path: Path, data: object) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f)
        f.flush()
        os.fsync(f.fileno())


@dataclass
class _Loaded:
    stamp: tuple[int, int]  # (inode, mtime_ns) of secret.json: a re-issue is a new file
    context: Any  # oscore.FilesystemSecurityContext
    kid: bytes
    psk: bytes | None


class _DeviceCredentials(CredentialsMap):  # type: ignore[misc]
    """The server's live credentials, looked up by kid in O(1).

    aiocoap's CredentialsMap.find_oscore scans every entry; with thousands of devices
    and keys revoked from a worker thread (commissioning), an index by kid is both
    faster and safe: a single dict.get is atomic, where iterating a dict that another
    thread resizes is not. On a miss, the store is asked to look for new keys first
    (rate-limited), so a device commissioned a moment ago is not refused.
    """

    def __init__(self, on_miss: Callable[[], bool]) -> None:
        super().__init__()
        self.by_kid: dict[bytes, Any] = {}
        self.by_identity: dict[bytes, tuple[bytes, str]] = {}  # DTLS: identity -> psk, claim
        self._on_miss = on_miss

    def __bool__(self) -> bool:
        # aiocoap's Context takes `server_credentials or CredentialsMap()`: an empty live
        # map (no device commissioned yet) must still be the one the server uses.
        return True

    def find_oscore(self, unprotected: Any) -> Any:
        kid = unprotected.get(oscore.COSE_KID)
        ctx = self.by_kid.get(kid)
        if ctx is None and self._on_miss():
            ctx = self.by_kid.get(kid)
        if ctx is None or ctx.get_oscore_context_for(unprotected) is None:
            raise KeyError(kid)
        return ctx

    def find_all_used_contextless_oscore_kid(self) -> set[bytes]:
        return set(self.by_kid)

    def find_dtls_psk(self, identity: bytes) -> tuple[bytes, str]:
        found = self.by_identity.get(identity)
        if found is None and self._on_miss():
            found = self.by_identity.get(identity)
        if found is None:
            raise KeyError(identity)
        return found


class OscoreKeys:
    """Per-device OSCORE contexts and DTLS PSKs in `directory` (layout: module docstring).

    Threads: issue() and revoke() may run anywhere (the CLI, a commissioning worker
    thread). Contexts are loaded and released only by reload() and close(), on the
    server's event loop, because aiocoap's file lock on each context is thread-local.
    """

    def __init__(self, directory: Path) -> None:
        self._dir = directory
        self._devices = directory / "devices"
        self._tmp = directory / "tmp"
        self._mutex = threading.Lock()
        self._creds = _DeviceCredentials(self._reload_on_miss)
        self._loaded: dict[str, _Loaded] = {}
        self._retired: list[Any] = []  # contexts whose file lock awaits release on the loop
        self._generation: int | None = None
        self._last_miss_reload = -MISS_RELOAD_INTERVAL_S

    # -- commissioning side (CLI or API) -------------------------------------------------

    def issue(self, device_id: str) -> dict[str, str]:
        """New keys for `device_id`, replacing any: returns the device's side, shown once.

        The OSCORE material (hex, from the device's point of view) plus `dtls_identity`
        and `dtls_psk` for coaps:// (`coap-client -u <identity> -k <psk>`), the latter
        two only for a device_id of at most 32 bytes (tinydtls' identity limit).
        """
        if not _DEVICE_ID.fullmatch(device_id):
            raise KeysError(f"not a device id: {device_id!r}")
        with self._mutex:
            self._retire(device_id)  # the old keys stop working now, not at the next reload
        with self._locked_state() as state:
            n = state["next_id"]
            state["next_id"] = n + 1
            material = client_material(
                _id_bytes(2 * n), _id_bytes(2 * n + 1),
                secrets.token_bytes(MASTER_SECRET_BYTES), secrets.token_bytes(MASTER_SALT_BYTES),
            )  # fmt: skip
            psk = secrets.token_urlsafe(PSK_RANDOM_BYTES)
            staged = Path(tempfile.mkdtemp(dir=self._tmp, prefix="new-"))
            _write_private(staged / "secret.json", _server_side(material))
            dtls = len(device_id.encode()) <= MAX_PSK_IDENTITY
            if dtls:
                _write_private(staged / "dtls.json", {"identity": device_id, "psk": psk})
            self._discard(device_id)
            os.replace(staged, self._devices / device_id)
        log.info("CoAP keys issued for %s (OSCORE kid %s)", device_id, material["sender_id"])
        if not dtls:
            return material
        return {**material, "dtls_identity": device_id, "dtls_psk": psk}

    def revoke(self, device_id: str) -> None:
        """Forget the device's keys; its next protected request is answered 4.01."""
        with self._mutex:
            self._retire(device_id)
        with self._locked_state():
            self._discard(device_id)
        log.info("OSCORE keys revoked for %s", device_id)

    # -- serving side (event loop) -------------------------------------------------------

    def reload(self) -> None:
        """Pick up keys issued or revoked by any process; one small read when unchanged."""
        self._ensure_dirs()
        generation = self._read_state()["generation"]
        with self._mutex:
            self._release_retired()
            if generation == self._generation:
                return
            complete = self._rescan()
            # A context another process still holds is retried on the next reload.
            self._generation = generation if complete else None

    def server_credentials(self) -> CredentialsMap:
        """The live map the server wraps; revoke/reload change it in place."""
        if self._generation is None:
            self.reload()
        return self._creds

    def device_of(self, remote: Any) -> str | None:
        """The device a request's remote authenticated as, if its keys are still valid."""
        claims: Iterable[object] = getattr(remote, "authenticated_claims", None) or ()
        for claim in claims:
            if isinstance(claim, str) and claim.startswith(CLAIM_PREFIX):
                device_id, _, kid = claim.removeprefix(CLAIM_PREFIX).partition("#")
                loaded = self._loaded.get(device_id)
                if loaded is not None and loaded.kid.hex() == kid:
                    return device_id
        return None

    def devices(self) -> list[str]:
        """Devices whose keys the server holds now."""
        return sorted(self._loaded)

    def close(self) -> None:
        """Persist sequence numbers and replay windows, so a restart needs no Echo round-trip."""
        with self._mutex:
            for device_id in list(self._loaded):
                loaded = self._loaded.pop(device_id)
                self._unindex(device_id, loaded)
                _persist_and_release(loaded.context)
            self._release_retired()
            self._generation = None

    # -- internals ---------------------------------------------------------------------------

    def _reload_on_miss(self) -> bool:
        now = time.monotonic()
        if now - self._last_miss_reload < MISS_RELOAD_INTERVAL_S:
            return False
        self._last_miss_reload = now
        self.reload()
        return True

    def _rescan(self) -> bool:
        present = {p.name for p in self._devices.iterdir() if _DEVICE_ID.fullmatch(p.name)}
        for device_id in set(self._loaded) - present:
            self._retire(device_id)
        self._release_retired()
        complete = True
        for device_id in sorted(present):
            loaded = self._loaded.get(device_id)
            if loaded is None or loaded.stamp != self._stamp(device_id):
                self._retire(device_id)
                self._release_retired()
                complete &= self._load(device_id)
        return complete

    def _stamp(self, device_id: str) -> tuple[int, int]:
        try:
            st = (self._devices / device_id / "secret.json").stat()
        except FileNotFoundError:
            return (0, 0)
        return (st.st_ino, st.st_mtime_ns)

    def _load(self, device_id: str) -> bool:
        """Load one device's context into the live map; False if it could not be."""
        stamp = self._stamp(device_id)
        try:
            ctx = oscore.FilesystemSecurityContext(str(self._devices / device_id))
        except filelock.Timeout:
            log.warning("OSCORE context of %s is in use by another process", device_id)
            return False
        except (OSError, ValueError) as err:  # LoadError is a ValueError; its text has no key
            log.warning("OSCORE context of %s not loaded: %s", device_id, err)
            return False
        claim = _claim(device_id, ctx.recipient_id)
        ctx.authenticated_claims = [claim]
        loaded = _Loaded(stamp, ctx, ctx.recipient_id, self._read_psk(device_id))
        self._loaded[device_id] = loaded
        self._creds["oscore:" + claim] = ctx
        self._creds.by_kid[loaded.kid] = ctx
        if loaded.psk is not None:
            identity = device_id.encode()
            self._creds[claim] = DTLS(psk=loaded.psk, client_identity=identity)
            self._creds.by_identity[identity] = (loaded.psk, claim)
        return True

    def _read_psk(self, device_id: str) -> bytes | None:
        try:
            with open(self._devices / device_id / "dtls.json") as f:
                return str(json.load(f)["psk"]).encode()
        except FileNotFoundError:
            return None  # keys issued before DTLS: OSCORE only
        except (OSError, ValueError, KeyError) as err:
            log.warning("DTLS key of %s not loaded: %s", device_id, type(err).__name__)
            return None

    def _retire(self, device_id: str) -> None:
        """Unindex at once (any thread); the file lock is released later on the loop."""
        loaded = self._loaded.pop(device_id, None)
        if loaded is not None:
            self._unindex(device_id, loaded)
            self._retired.append(loaded.context)

    def _release_retired(self) -> None:
        for ctx in self._retired:
            # Its directory is gone or replaced: release the lock without writing state.
            lock, ctx.lockfile = ctx.lockfile, None
            if lock is not None:
                lock.release()
        self._retired.clear()

    def _unindex(self, device_id: str, loaded: _Loaded) -> None:
        if self._creds.by_kid.get(loaded.kid) is loaded.context:
            del self._creds.by_kid[loaded.kid]
        claim = _claim(device_id, loaded.kid)
        found = self._creds.by_identity.get(device_id.encode())
        if found is not None and found[1] == claim:
            del self._creds.by_identity[device_id.encode()]
        self._creds.pop(claim, None)
        self._creds.pop("oscore:" + claim, None)

    def _discard(self, device_id: str) -> None:
        """Move the device's directory out of sight atomically, then delete it."""
        current = self._devices / device_id
        if not current.exists():
            return
        trash = Path(tempfile.mkdtemp(dir=self._tmp, prefix="old-"))
        os.replace(current, trash / device_id)
        shutil.rmtree(trash)

    def _ensure_dirs(self) -> None:
        for d in (self._dir, self._devices, self._tmp):
            d.mkdir(mode=0o700, parents=True, exist_ok=True)

    def _read_state(self) -> dict[str, int]:
        try:
            with open(self._dir / "state.json") as f:
                state: dict[str, int] = json.load(f)
        except FileNotFoundError:
            return {"next_id": 1, "generation": 0}
        return state

    def _locked_state(self) -> _StateTransaction:
        self._ensure_dirs()
        return _StateTransaction(self._dir)


def _persist_and_release(ctx: Any) -> None:
    if ctx.lockfile is None:
        return
    try:
        ctx._destroy()  # aiocoap writes sequence.json, then unlinks and releases the lock
    except OSError:  # revoked by another process since the last reload: nothing to keep
        lock, ctx.lockfile = ctx.lockfile, None
        if lock is not None:
            lock.release()


class _StateTransaction:
    """`with` block holding the store's lock; writes state.json back with a new generation."""

    def __init__(self, directory: Path) -> None:
        self._dir = directory
        self._lock = filelock.FileLock(str(directory / "lock"), timeout=10)
        self.state: dict[str, int] = {}

    def __enter__(self) -> dict[str, int]:
        self._lock.acquire()
        try:
            with open(self._dir / "state.json") as f:
                self.state = json.load(f)
        except FileNotFoundError:
            self.state = {"next_id": 1, "generation": 0}
        return self.state

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            if exc_type is None:
                self.state["generation"] += 1
                staged = self._dir / "state.json.tmp"
                staged.unlink(missing_ok=True)
                _write_private(staged, self.state)
                os.replace(staged, self._dir / "state.json")
        finally:
            self._lock.release()
