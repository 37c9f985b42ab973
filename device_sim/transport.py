"""Senders: MQTT 5 (paho-mqtt 2.x) and CoAP (aiocoap), behind one small protocol."""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Protocol
from urllib.parse import urlsplit

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
    """One MQTT 5 connection for the whole fleet; QoS 1, content type as a property."""

    def __init__(self, url: str, client_id: str = "", ack_timeout_s: float = 30.0) -> None:
        u = urlsplit(url)
        self._host, self._port = u.hostname or "localhost", u.port or 1883
        self._timeout = ack_timeout_s
        self._connected = threading.Event()
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
        )
        if u.username:
            self._client.username_pw_set(u.username, u.password)
        self._client.on_connect = self._on_connect

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        if not reason.is_failure:
            self._connected.set()

    async def start(self) -> None:
        await asyncio.to_thread(self._client.connect, self._host, self._port, 60)
        self._client.loop_start()
        if not await asyncio.to_thread(self._connected.wait, 10.0):
            raise SendError(f"MQTT connection to {self._host}:{self._port} not accepted")

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

    async def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


class CoapSender:
    """Confirmable POSTs; aiocoap handles retransmission and message-id deduplication."""

    def __init__(self, url: str) -> None:
        self._base = url.rstrip("/")
        self._ctx: Any = None

    async def start(self) -> None:
        import aiocoap  # imported lazily: MQTT-only runs need not pay its start-up

        self._ctx = await aiocoap.Context.create_client_context()

    async def send(self, kind_path: str, device_id: str, payload: bytes, fmt: str) -> None:
        import aiocoap

        msg = aiocoap.Message(
            code=aiocoap.POST,
            mtype=aiocoap.CON,
            uri=f"{self._base}/{resource(kind_path, device_id)}",
            payload=payload,
            content_format=CONTENT_FORMATS[fmt],
        )
        response = await self._ctx.request(msg).response
        if not response.code.is_successful():
            raise SendError(f"{response.code} {response.payload[:80]!r}")

    async def close(self) -> None:
        if self._ctx is not None:
            await self._ctx.shutdown()
