"""MQTT ingestion with paho-mqtt: the paho thread only hands messages to the loop.

MQTT 5, QoS 1, persistent session (clean_start=False + session expiry) and a shared
subscription so several workers split the load. Acks are manual and sent only once
the message's records are durably stored, in the order the messages arrived
(MQTT 5 §4.6). A message the store cannot take yet (the write queue is full, the
spool's disk failed) is retried in hand, unacked, with backoff: MQTT 5 §4.4 has the
broker redeliver only on a new connection, so dropping it would leave it waiting
for one. On a stop or a lost connection it is left unacked for the next connection.

A stop finishes what is in hand (stored, then acked) and leaves the rest queued in
the session for the next start. A worker that does not come back is adopted
(core/ingest/adoption.py): another worker connects with its client id (``adopt``
mode: unsubscribe, store and ack the queue, then end the session).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from core.errors import Refused, StoreUnavailable
from core.ingest.model import LEAF, RawMessage
from core.ingest.pipeline import Pipeline
from core.metrics import Metrics
from core.senml import Format

log = logging.getLogger(__name__)

TOPICS = tuple(f"{family}/+/{leaf}" for family, leaf in LEAF.items())
# The broker may have this many unacked messages in flight to us: it bounds our queue
# and must cover a batch's worth of messages for the flush to fill (writer.py).
RECEIVE_MAXIMUM = 10000
SESSION_EXPIRY_S = 7 * 86400  # the broker keeps our queue through a week-long outage
KEEPALIVE_S = 30
RECONNECT_MIN_S, RECONNECT_MAX_S = 1, 30
RETRY_MIN_S, RETRY_MAX_S = 0.5, 10.0  # a message the store could not take yet
# A stop waits this long for the messages in hand to be stored and acked; past it,
# they stay unacked in the session and are redelivered (systemd and Kubernetes give
# 30 s between SIGTERM and SIGKILL: deploy/).
STOP_DRAIN_S = 15.0
# Messages turned into tasks per turn of the event loop. A burst of thousands handed
# over at once would run all their first steps before anything else, and probes and
# /metrics waited seconds behind them (tests/bench_scale.py, slowest_metrics_scrape_s).
DRAIN_CHUNK = 16


@dataclass(frozen=True, slots=True)
class MqttSettings:
    url: str  # mqtt://[user:password@]host:port
    client_id: str
    group: str = "foyer"


@dataclass(slots=True)
class _Inflight:
    mid: int
    generation: int  # the connection it came on: a mid means nothing on another
    state: str = "pending"  # pending | ack | skip


class MqttIngest:
    def __init__(
        self, settings: MqttSettings, pipeline: Pipeline, metrics: Metrics, *, adopt: bool = False
    ) -> None:
        self._settings = settings
        # adopt: the session is a departed worker's (adoption.py); take its queue, do
        # not subscribe, and do not reconnect once the connection ends.
        self._adopt = adopt
        self._pipeline = pipeline
        self._metrics = metrics
        self._client: mqtt.Client | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # (message, connection it came on, time.time() at receipt), filled by paho's thread
        self._inbox: deque[tuple[mqtt.MQTTMessage, int, float]] = deque()
        self._inbox_lock = threading.Lock()
        self._connection = 0  # paho's thread counts connections; a message carries its own
        self._drain_scheduled = False
        self._inflight: deque[_Inflight] = deque()
        self._generation = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False
        self.connected = asyncio.Event()
        self.subscribed = asyncio.Event()  # set once the broker granted our subscriptions
        self.unsubscribed = asyncio.Event()  # adopt: the broker routes nothing new to us
        self.session_present: bool | None = None  # as the broker said at the last CONNACK
        self.ended: str | None = None  # adopt mode: why the connection ended
        self.ended_by_takeover = False  # ... because a client with our id connected
        self.last_message = time.monotonic()
        self.handled = 0  # messages handed to the pipeline
        self.skipped = 0  # messages left unacked (not stored): an adoption must not end

    @property
    def settings(self) -> MqttSettings:
        return self._settings

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        url = urlsplit(self._settings.url)
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self._settings.client_id,
            protocol=mqtt.MQTTv5,
            manual_ack=True,
            # adopt: once the connection ends (the owner took its session back, or the
            # broker went away) this adoption is over; the next check tries again.
            reconnect_on_failure=not self._adopt,
        )
        if url.username:
            client.username_pw_set(url.username, url.password)
        client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        client.on_unsubscribe = self._on_unsubscribe
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        props.ReceiveMaximum = RECEIVE_MAXIMUM
        client.connect_async(
            url.hostname or "localhost", url.port or 1883, KEEPALIVE_S,
            clean_start=False, properties=props,
        )  # fmt: skip
        client.loop_start()
        self._client = client

    async def stop(self, *, drain_s: float = STOP_DRAIN_S, end_session: bool = False) -> bool:
        """Take no new message, store and ack those in hand (up to `drain_s`), then
        disconnect. The session stays on the broker, with whatever it still queues for
        us, unless `end_session` (adoption: its queue has been taken) and nothing is
        left in hand unacked; returns whether the session was ended."""
        self._closing = True
        if self._tasks:
            _done, late = await asyncio.wait(set(self._tasks), timeout=drain_s)
            if late:
                log.warning("MQTT stop: %d messages not stored within %.0f s; the broker "
                            "redelivers them", len(late), drain_s)  # fmt: skip
        if end_session and not (self.idle() and self.skipped == 0):
            log.warning("MQTT session kept: messages came in or were not stored at the end")
            end_session = False
        if self._client is not None:
            props = None
            if end_session:  # MQTT 5 §3.14.2.2.2: expiry 0 at DISCONNECT ends the session
                props = Properties(PacketTypes.DISCONNECT)  # type: ignore[no-untyped-call]
                props.SessionExpiryInterval = 0
            await asyncio.to_thread(self._client.disconnect, None, props)
            await asyncio.to_thread(self._client.loop_stop)
        for task in list(self._tasks):
            task.cancel()
        return end_session and self._client is not None

    def idle(self) -> bool:
        """Nothing in hand: no message waiting, being stored, or unacked by us."""
        with self._inbox_lock:
            waiting = bool(self._inbox)
        return not (waiting or self._tasks or self._inflight)

    # --- paho thread: hand over, nothing else ------------------------------------------
    def _on_connect(
        self, client: mqtt.Client, _u: Any, flags: Any, rc: ReasonCode, _p: Any
    ) -> None:
        if rc.is_failure:
            log.warning("MQTT broker refused the connection: %s", rc)
            return
        filters = [f"$share/{self._settings.group}/{t}" for t in TOPICS]
        if self._adopt:
            # The broker stops routing new messages to the session and still delivers
            # what it has queued for it (checked on Mosquitto 2.0; MQTT 5 §3.10.4).
            if flags.session_present:
                client.unsubscribe(filters)
        else:
            client.subscribe([(f, SubscribeOptions(qos=1)) for f in filters])
        with self._inbox_lock:
            self._connection += 1
            connection = self._connection
        self._call(self._connected, bool(flags.session_present), connection)

    def _on_subscribe(self, _c: mqtt.Client, _u: Any, _mid: int, codes: Any, _p: Any) -> None:
        if all(not code.is_failure for code in codes):
            self._call(self.subscribed.set)
        else:
            log.error("MQTT broker refused our subscriptions: %s", codes)

    def _on_unsubscribe(self, _c: mqtt.Client, _u: Any, _mid: int, _codes: Any, _p: Any) -> None:
        self._call(self._unsubscribed)

    def _unsubscribed(self) -> None:
        self.last_message = time.monotonic()  # what was queued comes after the UNSUBACK
        self.unsubscribed.set()

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, rc: ReasonCode, _p: Any) -> None:
        # MQTT 5 §3.14.2.1: 0x8E, another connection with this client id took the session
        # (Mosquitto 2.0.11 just closes the socket: adoption.py also asks the lease)
        with self._inbox_lock:
            # Not acked, so redelivered on the next connection: a mid is only valid
            # on its own connection, and these would be stored for nothing.
            self._inbox.clear()
            self._connection += 1
            connection = self._connection
        self._call(self._disconnected, str(rc), connection, rc.value == 0x8E)

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        with self._inbox_lock:
            self._inbox.append((message, self._connection, time.time()))
            if self._drain_scheduled:
                return
            self._drain_scheduled = True
        self._call(self._drain)

    def _call(self, fn: Any, *args: Any) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(fn, *args)

    # --- event loop ------------------------------------------------------------------------
    def _connected(self, session_present: bool, connection: int) -> None:
        self._generation = connection
        self.session_present = session_present
        self.last_message = time.monotonic()
        if not self._adopt:
            log.warning("MQTT connected (session present: %s)", session_present)
        self.connected.set()

    def _disconnected(self, reason: str, connection: int, taken_over: bool = False) -> None:
        # Unacked messages of the old connection will be redelivered; forget them.
        self._generation = connection
        self._inflight.clear()
        self.connected.clear()
        self.subscribed.clear()
        if self._adopt:
            self.ended, self.ended_by_takeover = reason, taken_over
        elif not self._closing:
            log.warning("MQTT connection lost (%s); paho reconnects with backoff", reason)

    def _drain(self) -> None:
        with self._inbox_lock:
            if self._closing:
                self._drain_scheduled = False
                return  # left unacked: the session keeps them for the next connection
            batch = [self._inbox.popleft() for _ in range(min(DRAIN_CHUNK, len(self._inbox)))]
            more = bool(self._inbox)
            self._drain_scheduled = more
        if more:  # the rest at the next turn, after whatever else is ready
            self._call(self._drain)
        self.last_message = time.monotonic()
        self.handled += len(batch)
        for message, connection, received_at in batch:
            entry = _Inflight(message.mid, connection)
            if message.qos > 0:
                self._inflight.append(entry)
            task = asyncio.ensure_future(self._handle(message, entry, received_at))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _handle(self, message: mqtt.MQTTMessage, entry: _Inflight, at: float) -> None:
        try:
            raw = _raw(message, at)
        except Refused as err:
            self._metrics.received.labels("mqtt").inc()
            self._metrics.refused.labels("mqtt", err.reason).inc()
            log.info("refused MQTT message: %s", err.diagnostic)
            raw = None
        try:
            if raw is not None:
                await self._store(raw, entry)
            entry.state = "ack"
        except Refused:
            entry.state = "ack"  # refused and counted; redelivery would not change that
        except StoreUnavailable:
            entry.state = "skip"  # stopping or reconnected: redelivered on the next connection
        except Exception:
            log.exception("unexpected error on MQTT message %s", message.topic)
            entry.state = "skip"
        if entry.state == "skip":
            self.skipped += 1
        self._ack_in_order()

    async def _store(self, raw: RawMessage, entry: _Inflight) -> None:
        """The pipeline, retried with backoff while the store cannot take it yet."""
        delay, first = RETRY_MIN_S, True
        while True:
            try:
                await self._pipeline.handle(raw, count=first)
                return
            except StoreUnavailable:
                self._metrics.unavailable.labels("mqtt").inc()
                if self._closing or entry.generation != self._current():
                    raise
            await asyncio.sleep(delay)  # backoff before a retry, not a wait for a result
            delay, first = min(delay * 2, RETRY_MAX_S), False

    def _current(self) -> int:
        """paho's connection number: the event loop's view of it may lag a reconnect."""
        with self._inbox_lock:
            return self._connection

    def _ack_in_order(self) -> None:
        client, current = self._client, self._current()
        while self._inflight and self._inflight[0].state != "pending":
            entry = self._inflight.popleft()
            if entry.state == "ack" and entry.generation == current and client:
                client.ack(entry.mid, 1)


def _raw(message: mqtt.MQTTMessage, received_at: float) -> RawMessage:
    family, device_id, _leaf = _split(message.topic)
    content_type = getattr(message.properties, "ContentType", None)
    fmt = None
    if content_type is not None:
        try:
            fmt = Format(content_type)
        except ValueError as err:
            raise Refused("unsupported_format", f"content type {content_type!r}") from err
    return RawMessage("mqtt", family, device_id, bytes(message.payload), fmt, received_at)


def _split(topic: str) -> tuple[str, str, str]:
    parts = topic.split("/")
    if len(parts) != 3 or LEAF.get(parts[0]) != parts[2]:
        raise Refused("bad_path", f"unexpected topic {topic[:80]!r}")
    return parts[0], parts[1], parts[2]
