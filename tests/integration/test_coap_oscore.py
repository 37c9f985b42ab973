"""CoAP with OSCORE (RFC 8613): real aiocoap client and server on loopback, real pipeline.

Foyer runs with the embedded store and no MQTT; this module starts the CoAP server itself
so that it can restart it and hand it an OscoreKeys.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiocoap
import pytest
from aiocoap import oscore
from aiocoap.numbers.codes import Code

from core.ingest import coap
from core.ingest.oscore import OscoreKeys, aiocoap_secret_json
from core.records import METER_INDEX
from core.registry import Registry
from core.service import Foyer, running
from core.settings import Settings
from device_sim.transport import CoapSender
from tests.servers import binary, free_port

DEVICES = [("m-1", "meter", None), ("m-2", "meter", None)]


def reading(litres: int) -> bytes:
    return json.dumps([{"n": "volume", "u": "l", "v": litres}]).encode()


class Server:
    """Foyer's CoAP server on a fixed port, restartable, with the keys in data_dir."""

    def __init__(
        self, foyer: Foyer, port: int, allow_plain: bool = False, dtls: bool = False
    ) -> None:
        self.foyer = foyer
        self.port = port
        self.allow_plain = allow_plain
        self.dtls = dtls
        # Not the service's own key directory: its periodic reload must not hold these.
        self.keys_dir = foyer.settings.data_dir / "coap-test-keys"
        self.keys = OscoreKeys(self.keys_dir)
        self._ctx: Any = None

    async def start(self) -> None:
        self.keys = OscoreKeys(self.keys_dir)
        self._ctx = await coap.start_server(
            self.foyer.pipeline, self.foyer.metrics, "127.0.0.1", self.port,
            oscore=self.keys, allow_plain=self.allow_plain, dtls=self.dtls,
        )  # fmt: skip

    async def stop(self) -> None:
        await self._ctx.shutdown()
        self.keys.close()

    def uri(self, device_id: str) -> str:
        return f"coap://127.0.0.1:{self.port}/meters/{device_id}/readings"

    def counter(self, name: str, **labels: str) -> float:
        return self.foyer.metrics.registry.get_sample_value(name, labels) or 0.0

    def refused(self, reason: str) -> float:
        return self.counter("foyer_messages_refused_total", transport="coap", reason=reason)

    def stored(self) -> float:
        return self.counter("foyer_records_stored_total", measurement=METER_INDEX)

    async def indexes(self, device_id: str) -> list[int]:
        now = time.time_ns()
        records = await self.foyer.store.query(METER_INDEX, device_id, now - 10**12, now + 10**9)
        return [int(r.field("index_l")) for r in records]  # type: ignore[arg-type]


@pytest.fixture
async def foyer(tmp_path: Path) -> AsyncIterator[Foyer]:
    settings = Settings(
        data_dir=tmp_path / "data", influx_url="", mqtt_url="", coap_bind="",
        http_bind="127.0.0.1:0",
    )  # fmt: skip
    settings.data_dir.mkdir(parents=True)
    registry = Registry(settings.registry)
    registry.upgrade()
    registry.import_devices(DEVICES)
    registry.close()
    async with running(settings) as f:
        yield f


@pytest.fixture
async def server(foyer: Foyer) -> AsyncIterator[Server]:
    s = Server(foyer, free_port(kind=socket.SOCK_DGRAM))
    await s.start()
    yield s
    await s.stop()


class Device:
    """A device's OSCORE context as aiocoap loads it (secret.json + sequence.json)."""

    def __init__(self, material: dict[str, str] | None, where: Path) -> None:
        self.material = material
        self.where = where
        self.ctx: Any = None

    async def __aenter__(self) -> Device:
        self.ctx = await aiocoap.Context.create_client_context()
        if self.material is not None:
            self.where.mkdir(parents=True, exist_ok=True)
            secret = self.where / "secret.json"
            if not secret.exists():
                secret.write_text(json.dumps(aiocoap_secret_json(self.material)))
            self.ctx.client_credentials.load_from_dict(
                {"*": {"oscore": {"basedir": str(self.where)}}}
            )
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.ctx.shutdown()
        for item in self.ctx.client_credentials.values():
            if getattr(item, "lockfile", None) is not None:
                item._destroy()  # persist the sequence number and free the context's lock

    async def post(self, uri: str, payload: bytes) -> aiocoap.Message:
        msg = aiocoap.Message(code=aiocoap.POST, uri=uri, payload=payload, content_format=110)
        try:
            return await asyncio.wait_for(self.ctx.request(msg).response, 20)
        except oscore.NotAProtectedMessage as err:
            # A server that has no context for us can only answer in the clear; aiocoap's
            # client raises with that answer attached.
            response: aiocoap.Message = err.plain_message
            return response


async def raw_exchange(port: int, datagram: bytes) -> aiocoap.Message:
    """Send bytes from a fresh UDP socket (as an eavesdropper replaying them would)."""
    return await asyncio.to_thread(_raw_exchange, port, datagram)


def _raw_exchange(port: int, datagram: bytes) -> aiocoap.Message:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(10)
        s.sendto(datagram, ("127.0.0.1", port))
        while True:
            reply = aiocoap.Message.decode(s.recv(2048))
            if reply.code != Code.EMPTY:  # skip a separate empty ACK
                return reply


def protected_datagram(device_dir: Path, uri: str, payload: bytes) -> tuple[bytes, Any]:
    """One protected CON POST as bytes on the wire, built with the device's own context."""
    ctx = oscore.FilesystemSecurityContext(str(device_dir))
    msg = aiocoap.Message(code=aiocoap.POST, uri=uri, payload=payload, content_format=110)
    outer, request_id = ctx.protect(msg)
    outer.mtype, outer.mid, outer.token = aiocoap.CON, 4711, b"\x01\x02"
    # uri= set Uri-Host etc. on the inner message; the outer only needs the OSCORE option.
    return outer.encode(), (ctx, request_id)


def unprotect_response(ctx_and_id: Any, reply: aiocoap.Message) -> aiocoap.Message:
    from aiocoap.message import Direction

    ctx, request_id = ctx_and_id
    reply.direction = Direction.INCOMING
    inner, _ = ctx.unprotect(reply, request_id)
    return inner


async def test_plain_request_is_refused_401_and_not_stored(server: Server, tmp_path: Path) -> None:
    server.keys.issue("m-1")
    async with Device(None, tmp_path / "plain") as d:
        response = await d.post(server.uri("m-1"), reading(1000))
    assert response.code == Code.UNAUTHORIZED
    assert response.payload == b"OSCORE required"
    assert server.refused("unauthenticated") == 1
    assert await server.indexes("m-1") == []


async def test_discovery_stays_open_without_security(server: Server, tmp_path: Path) -> None:
    async with Device(None, tmp_path / "plain") as d:
        msg = aiocoap.Message(
            code=aiocoap.GET, uri=f"coap://127.0.0.1:{server.port}/.well-known/core"
        )
        response = await asyncio.wait_for(d.ctx.request(msg).response, 20)
    assert response.code == Code.CONTENT
    assert b"</meters>" in response.payload


async def test_request_with_the_devices_context_is_stored(server: Server, tmp_path: Path) -> None:
    material = server.keys.issue("m-1")
    async with Device(material, tmp_path / "m-1") as d:
        response = await d.post(server.uri("m-1"), reading(1000))
    assert response.code == Code.CHANGED
    assert await server.indexes("m-1") == [1000]


async def test_one_devices_keys_cannot_post_for_another(server: Server, tmp_path: Path) -> None:
    material = server.keys.issue("m-1")
    server.keys.issue("m-2")
    async with Device(material, tmp_path / "m-1") as d:
        response = await d.post(server.uri("m-2"), reading(1000))
    assert response.code == Code.FORBIDDEN
    assert server.refused("wrong_device") == 1
    assert await server.indexes("m-2") == []


async def test_unknown_key_is_refused_401(server: Server, tmp_path: Path) -> None:
    material = server.keys.issue("m-1")
    material["sender_id"] = "7f"  # a kid the server never issued
    async with Device(material, tmp_path / "forged") as d:
        response = await d.post(server.uri("m-1"), reading(1000))
    assert response.code == Code.UNAUTHORIZED
    assert server.refused("unknown_key") == 1
    assert await server.indexes("m-1") == []


async def test_replayed_message_is_refused_and_stored_once(server: Server, tmp_path: Path) -> None:
    material = server.keys.issue("m-1")
    where = tmp_path / "m-1"
    async with Device(material, where):
        pass  # writes the device's context files
    datagram, ctx = protected_datagram(where, server.uri("m-1"), reading(1000))
    first = await raw_exchange(server.port, datagram)
    assert unprotect_response(ctx, first).code == Code.CHANGED
    replay = await raw_exchange(server.port, datagram)
    assert replay.code == Code.UNAUTHORIZED
    assert replay.payload == b"Replay detected"
    assert server.stored() == 1
    assert server.refused("replay") == 1
    ctx[0]._destroy()


async def test_revoked_key_stops_working_at_once(server: Server, tmp_path: Path) -> None:
    material = server.keys.issue("m-1")
    async with Device(material, tmp_path / "m-1") as d:
        assert (await d.post(server.uri("m-1"), reading(1000))).code == Code.CHANGED
        server.keys.revoke("m-1")
        response = await d.post(server.uri("m-1"), reading(1001))
    assert response.code == Code.UNAUTHORIZED
    assert await server.indexes("m-1") == [1000]


async def test_keys_issued_by_another_process_work_without_restart(
    server: Server, tmp_path: Path
) -> None:
    material = OscoreKeys(server.keys_dir).issue("m-1")  # `foyer devices ...` elsewhere
    async with Device(material, tmp_path / "m-1") as d:
        response = await d.post(server.uri("m-1"), reading(1000))
    assert response.code == Code.CHANGED


async def test_keys_and_replay_window_survive_a_restart(server: Server, tmp_path: Path) -> None:
    material = server.keys.issue("m-1")
    where = tmp_path / "m-1"
    async with Device(material, where) as d:
        assert (await d.post(server.uri("m-1"), reading(1000))).code == Code.CHANGED
    captured, ctx = protected_datagram(where, server.uri("m-1"), reading(1001))
    assert unprotect_response(ctx, await raw_exchange(server.port, captured)).code == Code.CHANGED
    ctx[0]._destroy()
    await server.stop()
    await server.start()
    assert (await raw_exchange(server.port, captured)).payload == b"Replay detected"
    async with Device(material, where) as d:
        assert (await d.post(server.uri("m-1"), reading(1002))).code == Code.CHANGED
    assert await server.indexes("m-1") == [1000, 1001, 1002]


async def test_after_a_crash_the_client_recovers_through_echo(
    server: Server, tmp_path: Path
) -> None:
    material = server.keys.issue("m-1")
    where = tmp_path / "m-1"
    async with Device(material, where) as d:
        assert (await d.post(server.uri("m-1"), reading(1000))).code == Code.CHANGED
        # What a crashed server leaves: the window is marked unknown while running.
        crashed = (server.keys_dir / "devices" / "m-1" / "sequence.json").read_text()
        await server.stop()
        (server.keys_dir / "devices" / "m-1" / "sequence.json").write_text(crashed)
        await server.start()
        # RFC 8613 B.1.2: 4.01 with Echo, then aiocoap's client repeats with it.
        assert (await d.post(server.uri("m-1"), reading(1001))).code == Code.CHANGED
    assert json.loads(crashed)["received"] == "unknown"
    assert await server.indexes("m-1") == [1000, 1001]


async def test_plain_is_accepted_only_when_allowed(foyer: Foyer, tmp_path: Path) -> None:
    s = Server(foyer, free_port(kind=socket.SOCK_DGRAM), allow_plain=True)
    await s.start()
    try:
        material = s.keys.issue("m-1")
        async with Device(None, tmp_path / "plain") as d:
            assert (await d.post(s.uri("m-2"), reading(500))).code == Code.CHANGED
        async with Device(material, tmp_path / "m-1") as d:  # keys still bind the path
            assert (await d.post(s.uri("m-2"), reading(501))).code == Code.FORBIDDEN
    finally:
        await s.stop()
    assert await s.indexes("m-2") == [500]


async def test_device_simulator_posts_over_oscore(server: Server, tmp_path: Path) -> None:
    material_file = tmp_path / "m-1.oscore.json"
    material_file.write_text(json.dumps({"m-1": server.keys.issue("m-1")}))
    for litres in (1000, 1001):  # a second run continues from the persisted sequence number
        sender = CoapSender(f"coap://127.0.0.1:{server.port}", oscore=material_file)
        await sender.start()
        try:
            await sender.send("meters", "m-1", reading(litres), "json")
        finally:
            await sender.close()
    assert await server.indexes("m-1") == [1000, 1001]


def free_port_pair() -> int:
    """A UDP port p with p + 1 free too: aiocoap serves coaps:// on the CoAP port + 1."""
    for _ in range(50):
        port = free_port(kind=socket.SOCK_DGRAM)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no pair of free UDP ports")


@pytest.fixture
async def dtls_server(foyer: Foyer) -> AsyncIterator[Server]:
    s = Server(foyer, free_port_pair(), dtls=True)
    await s.start()
    yield s
    await s.stop()


async def coaps_post(client: str, port: int, path: str, identity: str, psk: str) -> str:
    """libcoap's coap-client over DTLS-PSK: a client Foyer did not write."""
    proc = await asyncio.create_subprocess_exec(
        binary(client), "-m", "post", "-t", "110", "-f", "-", "-B", "5",
        "-u", identity, "-k", psk, f"coaps://127.0.0.1:{port + 1}/{path}",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(reading(700)), 30)
    return (out + err).decode()


@pytest.mark.parametrize("client", ["coap-client-gnutls", "coap-client-openssl"])
async def test_libcoap_client_posts_over_dtls_psk(dtls_server: Server, client: str) -> None:
    m = dtls_server.keys.issue("m-1")
    out = await coaps_post(
        client, dtls_server.port, "meters/m-1/readings", m["dtls_identity"], m["dtls_psk"]
    )
    assert "4." not in out and "5." not in out, out
    assert await dtls_server.indexes("m-1") == [700], out


async def test_dtls_psk_of_one_device_cannot_post_for_another(dtls_server: Server) -> None:
    m = dtls_server.keys.issue("m-1")
    dtls_server.keys.issue("m-2")
    out = await coaps_post(
        "coap-client-gnutls", dtls_server.port, "meters/m-2/readings", "m-1", m["dtls_psk"]
    )
    assert "4.03" in out
    assert dtls_server.refused("wrong_device") == 1
    assert await dtls_server.indexes("m-2") == []


async def test_wrong_or_revoked_psk_gets_no_session(dtls_server: Server) -> None:
    m = dtls_server.keys.issue("m-1")
    wrong = await coaps_post(
        "coap-client-gnutls", dtls_server.port, "meters/m-1/readings", "m-1", "not-the-key"
    )
    dtls_server.keys.revoke("m-1")
    revoked = await coaps_post(
        "coap-client-gnutls", dtls_server.port, "meters/m-1/readings", "m-1", m["dtls_psk"]
    )
    # No key matches, the handshake fails and libcoap never sends the request.
    assert "cannot send CoAP pdu" in wrong and "cannot send CoAP pdu" in revoked
    assert await dtls_server.indexes("m-1") == []
