"""A departed ingest worker's MQTT session is adopted (core/ingest/adoption.py): a real
Mosquitto, a real `foyer serve --role ingest` stack in-process, and a departed worker
played by a paho client that joined the group with a persistent session and left.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from core.ingest.adoption import Outcome, lease_name
from core.ingest.mqtt import TOPICS
from core.leader import Lease
from core.records import METER_INDEX, Record
from core.registry import Registry
from core.registry.models import Lease as LeaseRow
from core.service import Foyer, running, worker_spool
from core.settings import Settings
from core.store.spool import Spool
from tests.e2e.conftest import eventually, register
from tests.servers import Mosquitto

GROUP = "g"
METERS: list[tuple[str, str, str | None]] = [(f"m-{n}", "meter", None) for n in range(4)]
BASE = int(time.time()) - 3600


def settings_for(tmp_path: Path, mosquitto: Mosquitto, **kw: float) -> Settings:
    s = Settings(
        data_dir=tmp_path / "data",
        mqtt_url=mosquitto.url,
        mqtt_client_id="w1",
        mqtt_group=GROUP,
        coap_bind="",
        probe_bind="127.0.0.1:0",
        role="ingest",
        **kw,  # type: ignore[arg-type]
    )
    register(s, METERS)
    return s


def client(mosquitto: Mosquitto, client_id: str) -> mqtt.Client:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = 3600
    c.connect("127.0.0.1", mosquitto.port, 30, clean_start=False, properties=props)
    return c


def session_present(mosquitto: Mosquitto, client_id: str) -> bool:
    present: list[bool] = []
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    c.on_connect = lambda _c, _u, flags, _rc, _p: present.append(flags.session_present)
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = 0  # look, and leave nothing behind
    c.connect("127.0.0.1", mosquitto.port, 30, clean_start=False, properties=props)
    while not present:
        c.loop(0.1)
    c.disconnect()
    return present[0]


def departed_worker(mosquitto: Mosquitto, client_id: str = "w2") -> None:
    """Joins the group with a persistent session, then is gone (as if SIGKILLed)."""
    c = client(mosquitto, client_id)
    granted = threading.Event()
    c.on_subscribe = lambda *_args: granted.set()
    c.loop_start()
    c.subscribe([(f"$share/{GROUP}/{t}", SubscribeOptions(qos=1)) for t in TOPICS])
    assert granted.wait(5), "no SUBACK"
    c.disconnect()
    c.loop_stop()


def publish(mosquitto: Mosquitto, first: int, count: int) -> None:
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{first}",
                      protocol=mqtt.MQTTv5)  # fmt: skip
    pub.connect("127.0.0.1", mosquitto.port)
    pub.loop_start()
    for n in range(first, first + count):
        device = METERS[n % len(METERS)][0]
        pack = [{"bn": f"urn:dev:foyer:{device}:", "n": "volume", "u": "l", "v": n,
                 "t": BASE + n}]  # fmt: skip
        pub.publish(f"meters/{device}/readings", json.dumps(pack), qos=1).wait_for_publish(5)
    pub.disconnect()
    pub.loop_stop()


def expire_lease(registry_url: str, client_id: str = "w2") -> None:
    """The departed worker's lease, run out a minute ago."""
    registry = Registry(registry_url)
    long_ago = datetime.now(UTC) - timedelta(minutes=10)
    assert Lease(registry, lease_name(GROUP, client_id), "dead", 60).try_acquire_or_renew(long_ago)
    registry.close()


def lease_names(foyer: Foyer) -> set[str]:
    with foyer.registry.reading() as s:
        return set(s.scalars(LeaseRow.__table__.select().with_only_columns(LeaseRow.name)))


async def stored(foyer: Foyer) -> list[int]:
    rows = []
    for device, _kind, _ in METERS:
        rows += await foyer.store.query(METER_INDEX, device, 0, (BASE + 10**6) * 10**9)
    return sorted(int(dict(r.fields)["index_l"]) for r in rows)


def adoptions(foyer: Foyer, outcome: Outcome) -> float:
    value = foyer.metrics.registry.get_sample_value(
        "foyer_mqtt_adoptions_total", {"outcome": outcome.value}
    )
    return value or 0.0


@pytest.fixture
def departed(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[Settings]:
    """w2 left with 40 readings queued for it (the group's only member), lease run out."""
    settings = settings_for(tmp_path, mosquitto, mqtt_adopt_after_s=3.0)
    departed_worker(mosquitto)
    publish(mosquitto, 0, 40)
    expire_lease(settings.registry)
    yield settings


async def test_a_departed_workers_queue_is_stored_once_and_its_session_ended(
    departed: Settings, mosquitto: Mosquitto
) -> None:
    async with running(departed) as foyer:
        await eventually(lambda: adoptions(foyer, Outcome.ADOPTED) == 1, within=30)
        assert await stored(foyer) == list(range(40))
        assert lease_name(GROUP, "w2") not in lease_names(foyer)
        assert lease_name(GROUP, "w1") in lease_names(foyer)  # our own, held
        assert not await asyncio.to_thread(session_present, mosquitto, "w2")
        await asyncio.to_thread(publish, mosquitto, 40, 10)  # the group: w1 alone now
        await eventually(lambda: _len_is(foyer, 50))
        assert await stored(foyer) == list(range(50))


async def _len_is(foyer: Foyer, n: int) -> bool:
    return len(await stored(foyer)) == n


async def test_a_worker_whose_lease_is_alive_is_not_adopted(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    settings = settings_for(tmp_path, mosquitto, mqtt_adopt_after_s=3.0)
    departed_worker(mosquitto)
    publish(mosquitto, 0, 10)
    registry = Registry(settings.registry)
    registry.upgrade()
    assert Lease(registry, lease_name(GROUP, "w2"), "alive", 3600).try_acquire_or_renew()
    registry.close()
    async with running(settings) as foyer:
        runs = "foyer_job_runs_total"
        await eventually(lambda: (foyer.metrics.registry.get_sample_value(
            runs, {"job": "mqtt-adoption", "outcome": "ok"}) or 0) >= 2)  # fmt: skip
        assert adoptions(foyer, Outcome.ADOPTED) == adoptions(foyer, Outcome.EMPTY) == 0
        assert await stored(foyer) == []  # w2's queue waits for w2
    assert await asyncio.to_thread(session_present, mosquitto, "w2")


async def test_an_owner_coming_back_takes_its_session_over_from_the_adopter(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    settings = settings_for(tmp_path, mosquitto, mqtt_adopt_after_s=3600.0)  # no job run
    owner_settings = replace(settings, data_dir=tmp_path / "w2", mqtt_client_id="w2",
                             registry_url=settings.registry)  # fmt: skip
    departed_worker(mosquitto)
    publish(mosquitto, 0, 10)
    async with running(settings) as foyer:
        assert foyer.sessions and foyer.mqtt and foyer.pipeline
        keeper = type(foyer.sessions)(foyer.registry, foyer.mqtt.settings, foyer.pipeline,
                                      foyer.metrics, 3600.0, quiet_s=60)  # fmt: skip
        lease = Lease(foyer.registry, lease_name(GROUP, "w2"), "adopter", 3600)
        adoption = asyncio.create_task(keeper.adopt("w2", lease))
        await eventually(lambda: _len_is(foyer, 10))  # the queue is in: adoption goes on
        async with running(owner_settings) as owner:  # w2 restarts: its session is its own
            result = await asyncio.wait_for(adoption, 20)
            assert owner.mqtt is not None
            await eventually(owner.mqtt.subscribed.is_set)
            await asyncio.to_thread(publish, mosquitto, 10, 20)  # the group: w1 and w2
            await eventually(lambda: _len_is(owner, 10))  # its share of the new ones
        assert result.outcome is Outcome.TAKEN_OVER and result.messages == 10
        assert adoptions(foyer, Outcome.TAKEN_OVER) == 1
        await eventually(lambda: _len_is(foyer, 20))  # and ours


async def test_a_session_the_broker_no_longer_has_is_found_empty(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    settings = settings_for(tmp_path, mosquitto, mqtt_adopt_after_s=3.0)
    expire_lease(settings.registry, "w9")  # a lease, but w9 never connected
    async with running(settings) as foyer:
        await eventually(lambda: adoptions(foyer, Outcome.EMPTY) == 1)
        assert lease_name(GROUP, "w9") not in lease_names(foyer)
    assert not await asyncio.to_thread(session_present, mosquitto, "w9")


async def test_a_departed_workers_spool_on_the_shared_data_dir_is_taken_over(
    departed: Settings, mosquitto: Mosquitto
) -> None:
    # w2 had acknowledged 2 batches into its spool during an InfluxDB outage, then died
    spool = Spool(worker_spool(departed.data_dir, "w2"))
    spool.open()
    for first in (100, 103):
        spool.append([Record(METER_INDEX, "m-1", (BASE + n) * 10**9, (("index_l", n),))
                      for n in range(first, first + 3)])  # fmt: skip
    async with running(departed) as foyer:
        await eventually(lambda: adoptions(foyer, Outcome.ADOPTED) == 1, within=30)
        assert await stored(foyer) == [*range(40), *range(100, 106)]
    assert spool.depth() == (0, 0)
    spool.close()
