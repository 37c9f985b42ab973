from __future__ import annotations

import asyncio
import json
import urllib.parse
import urllib.request
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from core.registry import Registry
from core.service import Foyer, running
from core.settings import Settings
from tests.servers import InfluxDB, Mosquitto, free_port

DEVICES = [("m-1", "meter", "h-1"), ("m-2", "meter", "h-2"), ("b-1", "bin", "h-1"),
           ("c-1", "container", None), ("t-1", "truck", None)]  # fmt: skip


def make_settings(tmp_path: Path, influxdb: InfluxDB, db: str, mosquitto: Mosquitto) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        influx_url=influxdb.url,
        influx_db=db,
        mqtt_url=mosquitto.url,
        mqtt_client_id=f"foyer-test-{uuid.uuid4().hex[:8]}",
        coap_bind=f"127.0.0.1:{free_port(kind=2)}",
        # coap-client-notls speaks plain CoAP; OSCORE has its own tests.
        coap_allow_plain=True,
        http_bind="127.0.0.1:0",
    )


def register(settings: Settings, devices: list[tuple[str, str, str | None]] = DEVICES) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    registry = Registry(settings.registry)
    registry.upgrade()
    registry.import_devices(devices)
    registry.close()


@pytest.fixture
def settings(tmp_path: Path, influxdb: InfluxDB, influx_db: str, mosquitto: Mosquitto) -> Settings:
    s = make_settings(tmp_path, influxdb, influx_db, mosquitto)
    register(s)
    return s


@pytest.fixture
async def foyer(settings: Settings) -> AsyncIterator[Foyer]:
    async with running(settings) as f:
        assert f.mqtt is not None
        await asyncio.wait_for(f.mqtt.subscribed.wait(), 10)
        yield f


def influx_query(influxdb: InfluxDB, db: str, q: str) -> list[dict[str, object]]:
    params = urllib.parse.urlencode({"db": db, "q": q, "epoch": "ns"})
    with urllib.request.urlopen(f"{influxdb.url}/query?{params}", timeout=5) as resp:  # noqa: S310
        data = json.loads(resp.read())
    rows: list[dict[str, object]] = []
    for result in data["results"]:
        for series in result.get("series", []):
            rows += [dict(zip(series["columns"], v, strict=True)) for v in series["values"]]
    return rows


async def eventually(check: Callable[[], Awaitable[bool] | bool], within: float = 20.0) -> None:
    """Poll until `check` holds: the system is asynchronous by design (batching, replay)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        result = check()
        if isinstance(result, Awaitable):
            result = await result
        if result:
            return
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.1)


def counter(foyer: Foyer, name: str, **labels: str) -> float:
    value = foyer.metrics.registry.get_sample_value(name, labels)
    return value or 0.0
