"""Two `foyer serve --role ingest` workers on one shared subscription split the load;
one is SIGKILLed mid-stream and restarted (same client id, as systemd would): every
reading the broker acknowledged to the publisher is in InfluxDB exactly once. And one
stopped for good (SIGKILL, or SIGTERM as a scale-in sends) has its session adopted by
the other (core/ingest/adoption.py): nothing waits for a worker that never returns.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from prometheus_client.parser import text_string_to_metric_families

from core.settings import Settings
from tests.e2e.conftest import eventually, influx_query, make_settings, register
from tests.servers import InfluxDB, Mosquitto, free_port

METERS = [(f"m-{n:03d}", "meter", None) for n in range(4)]
BASE = int(time.time()) - 3600
TOTAL = 3000  # readings in the stream
RATE = 150  # readings per second: a steady stream of ~20 s, the kill lands in its middle


def reading(n: int) -> tuple[str, bytes]:
    """Reading n: its own index value and (device, time), so each is one InfluxDB point."""
    device = METERS[n % len(METERS)][0]
    pack = [{"bn": f"urn:dev:foyer:{device}:", "n": "volume", "u": "l", "v": n, "t": BASE + n}]
    return f"meters/{device}/readings", json.dumps(pack).encode()


def stored(influxdb: InfluxDB, db: str) -> list[int]:
    rows = influx_query(influxdb, db, "SELECT index_l FROM meter_index")
    return sorted(int(str(r["index_l"])) for r in rows)


@dataclass
class Worker:
    """One `foyer serve --role ingest` process: its own client id and probe port."""

    settings: Settings
    client_id: str
    log: Path
    probe_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    env: dict[str, str] = field(default_factory=dict)

    def start(self) -> None:
        env = {
            **os.environ,
            "FOYER_DATA_DIR": str(self.settings.data_dir),  # shared: one spool per client id
            "FOYER_INFLUX_URL": self.settings.influx_url,
            "FOYER_INFLUX_DB": self.settings.influx_db,
            "FOYER_MQTT_URL": self.settings.mqtt_url,
            "FOYER_MQTT_CLIENT_ID": self.client_id,
            "FOYER_COAP_BIND": "",
            "FOYER_PROBE_BIND": f"127.0.0.1:{self.probe_port}",
            "FOYER_LOG_FORMAT": "json",
            **self.env,
        }
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "core.cli", "serve", "--role", "ingest"],
                env=env, stdout=out, stderr=out,
            )  # fmt: skip

    def kill(self, sig: signal.Signals = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=30)

    def get(self, path: str) -> tuple[int, bytes]:
        url = f"http://127.0.0.1:{self.probe_port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                return int(resp.status), resp.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()
        except OSError:
            return 0, b""  # not listening (yet)

    def ready(self) -> bool:
        return self.get("/readyz")[0] == 200

    def stored(self) -> float:
        """foyer_records_stored_total{measurement="meter_index"} of this process."""
        return self.sample("foyer_records_stored_total")

    def sample(self, name: str, **labels: str) -> float:
        _status, body = self.get("/metrics")
        for family in text_string_to_metric_families(body.decode()):
            for sample in family.samples:
                if sample.name == name and labels.items() <= sample.labels.items():
                    return float(sample.value)
        return 0.0


@pytest.fixture
def workers(
    tmp_path: Path, influxdb: InfluxDB, influx_db: str, mosquitto: Mosquitto
) -> Iterator[tuple[Worker, Worker]]:
    settings = make_settings(tmp_path, influxdb, influx_db, mosquitto)
    register(settings, METERS)
    pair = tuple(
        Worker(settings, f"foyer-ingest-{name}-{uuid.uuid4().hex[:6]}", tmp_path / f"{name}.log")
        for name in ("a", "b")
    )
    try:
        yield pair[0], pair[1]
    finally:
        for worker in pair:
            worker.kill()


class Publisher:
    """QoS 1 publisher (paho, MQTT 5); keeps each publish's handle to see its PUBACK."""

    def __init__(self, mosquitto: Mosquitto) -> None:
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:6]}",
            protocol=mqtt.MQTTv5,
        )  # fmt: skip
        self.client.max_inflight_messages_set(1000)
        self.connected = threading.Event()
        self.client.on_connect = lambda *_args: self.connected.set()
        self.client.connect("127.0.0.1", mosquitto.port)
        self.client.loop_start()
        self.sent: dict[int, mqtt.MQTTMessageInfo] = {}

    async def stream(self, total: int, rate: int) -> None:
        """Steady: `rate` readings a second, in slices of 1/10 s."""
        assert await asyncio.to_thread(self.connected.wait, 10)
        step = max(rate // 10, 1)
        for first in range(0, total, step):
            for n in range(first, min(first + step, total)):
                topic, payload = reading(n)
                self.sent[n] = self.client.publish(topic, payload, qos=1)
            await asyncio.sleep(0.1)  # pacing of the test's load, not a wait for a result

    def acknowledged(self) -> list[int]:
        return sorted(n for n, info in self.sent.items() if info.is_published())

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


async def stream_with(
    mosquitto: Mosquitto, a: Worker, b: Worker, mid_stream: Callable[[], None]
) -> list[int]:
    """The steady stream; `mid_stream` once both workers store part of it (the broker
    splits the shared subscription). Returns the readings the broker acknowledged."""
    publisher = Publisher(mosquitto)
    try:
        stream = asyncio.create_task(publisher.stream(TOTAL, RATE))
        await eventually(lambda: a.stored() >= 100 and b.stored() >= 100, within=30)
        assert not stream.done(), "the stream ended before the kill: raise TOTAL"
        mid_stream()
        await stream
        await eventually(lambda: len(publisher.acknowledged()) == TOTAL, within=20)
        return publisher.acknowledged()
    finally:
        publisher.close()


async def test_two_ingest_workers_share_the_load_and_a_sigkill_loses_nothing(
    workers: tuple[Worker, Worker], influxdb: InfluxDB, influx_db: str, mosquitto: Mosquitto
) -> None:
    a, b = workers
    a.start()
    b.start()
    await eventually(lambda: a.ready() and b.ready(), within=30)  # connected and subscribed

    def kill_and_restart() -> None:
        b.kill()  # mid-stream: its batches in flight, their acks never sent
        b.start()  # same client id: its persistent session (and spool) resume

    acknowledged = await stream_with(mosquitto, a, b, kill_and_restart)
    await eventually(lambda: stored(influxdb, influx_db) == acknowledged, within=30)
    assert b.ready()
    for line in a.log.read_text().splitlines():  # FOYER_LOG_FORMAT=json: one object a line
        assert {"time", "level", "logger", "message"} <= set(json.loads(line))


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["sigkill", "sigterm"])
async def test_a_worker_gone_for_good_has_its_session_adopted_and_loses_nothing(
    workers: tuple[Worker, Worker],
    influxdb: InfluxDB,
    influx_db: str,
    mosquitto: Mosquitto,
    sig: signal.Signals,
) -> None:
    a, b = workers
    for worker in workers:
        worker.env["FOYER_MQTT_ADOPT_AFTER_S"] = "4"  # production: 120
        worker.start()
    await eventually(lambda: a.ready() and b.ready(), within=30)
    # b never restarted: the broker still gives its session a share
    acknowledged = await stream_with(mosquitto, a, b, lambda: b.kill(sig))
    await eventually(lambda: stored(influxdb, influx_db) == acknowledged, within=60)
    assert a.sample("foyer_mqtt_adoptions_total", outcome="adopted") == 1
