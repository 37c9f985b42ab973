"""Commissioning end to end: the technician API issues credentials, the broker (dynamic
security) enforces them, and `mosquitto_pub` / `mosquitto_sub` (clients Foyer did not
write) act as the devices."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from core.registry.people import People
from core.service import Foyer, running
from core.settings import Settings
from tests.e2e.conftest import counter, eventually, influx_query
from tests.servers import InfluxDB, SecureMosquitto, binary, free_port

INGEST_PASSWORD = "ingest-" + uuid.uuid4().hex
TECH_PASSWORD = "a long technician passphrase"


def pack(device: str, value: float) -> bytes:
    return json.dumps(
        [
            {
                "bn": f"urn:dev:foyer:{device}:",
                "bt": int(time.time()),
                "n": "volume",
                "u": "m3",
                "v": value,
            }
        ]
    ).encode()


def lift(bin_id: str) -> bytes:
    return json.dumps(
        [
            {
                "bn": f"urn:dev:foyer:{bin_id}:",
                "t": int(time.time()),
                "n": "lift",
                "v": 12.5,
                "u": "kg",
            }
        ]
    ).encode()


@pytest.fixture
async def foyer(
    tmp_path: Path, influxdb: InfluxDB, influx_db: str, secure_mosquitto: SecureMosquitto
) -> AsyncIterator[Foyer]:
    port = secure_mosquitto.port
    settings = Settings(
        data_dir=tmp_path / "data",
        influx_url=influxdb.url,
        influx_db=influx_db,
        mqtt_url=f"mqtt://foyer-ingest:{INGEST_PASSWORD}@127.0.0.1:{port}",
        mqtt_admin_url=secure_mosquitto.admin_url,
        mqtt_client_id=f"foyer-test-{uuid.uuid4().hex[:8]}",
        coap_bind=f"127.0.0.1:{free_port(kind=2)}",
        http_bind="127.0.0.1:0",
    )
    async with running(settings) as f:
        assert f.mqtt is not None
        await asyncio.wait_for(f.mqtt.subscribed.wait(), 10)
        f.registry.add_household("h-1", address="2 impasse des Tilleuls")
        People(f.registry).add_user("tech", TECH_PASSWORD, ["technician"], actor="test")
        yield f


@pytest.fixture
async def tech(foyer: Foyer) -> AsyncIterator[aiohttp.ClientSession]:
    base = f"http://127.0.0.1:{foyer.http_port}"
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(base_url=base, cookie_jar=jar) as session:
        body = {"username": "tech", "password": TECH_PASSWORD}
        async with session.post("/api/login", json=body) as r:
            assert r.status == 200
        yield session


async def commission(tech: aiohttp.ClientSession, **body: Any) -> dict[str, Any]:
    async with tech.post("/api/devices", json=body) as r:
        assert r.status == 201, await r.text()
        result: dict[str, Any] = await r.json()
    assert result["credentials"]["mqtt"]["username"] == body["device_id"]
    return result


async def device_pub(
    broker: SecureMosquitto, user: str, password: str, topic: str, payload: bytes
) -> tuple[int, str]:
    """mosquitto_pub as the device, MQTT 5 so a refused PUBLISH is reported back."""
    proc = await asyncio.create_subprocess_exec(
        binary("mosquitto_pub"),
        "-h",
        "127.0.0.1",
        "-p",
        str(broker.port),
        "-V",
        "mqttv5",
        "-q",
        "1",
        "-u",
        user,
        "-P",
        password,
        "-i",
        f"{user}-{uuid.uuid4().hex[:6]}",
        "-t",
        topic,
        "-s",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate(payload)
    assert proc.returncode is not None
    return proc.returncode, (out + err).decode()


def stored(influxdb: InfluxDB, db: str, measurement: str, device: str) -> int:
    rows = influx_query(influxdb, db, f"SELECT * FROM {measurement}")  # noqa: S608 - test constant
    return sum(1 for row in rows if row["device_id"] == device)


async def test_a_commissioned_meter_publishes_as_itself_and_goes_active(
    foyer: Foyer,
    tech: aiohttp.ClientSession,
    secure_mosquitto: SecureMosquitto,
    influxdb: InfluxDB,
    influx_db: str,
) -> None:
    result = await commission(tech, device_id="m-1", kind="meter", dwelling_id="d-h-1")
    assert result["device"]["status"] == "pending"
    password = result["credentials"]["mqtt"]["password"]
    code, out = await device_pub(
        secure_mosquitto, "m-1", password, "meters/m-1/readings", pack("m-1", 12.345)
    )
    assert code == 0, out
    await eventually(lambda: stored(influxdb, influx_db, "meter_index", "m-1") == 1)
    await foyer.directory.flush_seen()
    async with tech.get("/api/devices/m-1") as r:
        assert (await r.json())["status"] == "active"


async def test_a_device_cannot_publish_for_another_or_with_a_wrong_password(
    foyer: Foyer,
    tech: aiohttp.ClientSession,
    secure_mosquitto: SecureMosquitto,
    influxdb: InfluxDB,
    influx_db: str,
) -> None:
    m1 = await commission(tech, device_id="m-1", kind="meter", dwelling_id="d-h-1")
    await commission(tech, device_id="m-2", kind="meter", dwelling_id="d-h-1")
    password = m1["credentials"]["mqtt"]["password"]
    code, out = await device_pub(
        secure_mosquitto, "m-1", password, "meters/m-2/readings", pack("m-2", 1.0)
    )
    assert "not authori" in out.lower(), (code, out)  # PUBACK reason 0x87
    code, out = await device_pub(
        secure_mosquitto, "m-1", "wrong-" + password, "meters/m-1/readings", pack("m-1", 1.0)
    )
    assert code != 0 and "not authori" in out.lower(), out  # CONNACK refused
    # A witness: a message that was allowed arrives, so the two above had their chance.
    await device_pub(secure_mosquitto, "m-1", password, "meters/m-1/readings", pack("m-1", 2.0))
    await eventually(lambda: stored(influxdb, influx_db, "meter_index", "m-1") == 1)
    assert stored(influxdb, influx_db, "meter_index", "m-2") == 0


async def test_a_retired_device_is_cut_off_within_seconds(
    foyer: Foyer, tech: aiohttp.ClientSession, secure_mosquitto: SecureMosquitto
) -> None:
    result = await commission(tech, device_id="m-1", kind="meter", dwelling_id="d-h-1")
    password = result["credentials"]["mqtt"]["password"]
    connected = await asyncio.create_subprocess_exec(
        binary("mosquitto_sub"),
        "-h",
        "127.0.0.1",
        "-p",
        str(secure_mosquitto.port),
        "-V",
        "mqttv5",
        "-u",
        "m-1",
        "-P",
        password,
        "-t",
        "meters/m-1/config",
        "-C",
        "2",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert connected.stdout is not None
    # The retained settings arrive first: the device is connected and subscribed.
    first = await asyncio.wait_for(connected.stdout.readline(), 10)
    assert json.loads(first) == {"report_interval_s": 3600}
    async with tech.post("/api/devices/m-1/retire") as r:
        assert r.status == 200 and (await r.json())["device"]["status"] == "retired"
    await asyncio.wait_for(connected.wait(), 5)  # kicked by the broker, not by a timeout
    code, out = await device_pub(
        secure_mosquitto, "m-1", password, "meters/m-1/readings", pack("m-1", 3.0)
    )
    assert code != 0, out


async def test_a_truck_reports_lifts_for_any_bin_but_nothing_else(
    foyer: Foyer,
    tech: aiohttp.ClientSession,
    secure_mosquitto: SecureMosquitto,
    influxdb: InfluxDB,
    influx_db: str,
) -> None:
    await commission(tech, device_id="b-7", kind="bin", dwelling_id="d-h-1", volume_l=120)
    truck = await commission(tech, device_id="t-1", kind="truck")
    password = truck["credentials"]["mqtt"]["password"]
    code, out = await device_pub(secure_mosquitto, "t-1", password, "bins/b-7/events", lift("b-7"))
    assert code == 0, out
    await eventually(lambda: stored(influxdb, influx_db, "bin_event", "b-7") == 1)
    code, out = await device_pub(
        secure_mosquitto, "t-1", password, "meters/m-1/readings", pack("m-1", 1.0)
    )
    assert "not authori" in out.lower(), (code, out)


async def test_plain_coap_is_refused_by_default(foyer: Foyer) -> None:
    before = counter(
        foyer, "foyer_messages_refused_total", transport="coap", reason="unauthenticated"
    )
    proc = await asyncio.create_subprocess_exec(
        binary("coap-client-notls"),
        "-m",
        "post",
        "-t",
        "110",
        "-f",
        "-",
        "-B",
        "5",
        f"coap://127.0.0.1:{foyer.coap_port}/meters/m-1/readings",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate(pack("m-1", 1.0))
    assert "4.01" in (out + err).decode()
    after = counter(
        foyer, "foyer_messages_refused_total", transport="coap", reason="unauthenticated"
    )
    assert after == before + 1
