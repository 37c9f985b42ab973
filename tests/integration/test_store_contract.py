"""One contract, every telemetry store: embedded SQLite, InfluxDB, InfluxDB behind the spool."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from core.records import BIN_EVENT, METER_INDEX, Record
from core.store.embedded import EmbeddedStore
from core.store.influx import InfluxStore
from core.store.port import TelemetryStore
from core.store.spool import Spool, SpoolingStore
from tests.servers import InfluxDB

T0 = 1_760_000_000_123_456_000


@pytest.fixture(params=["embedded", "influxdb", "spooling-influxdb"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[TelemetryStore]:
    kind = request.param
    result: TelemetryStore
    if kind == "embedded":
        embedded = EmbeddedStore(tmp_path / "telemetry.sqlite")
        await embedded.open()
        result = embedded
    else:
        server: InfluxDB = request.getfixturevalue("influxdb")
        influx = InfluxStore(server.url, request.getfixturevalue("influx_db"))
        await influx.open()
        result = influx
        if kind == "spooling-influxdb":
            spooling = SpoolingStore(influx, Spool(tmp_path / "spool.sqlite"))
            await spooling.open()
            result = spooling
    yield result
    await result.close()


def index(device: str, offset_s: int, litres: int, flag: str | None = None) -> Record:
    fields: tuple[tuple[str, int | str], ...] = (("index_l", litres),)
    if flag:
        fields += (("flag", flag),)
    return Record(METER_INDEX, device, T0 + offset_s * 10**9, fields)


async def test_written_records_read_back_exactly(store: TelemetryStore) -> None:
    records = [index("m-1", 0, 1000), index("m-1", 900, 1012), index("m-2", 0, 5)]
    await store.write(records)
    got = await store.query(METER_INDEX, "m-1", T0, T0 + 10**12)
    assert got == records[:2]
    assert isinstance(got[0].field("index_l"), int)


async def test_same_identity_overwrites_instead_of_duplicating(store: TelemetryStore) -> None:
    await store.write([index("m-1", 0, 1000)])
    await store.write([index("m-1", 0, 1000), index("m-1", 0, 1000)])
    assert await store.query(METER_INDEX, "m-1", T0, T0 + 1) == [index("m-1", 0, 1000)]


async def test_bin_events_keep_kind_tag_and_optional_fields(store: TelemetryStore) -> None:
    lift = Record(
        BIN_EVENT, "b-1", T0, (("source", "t-1"), ("weight_kg", 12.5)), (("kind", "lift"),)
    )
    bare = Record(BIN_EVENT, "b-1", T0 + 1000, (("source", "b-1"),), (("kind", "lift"),))
    deposit = Record(
        BIN_EVENT,
        "b-1",
        T0 + 2000,
        (("badge", 'x y,z="q"'), ("source", "c-1")),
        (("kind", "deposit"),),
    )
    await store.write([lift, bare, deposit])
    got = await store.query(BIN_EVENT, "b-1", T0, T0 + 10**9)
    assert [(dict(r.tags), dict(r.fields)) for r in got] == [
        ({"kind": "lift"}, {"source": "t-1", "weight_kg": 12.5}),
        ({"kind": "lift"}, {"source": "b-1"}),
        ({"kind": "deposit"}, {"badge": 'x y,z="q"', "source": "c-1"}),
    ]


async def test_query_window_is_half_open(store: TelemetryStore) -> None:
    await store.write([index("m-1", 0, 1), index("m-1", 1, 2)])
    got = await store.query(METER_INDEX, "m-1", T0, T0 + 10**9)
    assert [r.field("index_l") for r in got] == [1]


async def test_flag_field_round_trips(store: TelemetryStore) -> None:
    await store.write([index("m-1", 0, 9, flag="backwards")])
    (got,) = await store.query(METER_INDEX, "m-1", T0, T0 + 1)
    assert got.field("flag") == "backwards"


async def test_query_many_reads_only_the_named_devices_in_the_window_by_time(
    store: TelemetryStore,
) -> None:
    await store.write([index("m-1", 0, 1), index("m-2", 1, 5), index("m-3", 2, 7),
                       index("m-1", 3, 2), index("m-'q", 4, 8), index("m-2", 60, 6)])  # fmt: skip
    got = await store.query_many(METER_INDEX, ["m-1", "m-2", "m-'q"], T0, T0 + 60 * 10**9)
    assert [(r.device_id, r.field("index_l")) for r in got] == [
        ("m-1", 1), ("m-2", 5), ("m-1", 2), ("m-'q", 8)]  # fmt: skip
    assert await store.query_many(METER_INDEX, [], T0, T0 + 60 * 10**9) == []
    assert await store.query_many(METER_INDEX, ["m-9"], T0, T0 + 60 * 10**9) == []


async def test_query_many_answers_for_more_devices_than_one_statement_binds(
    store: TelemetryStore,
) -> None:
    devices = [f"m-{n}" for n in range(1200)]
    await store.write([index(d, n % 50, n) for n, d in enumerate(devices)])
    got = await store.query_many(METER_INDEX, devices[::2], T0, T0 + 60 * 10**9)
    assert sorted(int(str(r.field("index_l"))) for r in got) == list(range(0, 1200, 2))
    assert [r.time_ns for r in got] == sorted(r.time_ns for r in got)


async def test_query_columns_gives_each_named_device_its_field_as_arrays_by_time(
    store: TelemetryStore,
) -> None:
    await store.write([index("m-2", 5, 50), index("m-1", 3, 12), index("m-1", 0, 10),
                       index("m-3", 1, 99), index("m-'q", 2, 7), index("m-1", 60, 13)])  # fmt: skip
    got = await store.query_columns(METER_INDEX, ["m-1", "m-2", "m-'q", "m-9"], "index_l",
                                    T0, T0 + 60 * 10**9)  # fmt: skip
    assert sorted(got) == ["m-'q", "m-1", "m-2"]  # m-3 not asked, m-9 has no point
    assert got["m-1"].time_ns.tolist() == [T0, T0 + 3 * 10**9]  # half-open window
    assert got["m-1"].values.tolist() == [10.0, 12.0]
    assert (got["m-1"].time_ns.dtype, got["m-1"].values.dtype) == (
        np.dtype("int64"),
        np.dtype("float64"),
    )
    assert got["m-'q"].values.tolist() == [7.0]
    assert await store.query_columns(METER_INDEX, [], "index_l", T0, T0 + 10**12) == {}


async def test_query_columns_leaves_out_points_without_a_numeric_value_of_the_field(
    store: TelemetryStore,
) -> None:
    lift = Record(
        BIN_EVENT, "b-1", T0, (("source", "t-1"), ("weight_kg", 12.5)), (("kind", "lift"),)
    )
    bare = Record(BIN_EVENT, "b-1", T0 + 7, (("source", "b-1"),), (("kind", "lift"),))
    await store.write([lift, bare])
    got = await store.query_columns(BIN_EVENT, ["b-1"], "weight_kg", T0, T0 + 10**9)
    assert got["b-1"].time_ns.tolist() == [T0]  # nanoseconds kept exactly, not via float
    assert got["b-1"].values.tolist() == [12.5]
    assert await store.query_columns(BIN_EVENT, ["b-1"], "source", T0, T0 + 10**9) == {}


async def test_query_columns_answers_for_more_devices_than_one_statement_binds(
    store: TelemetryStore,
) -> None:
    devices = [f"m-{n}" for n in range(1200)]
    await store.write([index(d, n % 50, n) for n, d in enumerate(devices)])
    got = await store.query_columns(METER_INDEX, devices[::2], "index_l", T0, T0 + 60 * 10**9)
    assert sorted(got) == sorted(devices[::2])
    assert all(got[d].values.tolist() == [float(int(d[2:]))] for d in got)
