"""InfluxDB down: writes are spooled durably, acknowledged, and replayed in order."""

from __future__ import annotations

import asyncio
from pathlib import Path

from core.records import METER_INDEX, Record
from core.store.influx import InfluxStore
from core.store.spool import Spool, SpoolingStore
from tests.servers import InfluxDB

T0 = 1_760_000_000_000_000_000


def rec(i: int, litres: int) -> Record:
    return Record(METER_INDEX, "m-1", T0 + i * 10**9, (("index_l", litres),))


async def wait_until(predicate, within: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + within
    while not await predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.1)


async def test_outage_spools_then_replays_in_order(
    influxdb: InfluxDB, influx_db: str, tmp_path: Path
) -> None:
    influx = InfluxStore(influxdb.url, influx_db)
    await influx.open()
    store = SpoolingStore(influx, Spool(tmp_path / "spool.sqlite"))
    replayed: list[list[Record]] = []
    store.on_replayed = lambda records: replayed.append(list(records))  # e.g. the roll-up
    await store.open()
    replayer = asyncio.create_task(store.run_replayer())
    try:
        await store.write([rec(0, 100)])
        influxdb.stop()
        # Same point written twice during the outage: the later value must win on replay.
        await store.write([rec(1, 200)])
        await store.write([rec(1, 201), rec(2, 300)])
        assert store.pending == 2
        influxdb.start()

        async def drained() -> bool:
            return store.pending == 0

        await wait_until(drained)
        got = await influx.query(METER_INDEX, "m-1", T0, T0 + 10 * 10**9)
        assert [r.field("index_l") for r in got] == [100, 201, 300]
        assert replayed == [[rec(1, 200)], [rec(1, 201), rec(2, 300)]]  # not the direct write
    finally:
        replayer.cancel()
        await store.close()


async def test_spool_survives_a_restart_of_the_process(
    influxdb: InfluxDB, influx_db: str, tmp_path: Path
) -> None:
    spool_path = tmp_path / "spool.sqlite"
    down = InfluxStore("http://127.0.0.1:9", influx_db)  # nothing listens: an outage
    await down.open()
    first = SpoolingStore(down, Spool(spool_path))
    await first.open()
    await first.write([rec(0, 7)])
    await first.close()

    influx = InfluxStore(influxdb.url, influx_db)
    await influx.open()
    second = SpoolingStore(influx, Spool(spool_path))
    await second.open()
    assert second.pending == 1
    replayer = asyncio.create_task(second.run_replayer())
    try:

        async def drained() -> bool:
            return second.pending == 0

        await wait_until(drained)
        got = await influx.query(METER_INDEX, "m-1", T0, T0 + 1)
        assert [r.field("index_l") for r in got] == [7]
    finally:
        replayer.cancel()
        await second.close()
