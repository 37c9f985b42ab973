"""Senders: MQTT 5 (paho-mqtt 2.x) and CoAP (aiocoap), behind one small protocol."""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from device_sim.senml import CONTENT_FORMATS, CONTENT_TYPES

SUFFIX = {"meters": "readings", "bins": "events"}


class SendError(Exception):
    pass


class Sender(Protocol):
    async def send(self, kind_path: str, device_id: str, payload: bytes, fmt: str) -> None: ...

    async def close(self) -> None: ...


def resource(kind_path: str, device_id: str) -> str:
    """`meters/<id>/readings` or `bins/<id>/events`: MQTT topic and CoAP path alike."""
    return f"{kind_path}/{device_id}/{SUFFIX[kind_path]}"


class MqttSender:
    """One MQTT 5 connection; QoS 1, content type as a property.

    `mqtt://user:password@host:port` connects as that account (PROTOCOL.md: a device
    authenticates as its device_id, percent-encoding allowed in the password). With a
    broker enforcing per-device ACLs, one sender publishes for its own device only.
    """

    def __init__(self, url: str, client_id: str = "", ack_timeout_s: float = 30.0) -> None:
        u = urlsplit(url)
        self._host, self._port = u.hostname or "localhost", u.port or 1883
        self._timeout = ack_timeout_s
        self._connected = threading.Event()
        self._refusal: str | None = None
        self._refused_mids: dict[int, str] = {}  # PUBACK reason codes >= 0x80, by mid
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
        )
        if u.username:
            password = unquote(u.password) if u.password is not None else None
            self._client.username_pw_set(unquote(u.username), password)
        self._client.on_connect = self._on_connect
        self._client.on_publish = self._on_publish

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        self._refusal = str(reason) if reason.is_failure else None
        self._connected.set()

    def _on_publish(
        self, client: mqtt.Client, userdata: Any, mid: int, reason: Any, p: Any
    ) -> None:
        # paho calls this before marking the message published, so send() sees it.
        if reason.is_failure:
            self._refused_mids[mid] = str(reason)

    async def start(self) -> None:
        await asyncio.to_thread(self._client.connect, self._host, self._port, 60)
        self._client.loop_start()
        if not await asyncio.to_thread(self._connected.wait, 10.0) or self._refusal:
            self._client.loop_stop()  # else paho keeps retrying refused credentials
            why = self._refusal or "no CONNACK"
            raise SendError(f"MQTT connection to {self._host}:{self._port} not accepted: {why}")

    async def send(self, kind_path: str, device_id: str, payload: bytes, fmt: str) -> None:
        props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        props.ContentType = CONTENT_TYPES[fmt]
        info = self._client.publish(
            resource(kind_path, device_id), payload, qos=1, properties=props
        )
        # Waiting for PUBACK in a worker thread keeps the event loop free; the
        # caller's semaphore bounds how many such waits exist at once.
        await asyncio.to_thread(info.wait_for_publish, self._timeout)
        if not info.is_published():
            raise SendError(f"no PUBACK for {device_id} within {self._timeout}s")
        refused = self._refused_mids.pop(info.mid, None)
        if refused is not None:  # MQTT 5 PUBACK reason, e.g. "Not authorized" (ACL)
            raise SendError(f"broker refused {device_id}'s message: {refused}")

    async def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


OSCORE_KEYS = ("master_secret", "master_salt", "sender_id", "recipient_id", "algorithm", "hkdf")


def oscore_contexts(
    material: str | Path | Mapping[str, Any], state_dir: Path | None = None
) -> dict[str, Path]:
    """Turn the OSCORE material shown at commissioning into aiocoap context directories.

    `material` is the `oscore` object Foyer returned (one device: used for every request)
    or a map device_id -> such object, given as a dict or a JSON file. Each context gets
    its own directory under `state_dir` (default: beside the JSON file), because the
    sender sequence number must survive restarts: a device that starts again from 0 is
    a replay to the server (RFC 8613 §7.5). Returns URI pattern -> context directory.
    """
    data: Mapping[str, Any]
    if isinstance(material, Mapping):
        data = material
    else:
        path = Path(material)
        state_dir = state_dir or path.with_name(path.name + ".state")
        data = json.loads(path.read_text())
    if state_dir is None:
        raise ValueError("OSCORE material given as a dict needs a state_dir for sequence numbers")
    single = all(k in data for k in OSCORE_KEYS)
    items: dict[str, Mapping[str, str]] = {"_": data} if single else dict(data)
    out: dict[str, Path] = {}
    for device_id, m in items.items():
        basedir = state_dir / device_id
        _write_context(basedir, m)
        out["*" if single else f"*/{device_id}/*"] = basedir
    return out


def _write_context(basedir: Path, m: Mapping[str, str]) -> None:
    """aiocoap's FilesystemSecurityContext layout; new keys restart the sequence numbers."""
    secret = {
        "secret_hex": m["master_secret"], "salt_hex": m["master_salt"],
        "sender-id_hex": m["sender_id"], "recipient-id_hex": m["recipient_id"],
        "algorithm": m["algorithm"], "kdf-hashfun": m["hkdf"],
    }  # fmt: skip
    basedir.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = basedir / "secret.json"
    if path.exists() and json.loads(path.read_text()) == secret:
        return
    (basedir / "sequence.json").unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(secret, f)


class CoapSender:
    """Confirmable POSTs; aiocoap handles retransmission and message-id deduplication.

    With `oscore` (see oscore_contexts), requests are OSCORE-protected (RFC 8613).
    """

    def __init__(
        self,
        url: str,
        oscore: str | Path | Mapping[str, Any] | None = None,
        oscore_state: Path | None = None,
    ) -> None:
        self._base = url.rstrip("/")
        self._ctx: Any = None
        self._oscore = None if oscore is None else oscore_contexts(oscore, oscore_state)

    async def start(self) -> None:
        import aiocoap  # imported lazily: MQTT-only runs need not pay its start-up

        self._ctx = await aiocoap.Context.create_client_context()
        if self._oscore:
            self._ctx.client_credentials.load_from_dict(
                {pattern: {"oscore": {"basedir": str(d)}} for pattern, d in self._oscore.items()}
            )

    async def send(self, kind_path: str, device_id: str, payload: bytes, fmt: str) -> None:
        import aiocoap

        msg = aiocoap.Message(
            code=aiocoap.POST,
            transport_tuning=aiocoap.Reliable,  # CON: retransmitted until acked
            uri=f"{self._base}/{resource(kind_path, device_id)}",
            payload=payload,
            content_format=CONTENT_FORMATS[fmt],
        )
        try:
            response = await self._ctx.request(msg).response
        except aiocoap.error.Error as err:
            # A server without our key can only refuse in the clear (4.01); aiocoap's
            # OSCORE client raises NotAProtectedMessage with that answer attached.
            response = getattr(err, "plain_message", None)
            if response is None:
                raise
        if not response.code.is_successful():
            raise SendError(f"{response.code} {response.payload[:80]!r}")

    async def close(self) -> None:
        if self._ctx is not None:
            await self._ctx.shutdown()
            for item in self._ctx.client_credentials.values():
                # Write the exact sequence number back and release the context's file
                # lock now rather than at garbage collection (aiocoap has no public call).
                if getattr(item, "lockfile", None) is not None:
                    item._destroy()
