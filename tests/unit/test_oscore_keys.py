"""OscoreKeys: per-device OSCORE contexts on disk, without a network."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path

import aiocoap
import pytest
from aiocoap import oscore
from aiocoap.message import Direction
from aiocoap.numbers.codes import Code

from core.ingest.oscore import CLAIM_PREFIX, KeysError, OscoreKeys, aiocoap_secret_json


@pytest.fixture
def keys(tmp_path: Path) -> Iterator[OscoreKeys]:
    k = OscoreKeys(tmp_path / "oscore")
    yield k
    k.close()


def device_context(material: dict[str, str], where: Path) -> oscore.FilesystemSecurityContext:
    """The device's side, loaded exactly as a device running aiocoap would load it."""
    where.mkdir(parents=True, exist_ok=True)
    (where / "secret.json").write_text(json.dumps(aiocoap_secret_json(material)))
    return oscore.FilesystemSecurityContext(str(where))


def protected_post(device: oscore.FilesystemSecurityContext, payload: bytes) -> aiocoap.Message:
    msg = aiocoap.Message(code=Code.POST, uri_path=["meters", "m-1", "readings"], payload=payload)
    outer, _ = device.protect(msg)
    outer.mtype, outer.mid = aiocoap.CON, 1
    wire = aiocoap.Message.decode(outer.encode())  # through the wire format, as received
    wire.direction = Direction.INCOMING
    return wire


class Remote:
    def __init__(self, claims: list[str]) -> None:
        self.authenticated_claims = claims


def test_constructor_does_no_io(tmp_path: Path) -> None:
    OscoreKeys(tmp_path / "oscore")
    assert not (tmp_path / "oscore").exists()


def test_issued_material_is_the_client_side_in_hex(keys: OscoreKeys) -> None:
    m = keys.issue("m-1")
    assert set(m) == {"master_secret", "master_salt", "sender_id", "recipient_id",
                      "algorithm", "hkdf", "dtls_identity", "dtls_psk"}  # fmt: skip
    assert m["dtls_identity"] == "m-1" and len(m["dtls_psk"]) == 16  # tinydtls' maximum


def test_a_device_id_too_long_for_a_dtls_identity_gets_oscore_only(keys: OscoreKeys) -> None:
    m = keys.issue("m" * 33)
    assert "dtls_psk" not in m and "master_secret" in m
    with pytest.raises(KeyError):
        keys.server_credentials().find_dtls_psk(b"m" * 33)
    assert m["algorithm"] == "AES-CCM-16-64-128" and m["hkdf"] == "sha256"
    assert len(bytes.fromhex(m["master_secret"])) == 32
    assert m["sender_id"] != m["recipient_id"]
    assert 1 <= len(bytes.fromhex(m["sender_id"])) <= 7  # RFC 8613 §5.2 bound for CCM-16


def test_ids_are_unique_across_devices_and_reissues(keys: OscoreKeys) -> None:
    issued = [keys.issue(d) for d in ("m-1", "m-2", "b-1", "m-1", "m-1")]
    ids = [m["sender_id"] for m in issued] + [m["recipient_id"] for m in issued]
    assert len(set(ids)) == len(ids)
    assert len({m["master_secret"] for m in issued}) == len(issued)


def test_key_files_are_private_and_never_contain_the_device_id_as_kid(
    keys: OscoreKeys, tmp_path: Path
) -> None:
    m = keys.issue("m-1")
    secret = tmp_path / "oscore" / "devices" / "m-1" / "secret.json"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert stat.S_IMODE(secret.with_name("dtls.json").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "oscore").stat().st_mode) == 0o700
    server = json.loads(secret.read_text())
    # The server's side is the device's side mirrored (RFC 8613 §3.1).
    assert server["recipient-id_hex"] == m["sender_id"]
    assert server["sender-id_hex"] == m["recipient_id"]
    assert server["secret_hex"] == m["master_secret"]


def test_invalid_device_id_is_refused(keys: OscoreKeys) -> None:
    with pytest.raises(KeysError):
        keys.issue("../etc")


def test_material_round_trips_a_protected_request(keys: OscoreKeys, tmp_path: Path) -> None:
    material = keys.issue("m-1")
    creds = keys.server_credentials()
    device = device_context(material, tmp_path / "device")
    request = protected_post(device, b"[]")
    server = creds.find_oscore(oscore.verify_start(request))
    plain, _ = server.unprotect(request)
    assert plain.payload == b"[]"
    assert plain.opt.uri_path == ("meters", "m-1", "readings")
    assert server.authenticated_claims == [f"{CLAIM_PREFIX}m-1#{material['sender_id']}"]
    assert keys.device_of(Remote(server.authenticated_claims)) == "m-1"
    device._destroy()


def test_replayed_request_is_refused_by_the_window(keys: OscoreKeys, tmp_path: Path) -> None:
    device = device_context(keys.issue("m-1"), tmp_path / "device")
    request = protected_post(device, b"[]")
    server = keys.server_credentials().find_oscore(oscore.verify_start(request))
    server.unprotect(request)
    with pytest.raises(oscore.ReplayError):
        server.unprotect(request)
    device._destroy()


def test_revoke_unindexes_at_once(keys: OscoreKeys, tmp_path: Path) -> None:
    device = device_context(keys.issue("m-1"), tmp_path / "device")
    creds = keys.server_credentials()
    request = protected_post(device, b"[]")
    claims = creds.find_oscore(oscore.verify_start(request)).authenticated_claims
    keys.revoke("m-1")
    with pytest.raises(KeyError):
        creds.find_oscore(oscore.verify_start(request))
    with pytest.raises(KeyError):
        creds.find_dtls_psk(b"m-1")
    assert keys.device_of(Remote(claims)) is None
    assert not (tmp_path / "oscore" / "devices" / "m-1").exists()
    device._destroy()


def test_reload_sees_keys_issued_and_revoked_by_another_process(tmp_path: Path) -> None:
    server = OscoreKeys(tmp_path / "oscore")
    server.reload()
    cli = OscoreKeys(tmp_path / "oscore")  # as `foyer devices ...` would, in its own process
    m1 = cli.issue("m-1")
    cli.issue("m-2")
    assert server.devices() == []
    server.reload()
    assert server.devices() == ["m-1", "m-2"]
    claim = f"{CLAIM_PREFIX}m-1#{m1['sender_id']}"
    assert server.device_of(Remote([claim])) == "m-1"
    cli.revoke("m-1")
    server.reload()
    assert server.devices() == ["m-2"]
    assert server.device_of(Remote([claim])) is None
    server.close()


def test_reload_replaces_a_reissued_context(tmp_path: Path) -> None:
    server = OscoreKeys(tmp_path / "oscore")
    cli = OscoreKeys(tmp_path / "oscore")
    old = cli.issue("m-1")
    creds = server.server_credentials()
    new = cli.issue("m-1")
    server.reload()
    old_dev = device_context(old, tmp_path / "old")
    new_dev = device_context(new, tmp_path / "new")
    with pytest.raises(KeyError):
        creds.find_oscore(oscore.verify_start(protected_post(old_dev, b"[]")))
    assert creds.find_oscore(oscore.verify_start(protected_post(new_dev, b"[]"))) is not None
    server.close()
    old_dev._destroy()
    new_dev._destroy()


def test_unknown_kid_rereads_the_key_set_once(tmp_path: Path) -> None:
    server = OscoreKeys(tmp_path / "oscore")
    creds = server.server_credentials()
    material = OscoreKeys(tmp_path / "oscore").issue("m-1")  # commissioned a moment ago
    device = device_context(material, tmp_path / "device")
    assert creds.find_oscore(oscore.verify_start(protected_post(device, b"[]"))) is not None
    server.close()
    device._destroy()


def test_replay_window_survives_a_clean_restart(tmp_path: Path) -> None:
    first = OscoreKeys(tmp_path / "oscore")
    device = device_context(first.issue("m-1"), tmp_path / "device")
    request = protected_post(device, b"[]")
    first.server_credentials().find_oscore(oscore.verify_start(request)).unprotect(request)
    first.close()
    second = OscoreKeys(tmp_path / "oscore")
    ctx = second.server_credentials().find_oscore(oscore.verify_start(request))
    with pytest.raises(oscore.ReplayError):
        ctx.unprotect(request)
    fresh = protected_post(device, b"[1]")
    assert ctx.unprotect(fresh)[0].payload == b"[1]"
    second.close()
    device._destroy()


def test_dtls_psk_is_found_by_identity_and_names_the_device(keys: OscoreKeys) -> None:
    m = keys.issue("m-1")
    psk, claim = keys.server_credentials().find_dtls_psk(b"m-1")
    assert psk == m["dtls_psk"].encode()
    assert keys.device_of(Remote([claim])) == "m-1"


def test_a_session_made_with_old_keys_stops_counting_after_reissue(keys: OscoreKeys) -> None:
    keys.server_credentials()
    keys.issue("m-1")
    keys.reload()
    _, old_claim = keys.server_credentials().find_dtls_psk(b"m-1")
    keys.issue("m-1")
    keys.reload()
    _, new_claim = keys.server_credentials().find_dtls_psk(b"m-1")
    assert keys.device_of(Remote([old_claim])) is None
    assert keys.device_of(Remote([new_claim])) == "m-1"
