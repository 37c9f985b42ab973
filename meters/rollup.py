"""Downsampled water use: hourly and daily litres per meter and per commune.

Pure (no I/O): index points in, use points out. docs/schema.md, "Downsampled water
use", is the public description; core/rollup_job.py feeds it from InfluxDB.

Choices, each written down because dashboards and bills are read against them:
- An hour's use is the last index of the hour minus the last index of the previous
  hour *that has a reading*. A meter silent for several hours has its water
  attributed to the hour it is seen again: we cannot know when it flowed, and
  spreading it evenly would invent a profile. Billing uses indexes, not this series.
- A backwards step (rollover, swap, tampering: PROTOCOL.md "never turned into
  negative consumption") counts 0, and the use after it counts from the new index.
- An hour without a reading has no point (not 0): "no data" and "no water" differ.
- A day is a Europe/Paris calendar day (23 h in March, 25 h in October); its use is
  the sum of its hours, timestamped at the Paris midnight that starts it.
- A commune's point carries `meters`, the number of meters with a use point in that
  hour or day, so that a dashboard can tell a dry commune from a silent one.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

PARIS = ZoneInfo("Europe/Paris")
HOUR_NS = 3_600 * 10**9
_NS = 10**9


@dataclass(frozen=True, slots=True)
class Bound:
    """A meter bound to a dwelling of `commune` over [from_ns, to_ns) (to_ns None: still)."""

    device_id: str
    commune: str
    from_ns: int
    to_ns: int | None = None


@dataclass(frozen=True, slots=True)
class Use:
    """One meter's litres over the hour or day starting at start_ns."""

    device_id: str
    commune: str
    start_ns: int
    litres: int


@dataclass(frozen=True, slots=True)
class CommuneUse:
    """A commune's litres over the hour or day starting at start_ns, from `meters` meters."""

    commune: str
    start_ns: int
    litres: int
    meters: int


def hour_start(time_ns: int) -> int:
    return time_ns - time_ns % HOUR_NS


def paris_day_start(time_ns: int) -> int:
    """The UTC instant (ns) of the Paris midnight that starts the day of time_ns."""
    local = datetime.fromtimestamp(time_ns // _NS, UTC).astimezone(PARIS)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    # Paris never changes its offset at midnight, so the local midnight is unambiguous.
    return int(midnight.timestamp()) * _NS


def next_paris_day(day_ns: int) -> int:
    """The Paris midnight after the one at day_ns (days last 23, 24 or 25 hours)."""
    return paris_day_start(day_ns + 25 * HOUR_NS)


def late_days(times_ns: Iterable[int], run_ns: int, recent_hours: int) -> set[int]:
    """The Paris days (their midnights) of readings that a roll-up run at `run_ns` would
    not recompute: it covers the whole days holding the last `recent_hours` closed
    hours, so a reading before the first of those days is late. Callers pass the latest
    time the next run may start (core/rollup_job.py, LATE_AHEAD_S)."""
    covered_from = paris_day_start(hour_start(run_ns) - recent_hours * HOUR_NS)
    return {paris_day_start(t) for t in times_ns if t < covered_from}


def last_per_hour(points: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """(hour start, last index of that hour), by hour; points are (time_ns, index_l)."""
    last: dict[int, tuple[int, int]] = {}
    for time_ns, index in points:
        hour = hour_start(time_ns)
        if hour not in last or time_ns >= last[hour][0]:
            last[hour] = (time_ns, index)
    return [(hour, last[hour][1]) for hour in sorted(last)]


def hourly_use(points: Iterable[tuple[int, int]], baseline: int | None) -> list[tuple[int, int]]:
    """(hour start, litres) for each hour with a reading and an earlier index to compare.

    baseline: the meter's last index before the first point (None: unknown, so the
    first hour with a reading gets no point).
    """
    out = []
    previous = baseline
    for hour, index in last_per_hour(points):
        if previous is not None:
            out.append((hour, max(0, index - previous)))
        previous = index
    return out


def meter_hours(
    bindings: Sequence[Bound], points: Iterable[tuple[int, int]], baseline: int | None
) -> list[Use]:
    """One meter's hourly use, each hour tagged with the commune it was bound in then.

    Hours when the meter was bound nowhere (in stock, retired) are left out.
    """
    out = []
    for hour, litres in hourly_use(points, baseline):
        bound = _bound_during(bindings, hour)
        if bound is not None:
            out.append(Use(bound.device_id, bound.commune, hour, litres))
    return out


def _bound_during(bindings: Sequence[Bound], hour: int) -> Bound | None:
    """The latest binding that overlaps [hour, hour + 1 h), if any."""
    found = None
    for b in bindings:
        overlaps = b.from_ns < hour + HOUR_NS and (b.to_ns is None or b.to_ns > hour)
        if overlaps and (found is None or b.from_ns >= found.from_ns):
            found = b
    return found


def daily(hours: Iterable[Use]) -> list[Use]:
    """Sum each meter's hours into Europe/Paris days (per commune, should it move)."""
    totals: dict[tuple[str, str, int], int] = defaultdict(int)
    for use in hours:
        totals[(use.device_id, use.commune, paris_day_start(use.start_ns))] += use.litres
    return [Use(d, c, day, litres) for (d, c, day), litres in sorted(totals.items())]


def by_commune(uses: Iterable[Use]) -> list[CommuneUse]:
    """Each commune's total per period, with the number of meters that have a point."""
    litres: dict[tuple[str, int], int] = defaultdict(int)
    meters: dict[tuple[str, int], set[str]] = defaultdict(set)
    for use in uses:
        key = (use.commune, use.start_ns)
        litres[key] += use.litres
        meters[key].add(use.device_id)
    return [CommuneUse(c, t, litres[(c, t)], len(meters[(c, t)])) for c, t in sorted(litres)]


def merge_communes(parts: Iterable[CommuneUse]) -> list[CommuneUse]:
    """Add up partial totals of disjoint sets of meters (the job reads meters in chunks)."""
    litres: dict[tuple[str, int], int] = defaultdict(int)
    meters: dict[tuple[str, int], int] = defaultdict(int)
    for part in parts:
        litres[(part.commune, part.start_ns)] += part.litres
        meters[(part.commune, part.start_ns)] += part.meters
    return [CommuneUse(c, t, litres[(c, t)], meters[(c, t)]) for c, t in sorted(litres)]
