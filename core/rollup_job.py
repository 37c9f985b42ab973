"""The `water-rollup` job: hourly and daily water use per meter and per commune.

Every 15 minutes the scheduler (leader) recomputes whole Europe/Paris days from the
raw indexes and rewrites their points in the `rollup` retention policy: re-running
writes identical points (same measurement, tags and time), so overlap is harmless.
Readings stored too late for that window (a meter's backlog after an outage, a spool
replay) are noted by the ingest workers (`LateDays`) in the registry's
`rollup_backlog`, and the next run recomputes those days too.
docs/schema.md, "Downsampled water use", describes the series; meters/rollup.py
computes them.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, or_, select

from core.records import METER_INDEX, Record
from core.registry import Registry
from core.registry.models import Binding, Device, Dwelling, RollupBacklog
from core.registry.service import upsert_insert
from core.store import rollup as io
from core.store.influx import InfluxStore
from core.store.port import TelemetryStore
from core.store.spool import SpoolingStore
from meters.rollup import (
    HOUR_NS,
    Bound,
    CommuneUse,
    Use,
    by_commune,
    daily,
    hour_start,
    late_days,
    merge_communes,
    meter_hours,
    next_paris_day,
    paris_day_start,
)

log = logging.getLogger(__name__)

JOB_ID = "water-rollup"
EVERY_S = 900  # the brief's 15 minutes: a dashboard's last hour is at most ~15 min late
# Readings reach the store late (spool replays, devices sending a pack of the last
# hours): each run recomputes the days holding at least the last RECENT_HOURS.
RECENT_HOURS = 6
# A scheduler down for a day or two catches up from its last written hour, but no
# further back than this (a longer gap: `foyer store rollup FIRST LAST`, docs/schema.md).
CATCH_UP_DAYS = 2
# The index a window's first hour is compared with: the meter's last one this far back.
# A meter silent for longer gets no point for its first hour back (docs/schema.md).
BASELINE_DAYS = 7
CHUNK = 500  # meters per query: 500 x 72 hours fit easily in one /query answer
BACKLOG_DAYS_PER_RUN = 7  # late days recomputed per run, oldest first; the rest next run
LATE_FLUSH_S = 30  # ingest workers write the late days they saw this often
# A reading is judged against the window of a run that may start this much later (the
# next run is up to EVERY_S away, and may itself start late): a day on the edge is
# marked, and recomputed once more, rather than missed.
LATE_AHEAD_S = 2 * EVERY_S
DAY_NS = 24 * HOUR_NS
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class RollupRun:
    start_ns: int
    end_ns: int
    meters: int
    hours: int
    days: int
    late_days: tuple[int, ...] = ()  # backlog days recomputed (Paris midnights, ns)


class LateDays:
    """In an ingest worker: the Paris days of meter readings stored too late for the
    next roll-up window, written to the registry every LATE_FLUSH_S (a crash loses at
    most that much of the list, never a reading: `foyer store rollup` redoes any day)."""

    def __init__(self, registry: Registry, clock: Callable[[], float] = time.time) -> None:
        self._registry = registry
        self._clock = clock
        self._days: set[int] = set()

    def note(self, records: Sequence[Record]) -> None:
        """After storage (core/ingest/pipeline.py): cheap, on the event loop."""
        times = [r.time_ns for r in records if r.measurement == METER_INDEX]
        if times:
            ahead = int((self._clock() + LATE_AHEAD_S) * 1e9)
            self._days |= late_days(times, ahead, RECENT_HOURS)

    async def close(self) -> None:
        """At a clean stop, after the transports: the last days, or a log line."""
        try:
            await self.flush()
        except Exception as err:  # noqa: BLE001 - shutting down: say what is lost, go on
            log.warning("late days not written (%s): %s; `foyer store rollup` redoes them",
                        type(err).__name__, sorted(self._days))  # fmt: skip

    async def flush(self) -> None:
        if not self._days:
            return
        days, self._days = self._days, set()
        try:
            await asyncio.to_thread(mark_backlog, self._registry, days, self._clock())
        except Exception:
            self._days |= days  # the registry is down: keep them for the next flush
            raise


def mark_backlog(registry: Registry, days: set[int], at: float) -> None:
    marked = datetime.fromtimestamp(at, UTC)
    rows = [{"day": _at(day), "marked_at": marked} for day in sorted(days)]
    with registry.transaction() as session:
        stmt = upsert_insert(session)(RollupBacklog).values(rows)
        again = {"marked_at": stmt.excluded.marked_at}  # marked again: recompute again
        session.execute(stmt.on_conflict_do_update(index_elements=[RollupBacklog.day], set_=again))


def backlog(registry: Registry) -> list[tuple[int, datetime]]:
    stmt = select(RollupBacklog.day, RollupBacklog.marked_at).order_by(RollupBacklog.day)
    with registry.reading() as session:
        return [(_ns(day), marked) for day, marked in session.execute(stmt)]


def clear_backlog(registry: Registry, done: Sequence[tuple[int, datetime]]) -> None:
    """Delete the rows recomputed, unless marked again since they were read (any new
    mark, even one older by a worker's skewed clock, changes the value read)."""
    with registry.transaction() as session:
        for day, marked in done:
            session.execute(delete(RollupBacklog).where(
                RollupBacklog.day == _at(day), RollupBacklog.marked_at == marked))  # fmt: skip


def schedule(store: TelemetryStore, registry: Registry, every: Callable[..., None]) -> None:
    """Add the job on InfluxDB; the embedded store has no retention policies, no rollup."""
    influx = influx_of(store)
    if influx is None:
        log.warning("%s not scheduled: the embedded store has no rollup (docs/schema.md)", JOB_ID)
        return
    every(functools.partial(run, influx, registry), EVERY_S, JOB_ID, now=True)


def influx_of(store: TelemetryStore) -> InfluxStore | None:
    if isinstance(store, SpoolingStore):  # role "all": reads go straight through anyway
        store = store.inner
    return store if isinstance(store, InfluxStore) else None


def window(now_ns: int, last_hour_ns: int | None) -> tuple[int, int]:
    """[start, end): whole Paris days up to the last closed hour, with catch-up."""
    end = hour_start(now_ns)
    start = end - RECENT_HOURS * HOUR_NS
    resume = end - CATCH_UP_DAYS * DAY_NS if last_hour_ns is None else last_hour_ns + HOUR_NS
    start = max(min(start, resume), end - CATCH_UP_DAYS * DAY_NS)
    # Whole days, or a day's total would hold only the hours of this window.
    return paris_day_start(start), end


async def run(store: InfluxStore, registry: Registry, now: datetime | None = None) -> RollupRun:
    now = now or datetime.now(UTC)
    start, end = window(_ns(now), await io.last_rollup_hour(store))
    late = await asyncio.to_thread(backlog, registry)
    # Days inside the window are recomputed anyway; the oldest stale ones first.
    stale = [(day, marked) for day, marked in late if day < start][:BACKLOG_DAYS_PER_RUN]
    for day, _marked in stale:
        await _span(store, registry, day, next_paris_day(day))
    # Last: the resume point (last_rollup_hour) only moves once everything is written.
    devices, hours, days = await _span(store, registry, start, end)
    covered = [(day, marked) for day, marked in late if day >= start]
    await asyncio.to_thread(clear_backlog, registry, [*stale, *covered])
    done = RollupRun(start, end, devices, hours, days, tuple(day for day, _ in stale))
    log.info("%s: %s", JOB_ID, done)
    return done


async def recompute(
    store: InfluxStore, registry: Registry, first_day_ns: int, last_day_ns: int
) -> list[tuple[int, int, int]]:
    """`foyer store rollup`: whole Paris days from the one holding first_day_ns to the
    one holding last_day_ns, a day at a time; (day, meters, hour points) per day."""
    out = []
    day = paris_day_start(first_day_ns)
    while day <= last_day_ns:
        meters, hours, _days = await _span(store, registry, day, next_paris_day(day))
        out.append((day, meters, hours))
        day = next_paris_day(day)
    return out


async def _span(
    store: InfluxStore, registry: Registry, start: int, end: int
) -> tuple[int, int, int]:
    """Recompute whole days [start, end): every bound meter, then the communes' sums
    (a commune's point needs all its meters); returns (meters, hour points, day points)."""
    bindings = await asyncio.to_thread(bound_meters, registry, start, end)
    devices = sorted(bindings)
    hours_total, days_total = 0, 0
    communes_1h: list[CommuneUse] = []
    communes_1d: list[CommuneUse] = []
    for i in range(0, len(devices), CHUNK):
        hours, days = await _chunk(store, devices[i : i + CHUNK], bindings, start, end)
        hours_total, days_total = hours_total + len(hours), days_total + len(days)
        communes_1h = merge_communes([*communes_1h, *by_commune(hours)])
        communes_1d = merge_communes([*communes_1d, *by_commune(days)])
    await io.write_communes(store, io.COMMUNE_WATER_USE_1D, communes_1d)
    await io.write_communes(store, io.COMMUNE_WATER_USE_1H, communes_1h)
    return len(devices), hours_total, days_total


async def _chunk(
    store: InfluxStore,
    devices: Sequence[str],
    bindings: dict[str, list[Bound]],
    start: int,
    end: int,
) -> tuple[list[Use], list[Use]]:
    """One chunk of meters: read their indexes, write their hourly and daily points."""
    points = await io.hourly_last_index(store, devices, start, end)
    baselines = await io.last_index_before(store, devices, start - BASELINE_DAYS * DAY_NS, start)
    hours = [
        use
        for d in devices
        for use in meter_hours(bindings[d], points.get(d, ()), baselines.get(d))
    ]
    days = daily(hours)
    await io.write_uses(store, io.WATER_USE_1H, hours)
    await io.write_uses(store, io.WATER_USE_1D, days)
    return hours, days


def bound_meters(registry: Registry, start_ns: int, end_ns: int) -> dict[str, list[Bound]]:
    """Meters bound to a dwelling with a commune at some time in [start, end): one query."""
    start, end = _at(start_ns), _at(end_ns)
    stmt = (
        select(Binding.device_id, Dwelling.commune, Binding.valid_from, Binding.valid_to)
        .join(Dwelling, Dwelling.id == Binding.dwelling_id)
        .join(Device, Device.device_id == Binding.device_id)
        .where(Device.kind == "meter", Dwelling.commune.is_not(None), Dwelling.commune != "")
        .where(Binding.valid_from < end, or_(Binding.valid_to.is_(None), Binding.valid_to > start))
    )
    out: dict[str, list[Bound]] = defaultdict(list)
    with registry.reading() as session:
        for row in session.execute(stmt):
            to_ns = None if row.valid_to is None else _ns(row.valid_to)
            out[row.device_id].append(Bound(row.device_id, row.commune, _ns(row.valid_from), to_ns))
    return dict(out)


def _ns(at: datetime) -> int:
    return (at - _EPOCH) // timedelta(microseconds=1) * 1000


def _at(time_ns: int) -> datetime:
    return _EPOCH + timedelta(microseconds=time_ns // 1000)
