"""The `water-rollup` job: hourly and daily water use per meter and per commune.

Every 15 minutes the scheduler (leader) recomputes whole Europe/Paris days from the
raw indexes and rewrites their points in the `rollup` retention policy: re-running
writes identical points (same measurement, tags and time), so overlap is harmless.
docs/schema.md, "Downsampled water use", describes the series; meters/rollup.py
computes them.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import or_, select

from core.registry import Registry
from core.registry.models import Binding, Device, Dwelling
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
    merge_communes,
    meter_hours,
    paris_day_start,
)

log = logging.getLogger(__name__)

JOB_ID = "water-rollup"
EVERY_S = 900  # the brief's 15 minutes: a dashboard's last hour is at most ~15 min late
# Readings reach the store late (spool replays, devices sending a pack of the last
# hours): each run recomputes the days holding at least the last RECENT_HOURS.
RECENT_HOURS = 6
# A scheduler down for a day or two catches up from its last written hour, but no
# further back than this (a longer gap: `foyer store rollup` is not there yet, docs).
CATCH_UP_DAYS = 2
# The index a window's first hour is compared with: the meter's last one this far back.
# A meter silent for longer gets no point for its first hour back (docs/schema.md).
BASELINE_DAYS = 7
CHUNK = 500  # meters per query: 500 x 72 hours fit easily in one /query answer
DAY_NS = 24 * HOUR_NS
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class RollupRun:
    start_ns: int
    end_ns: int
    meters: int
    hours: int
    days: int


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
    # Last: the resume point (last_rollup_hour) only moves once everything is written.
    await io.write_communes(store, io.COMMUNE_WATER_USE_1H, communes_1h)
    done = RollupRun(start, end, len(devices), hours_total, days_total)
    log.info("%s: %s", JOB_ID, done)
    return done


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
