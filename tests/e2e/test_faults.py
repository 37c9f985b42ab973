"""Fault injection: InfluxDB outage, broker restart, SIGKILL of a worker mid-stream.

After each, every message the broker acknowledged to the publisher is in InfluxDB,
exactly once.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from core.service import Foyer, running
from core.settings import Settings
from tests.e2e.conftest import counter, eventually, influx_query, make_settings, register
from tests.servers import InfluxDB, Mosquitto, binary, free_port

METERS = [("m-000", "meter", None)]
BASE = int(time.time()) - 3600


def stored(influxdb: InfluxDB, db: str) -> list[int]:
    rows = influx_query(influxdb, db, "SELECT index_l FROM meter_index")
    return sorted(int(str(r["index_l"])) for r in rows)


def one_device_lines(start: int, count: int) -> bytes:
    out = [
        json.dumps([{"bn": "urn:dev:foyer:m-000:", "n": "volume", "u": "l", "v": n, "t": BASE + n}])
        for n in range(start, start + count)
    ]
    return ("\n".join(out) + "\n").encode()


async def publish_one_device(mosquitto: Mosquitto, start: int, count: int) -> None:
    proc = await asyncio.create_subprocess_exec(
        binary("mosquitto_pub"), "-p", str(mosquitto.port), "-h", "127.0.0.1", "-V", "mqttv5",
        "-q", "1", "-t", "meters/m-000/readings", "-l", stdin=asyncio.subprocess.PIPE,
    )  # fmt: skip
    await proc.communicate(one_device_lines(start, count))
    assert proc.returncode == 0


def fault_settings(tmp_path: Path, influxdb: InfluxDB, db: str, mosquitto: Mosquitto) -> Settings:
    s = make_settings(tmp_path, influxdb, db, mosquitto)
    register(s, METERS)
    return s


async def test_influxdb_outage_mid_stream_loses_nothing(
    tmp_path: Path, influxdb: InfluxDB, influx_db: str, mosquitto: Mosquitto
) -> None:
    settings = fault_settings(tmp_path, influxdb, influx_db, mosquitto)
    async with running(settings) as foyer:
        await first_messages_stored(foyer, mosquitto, influxdb, influx_db, 200)
        influxdb.stop()
        try:
            await publish_one_device(mosquitto, 200, 300)
            await eventually(
                lambda: (
                    counter(foyer, "foyer_records_stored_total", measurement="meter_index") >= 500
                )
            )  # acked while InfluxDB is down
        finally:
            influxdb.start()
        await eventually(lambda: stored(influxdb, influx_db) == list(range(500)), within=60)


async def first_messages_stored(
    foyer: Foyer, mosquitto: Mosquitto, influxdb: InfluxDB, db: str, count: int
) -> None:
    """Foyer subscribed, `count` messages published and stored: the stream is flowing."""
    assert foyer.mqtt is not None
    await asyncio.wait_for(foyer.mqtt.subscribed.wait(), 10)
    await publish_one_device(mosquitto, 0, count)
    await eventually(lambda: len(stored(influxdb, db)) == count)


async def test_broker_restart_loses_nothing(
    tmp_path: Path, influxdb: InfluxDB, influx_db: str, mosquitto: Mosquitto
) -> None:
    settings = fault_settings(tmp_path, influxdb, influx_db, mosquitto)
    async with running(settings) as foyer:
        await first_messages_stored(foyer, mosquitto, influxdb, influx_db, 100)
        await asyncio.to_thread(mosquitto.restart)
        await eventually(foyer.mqtt.subscribed.is_set, within=30)  # paho reconnected by itself
        await publish_one_device(mosquitto, 100, 100)
        await eventually(lambda: stored(influxdb, influx_db) == list(range(200)))
    # Foyer offline: the broker queues for its persistent session, across a restart too.
    await publish_one_device(mosquitto, 200, 100)
    await asyncio.to_thread(mosquitto.restart)
    async with running(settings):
        await eventually(lambda: stored(influxdb, influx_db) == list(range(300)))


def start_worker(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "FOYER_DATA_DIR": str(settings.data_dir),
        "FOYER_INFLUX_URL": settings.influx_url,
        "FOYER_INFLUX_DB": settings.influx_db,
        "FOYER_MQTT_URL": settings.mqtt_url,
        "FOYER_MQTT_CLIENT_ID": settings.mqtt_client_id,
        "FOYER_COAP_BIND": "",
        "FOYER_HTTP_BIND": f"127.0.0.1:{free_port()}",
    }
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "core.cli", "serve"], env=env, stdout=out, stderr=out
        )


async def test_sigkill_of_a_worker_mid_stream_loses_nothing(
    tmp_path: Path, influxdb: InfluxDB, influx_db: str, mosquitto: Mosquitto
) -> None:
    settings = fault_settings(tmp_path, influxdb, influx_db, mosquitto)
    log = tmp_path / "worker.log"
    worker = start_worker(settings, log)
    try:
        await eventually(lambda: b"MQTT connected" in log.read_bytes(), within=30)
        total = 3000
        publisher = asyncio.create_task(publish_one_device(mosquitto, 0, total))
        await eventually(lambda: len(stored(influxdb, influx_db)) >= 300, within=30)
        worker.send_signal(signal.SIGKILL)  # mid-stream: batches in flight, acks unsent
        worker.wait()
        await publisher
        worker = start_worker(settings, log)  # same client id: the session resumes
        await eventually(lambda: stored(influxdb, influx_db) == list(range(total)), within=60)
    finally:
        worker.kill()
        worker.wait()
