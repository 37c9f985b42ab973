"""`foyer store setup` and the `water-rollup` job against a real InfluxDB 1.x and registry."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from core import rollup_job
from core.cli import main
from core.records import METER_INDEX, Record
from core.registry import Registry
from core.registry.models import Binding, Device, Dwelling
from core.service import running
from core.settings import Settings
from core.store.embedded import EmbeddedStore
from core.store.influx import InfluxStore
from core.store.setup import SetupError, setup
from meters.rollup import HOUR_NS, PARIS, paris_day_start
from tests.servers import InfluxDB

pytestmark = pytest.mark.servers

H = HOUR_NS
M = 60 * 10**9
# A Paris midnight a few days back (InfluxDB drops points older than the raw policy).
D = paris_day_start(int((datetime.now(UTC) - timedelta(days=5)).timestamp()) * 10**9)
D_BEFORE = paris_day_start(D - H)  # the Paris day before D
NOW = datetime.fromtimestamp((D + 13 * H + 20 * M) / 10**9, UTC)
_names = itertools.count()


def _settings(server: InfluxDB, db: str, **changes: Any) -> Settings:
    return Settings(influx_url=server.url, influx_db=db, **changes)


@pytest.fixture
async def influx(influxdb: InfluxDB, influx_db: str) -> AsyncIterator[InfluxStore]:
    """A database set up as in production (raw default, rollup), read through Foyer's store."""
    await setup(_settings(influxdb, influx_db))
    store = InfluxStore(influxdb.url, influx_db)
    await store.open()
    yield store
    await store.close()


async def _policies(store: InfluxStore, db: str) -> dict[str, tuple[str, bool]]:
    data = await store.influxql(f'SHOW RETENTION POLICIES ON "{db}"')
    rows = data["results"][0]["series"][0]["values"]
    return {row[0]: (row[1], row[4]) for row in rows}  # name, duration, ..., default


async def test_setup_creates_the_database_and_policies_then_changes_nothing(
    influxdb: InfluxDB,
) -> None:
    db = f"setup{next(_names)}"
    done = await setup(_settings(influxdb, db))
    assert done == [
        f"created database {db}",
        f'CREATE RETENTION POLICY "raw" ON "{db}" DURATION 730d REPLICATION 1 DEFAULT',
        f'CREATE RETENTION POLICY "rollup" ON "{db}" DURATION INF REPLICATION 1',
    ]
    assert await setup(_settings(influxdb, db)) == []
    store = InfluxStore(influxdb.url, db)
    await store.open()
    try:
        policies = await _policies(store, db)
    finally:
        await store.close()
    assert policies["raw"] == ("17520h0m0s", True)
    assert policies["rollup"] == ("0s", False)
    assert policies["autogen"][1] is False


async def test_setup_alters_a_policy_whose_duration_changed(
    influxdb: InfluxDB, influx: InfluxStore, influx_db: str
) -> None:
    done = await setup(_settings(influxdb, influx_db, influx_raw_retention="52w"))
    assert done == [f'ALTER RETENTION POLICY "raw" ON "{influx_db}" DURATION 364d DEFAULT']
    assert (await _policies(influx, influx_db))["raw"] == ("8736h0m0s", True)


async def test_points_written_before_setup_stay_in_autogen_and_setup_says_so(
    influxdb: InfluxDB, influx_db: str
) -> None:
    store = InfluxStore(influxdb.url, influx_db)
    await store.open()
    try:
        before = Record(METER_INDEX, "wm-1", D, (("index_l", 10),))
        await store.write([before])
        done = await setup(_settings(influxdb, influx_db))
        assert any(line.startswith("note: points written before") for line in done)
        after = Record(METER_INDEX, "wm-1", D + H, (("index_l", 12),))
        await store.write([after])
        # Foyer's reads name no policy: they see the default, raw, from now on.
        assert await store.query(METER_INDEX, "wm-1", D - H, D + 2 * H) == [after]
    finally:
        await store.close()


def test_the_cli_sets_up_and_reports_nothing_to_change_the_second_time(
    influxdb: InfluxDB, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    db = f"cli{next(_names)}"
    monkeypatch.setenv("FOYER_INFLUX_URL", influxdb.url)
    monkeypatch.setenv("FOYER_INFLUX_DB", db)
    monkeypatch.setenv("FOYER_INFLUX_ROLLUP_RETENTION", "3650d")
    assert main(["store", "setup"]) == 0
    assert f'CREATE RETENTION POLICY "rollup" ON "{db}" DURATION 3650d' in capsys.readouterr().out
    assert main(["store", "setup"]) == 0
    assert capsys.readouterr().out == f"database {db}: already set up, nothing changed\n"


@pytest.fixture
async def influxdb2() -> AsyncIterator[str]:
    """A stand-in answering /ping as InfluxDB 2.x does (the real one is not on this machine)."""

    async def ping(_request: web.Request) -> web.Response:
        return web.Response(status=204, headers={"X-Influxdb-Version": "v2.7.10"})

    app = web.Application()
    app.router.add_get("/ping", ping)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


async def test_setup_on_influxdb_2_says_to_create_buckets_and_dbrp_mappings(
    influxdb2: str,
) -> None:
    with pytest.raises(SetupError) as err:
        await setup(Settings(influx_url=influxdb2))
    message = str(err.value)
    assert message.startswith("InfluxDB v2.7.10: retention policies cannot be created")
    assert (
        "influx v1 dbrp create --db foyer --rp raw --bucket-id <foyer-raw id> --default" in message
    )


# ---- the water-rollup job ----------------------------------------------------------------


def _meter(registry: Registry, device: str, commune: str | None, until: int | None = None) -> None:
    since = datetime.fromtimestamp((D - 240 * H) / 10**9, UTC)
    end = None if until is None else datetime.fromtimestamp(until / 10**9, UTC)
    with registry.transaction() as s:
        s.add(Dwelling(id=f"d-{device}", address="1 rue de la Fontaine", commune=commune))
        s.add(Device(device_id=device, kind="meter", created_at=since, status="active"))
        s.flush()
        s.add(Binding(device_id=device, dwelling_id=f"d-{device}", valid_from=since, valid_to=end))


def _index(device: str, at: int, litres: int, flag: str | None = None) -> Record:
    fields: tuple[tuple[str, int | str], ...] = (("index_l", litres),)
    return Record(METER_INDEX, device, at, fields + ((("flag", flag),) if flag else ()))


@pytest.fixture
async def territory(registry: Registry, influx: InfluxStore) -> None:
    for device, commune in (("m-1", "Valence"), ("m-2", "Valence"), ("m-3", "Romans")):
        _meter(registry, device, commune)
    _meter(registry, "m-4", None)  # a dwelling without commune: in no commune's total
    _meter(registry, "m-5", "Valence", until=D)  # removed at D: its later water is nobody's
    await influx.write(
        [
            _index("m-1", D - 60 * H, 1000),  # before the window: the baseline
            _index("m-1", D + 8 * H + 10 * M, 1010),
            _index("m-1", D + 8 * H + 40 * M, 1025),
            _index("m-1", D + 9 * H + 30 * M, 1040),
            _index("m-1", D + 11 * H + 5 * M, 1100),  # 10:00 silent: all of it at 11:00
            _index("m-1", D + 13 * H + 10 * M, 1200),  # the hour still open: not yet
            _index("m-2", D - 14 * H, 500),  # no earlier index: no point for this hour
            _index("m-2", D - 30 * M, 530),  # the day before D (Paris)
            _index("m-2", D + 8 * H + 15 * M, 520, flag="backwards"),
            _index("m-2", D + 9 * H + 45 * M, 527),
            _index("m-3", D + 8 * H + 20 * M, 10),
            _index("m-3", D + 9 * H + 20 * M, 13),
            _index("m-4", D + 8 * H, 5),
            _index("m-4", D + 9 * H, 9),
            _index("m-5", D + 8 * H, 50),
            _index("m-5", D + 9 * H, 90),
        ]
    )


async def _points(store: InfluxStore, measurement: str) -> set[tuple[Any, ...]]:
    data = await store.influxql(f'SELECT * FROM "rollup"."{measurement}"')  # noqa: S608 - our names
    series = data["results"][0].get("series", [])
    if not series:
        return set()
    columns = series[0]["columns"]
    return {tuple(dict(zip(columns, row, strict=True)).items()) for row in series[0]["values"]}


def _use(device: str, commune: str, at: int, litres: int) -> tuple[Any, ...]:
    return (("time", at), ("commune", commune), ("device_id", device), ("litres", litres))


def _commune(commune: str, at: int, litres: int, meters: int) -> tuple[Any, ...]:
    return (("time", at), ("commune", commune), ("litres", litres), ("meters", meters))


@pytest.mark.usefixtures("territory")
async def test_the_job_writes_exact_hourly_daily_and_commune_litres_to_the_rollup_policy(
    influx: InfluxStore, registry: Registry
) -> None:
    await rollup_job.run(influx, registry, now=NOW)
    assert await _points(influx, "water_use_1h") == {
        _use("m-1", "Valence", D + 8 * H, 25),
        _use("m-1", "Valence", D + 9 * H, 15),
        _use("m-1", "Valence", D + 11 * H, 60),
        _use("m-2", "Valence", D - H, 30),
        _use("m-2", "Valence", D + 8 * H, 0),  # backwards: 0, never negative
        _use("m-2", "Valence", D + 9 * H, 7),
        _use("m-3", "Romans", D + 9 * H, 3),
    }
    assert await _points(influx, "water_use_1d") == {
        _use("m-1", "Valence", D, 100),
        _use("m-2", "Valence", D_BEFORE, 30),
        _use("m-2", "Valence", D, 7),
        _use("m-3", "Romans", D, 3),
    }
    assert await _points(influx, "commune_water_use_1h") == {
        _commune("Valence", D - H, 30, 1),
        _commune("Valence", D + 8 * H, 25, 2),
        _commune("Valence", D + 9 * H, 22, 2),
        _commune("Valence", D + 11 * H, 60, 1),
        _commune("Romans", D + 9 * H, 3, 1),
    }
    assert await _points(influx, "commune_water_use_1d") == {
        _commune("Valence", D_BEFORE, 30, 1),
        _commune("Valence", D, 107, 2),
        _commune("Romans", D, 3, 1),
    }


@pytest.mark.usefixtures("territory")
async def test_rerunning_the_job_writes_identical_points(
    influx: InfluxStore, registry: Registry
) -> None:
    measurements = ("water_use_1h", "water_use_1d", "commune_water_use_1h", "commune_water_use_1d")
    await rollup_job.run(influx, registry, now=NOW)
    first = [await _points(influx, m) for m in measurements]
    again = await rollup_job.run(influx, registry, now=NOW)
    assert again.start_ns == D  # resumed: only the day still being filled
    assert [await _points(influx, m) for m in measurements] == first


@pytest.mark.usefixtures("territory")
async def test_a_later_run_adds_the_hour_that_closed_and_grows_the_day(
    influx: InfluxStore, registry: Registry
) -> None:
    await rollup_job.run(influx, registry, now=NOW)
    await rollup_job.run(influx, registry, now=NOW + timedelta(hours=1))
    assert _use("m-1", "Valence", D + 13 * H, 100) in await _points(influx, "water_use_1h")
    assert _use("m-1", "Valence", D, 200) in await _points(influx, "water_use_1d")
    assert _commune("Valence", D, 207, 2) in await _points(influx, "commune_water_use_1d")


@pytest.mark.usefixtures("territory")
async def test_readings_stored_after_their_day_was_rolled_up_are_rolled_up_at_the_next_run(
    influx: InfluxStore, registry: Registry
) -> None:
    later = NOW + timedelta(days=2)
    await rollup_job.run(influx, registry, now=NOW)
    now_ns = int(later.timestamp() * 1e9)
    await influx.write([_index("m-1", now_ns - 3 * H, 1300), _index("m-1", now_ns - 2 * H, 1310)])
    await rollup_job.run(influx, registry, now=later)  # D is behind the window from now on
    # Then m-3 sends the readings it buffered during an outage on day D.
    backlog = [_index("m-3", D + 15 * H + 5 * M, 20), _index("m-3", D + 16 * H + 5 * M, 26)]
    await influx.write(backlog)
    late = rollup_job.LateDays(registry, clock=later.timestamp)
    late.note(backlog)
    late.note([_index("m-3", now_ns, 30)])  # today's: not late
    await late.flush()
    assert rollup_job.backlog(registry) == [(D, later.replace(microsecond=0))]
    run = await rollup_job.run(influx, registry, now=later + timedelta(minutes=15))
    assert run.late_days == (D,) and run.start_ns > D
    assert _use("m-3", "Romans", D + 15 * H, 7) in await _points(influx, "water_use_1h")
    assert _use("m-3", "Romans", D, 16) in await _points(influx, "water_use_1d")  # 3 + 7 + 6
    assert _commune("Romans", D, 16, 1) in await _points(influx, "commune_water_use_1d")
    assert _commune("Valence", D, 207, 2) in await _points(influx, "commune_water_use_1d")
    assert rollup_job.backlog(registry) == []  # done: the next run does not redo it


@pytest.mark.usefixtures("territory")
def test_the_cli_recomputes_whole_days_on_demand(
    influxdb: InfluxDB,
    influx_db: str,
    registry_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("FOYER_INFLUX_URL", influxdb.url)
    monkeypatch.setenv("FOYER_INFLUX_DB", influx_db)
    monkeypatch.setenv("FOYER_REGISTRY_URL", registry_url)
    day = datetime.fromtimestamp(D / 10**9, PARIS).date()
    before = datetime.fromtimestamp(D_BEFORE / 10**9, PARIS).date()
    assert main(["store", "rollup", before.isoformat(), day.isoformat()]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"{before.isoformat()}: 4 meters, 1 hourly points",  # bound: m-1, 2, 3, 5; m-2 used
        f"{day.isoformat()}: 3 meters, 7 hourly points",  # m-5 unbound at D; m-1 13:00 too
    ]
    data = asyncio.run(_query(influxdb.url, influx_db))
    assert data == {("Valence", 30, 1), ("Valence", 207, 2), ("Romans", 3, 1)}
    assert main(["store", "rollup", day.isoformat(), before.isoformat()]) == 2


async def _query(url: str, db: str) -> set[tuple[Any, ...]]:
    store = InfluxStore(url, db)
    await store.open()
    try:
        points = await _points(store, "commune_water_use_1d")
    finally:
        await store.close()
    return {(dict(p)["commune"], dict(p)["litres"], dict(p)["meters"]) for p in points}


def test_a_reading_of_yesterday_stored_just_before_the_window_moves_on_is_marked(
    registry: Registry,
) -> None:
    # 05:55 Paris: the run at 06:00 or 06:05 covers from today's midnight, not yesterday's
    day = paris_day_start(D + 36 * H)  # a day after D
    at = datetime.fromtimestamp((day + 5 * H + 55 * M) / 10**9, UTC).astimezone(PARIS)
    yesterday = paris_day_start(day - H)
    late = rollup_job.LateDays(registry, clock=at.timestamp)
    late.note([_index("m-1", day - 2 * H, 1)])
    asyncio.run(late.flush())
    assert [d for d, _ in rollup_job.backlog(registry)] == [yesterday]


@pytest.mark.parametrize(
    "again_s", [30, -60], ids=["marked-again-later", "marked-again-by-a-slower-clock"]
)
def test_a_day_marked_again_while_a_run_recomputed_it_stays_in_the_backlog(
    registry: Registry, again_s: int
) -> None:
    first = datetime(2026, 1, 15, 10, tzinfo=UTC)
    rollup_job.mark_backlog(registry, {D}, first.timestamp())
    read = rollup_job.backlog(registry)
    rollup_job.mark_backlog(registry, {D}, (first + timedelta(seconds=again_s)).timestamp())
    rollup_job.clear_backlog(registry, read)
    assert rollup_job.backlog(registry) == [(D, first + timedelta(seconds=again_s))]


@pytest.mark.usefixtures("territory")
async def test_the_field_types_are_integers(influx: InfluxStore, registry: Registry) -> None:
    await rollup_job.run(influx, registry, now=NOW)
    data = await influx.influxql('SHOW FIELD KEYS FROM "rollup"."commune_water_use_1h"')
    assert data["results"][0]["series"][0]["values"] == [
        ["litres", "integer"],
        ["meters", "integer"],
    ]


def _collect() -> tuple[list[str], Callable[..., None]]:
    scheduled: list[str] = []

    def every(_func: object, _seconds: float, job_id: str, **_kw: object) -> None:
        scheduled.append(job_id)

    return scheduled, every


async def test_the_job_is_scheduled_on_influxdb_only_and_the_embedded_store_logs_why(
    influx: InfluxStore, registry: Registry, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    scheduled, every = _collect()
    rollup_job.schedule(influx, registry, every)
    assert scheduled == ["water-rollup"]
    embedded = EmbeddedStore(tmp_path / "telemetry.sqlite")
    scheduled, every = _collect()
    with caplog.at_level(logging.WARNING):
        rollup_job.schedule(embedded, registry, every)
    assert scheduled == []
    assert "water-rollup not scheduled: the embedded store has no rollup" in caplog.text


async def test_a_scheduler_on_influxdb_runs_the_rollup_job(
    influxdb: InfluxDB, influx: InfluxStore, influx_db: str, tmp_path: Path
) -> None:
    settings = Settings(
        data_dir=tmp_path,
        influx_url=influxdb.url,
        influx_db=influx_db,
        role="scheduler",
        probe_bind="127.0.0.1:0",
        coap_bind="",
    )
    async with running(settings) as foyer:
        assert foyer.scheduler is not None
        assert "water-rollup" in {job.id for job in foyer.scheduler.get_jobs()}
