"""Plausible device behaviour: household water rhythm, bin lifts, container deposits (pure)."""

from __future__ import annotations

import math
import random

DAY_S = 86_400
HOUR_S = 3_600
# Litres per hour by hour of day (UTC; the simulator models no time zones) for a
# usage_scale of 1: morning and evening peaks, almost nothing at night (~250 l/day).
HOURLY_LPH = (
    0.3, 0.2, 0.2, 0.2, 0.3, 2.0, 12.0, 35.0, 30.0, 15.0, 8.0, 6.0,
    10.0, 8.0, 5.0, 5.0, 6.0, 10.0, 20.0, 25.0, 22.0, 18.0, 8.0, 2.0,
)  # fmt: skip
NIGHT_FLUSH_L = 6.0
NIGHT_FLUSH_PER_HOUR = 0.04  # the occasional night toilet trip, 00h-05h
DEPOSITS_PER_BADGE_PER_DAY = 0.5
DEPOSIT_HOURS = (7, 21)  # hatches are used in daytime


def hour_of_day(t: float) -> int:
    return int(t % DAY_S // HOUR_S)


def _hour_slices(t0: float, t1: float) -> list[tuple[float, float]]:
    """Split [t0, t1) on hour boundaries so each slice has a single hourly rate."""
    out = []
    t = t0
    while t < t1:
        end = min(t1, (math.floor(t / HOUR_S) + 1) * HOUR_S)
        out.append((t, end))
        t = end
    return out


def litres_used(t0: float, t1: float, scale: float, rng: random.Random) -> float:
    """Water drawn by one household in [t0, t1)."""
    total = 0.0
    for a, b in _hour_slices(t0, t1):
        hours = (b - a) / HOUR_S
        hour = hour_of_day(a)
        total += HOURLY_LPH[hour] * scale * hours * rng.uniform(0.3, 1.7)
        if hour < 5 and rng.random() < NIGHT_FLUSH_PER_HOUR * hours:
            total += NIGHT_FLUSH_L
    return total


def weekday(t: float) -> int:
    # 1970-01-01 was a Thursday (weekday 3 with Monday = 0).
    return (int(t // DAY_S) + 3) % 7


def lifts_in(bin_id: str, collection_day: int, t0: float, t1: float) -> list[tuple[float, float]]:
    """(time, kg) of lifts of one bin in [t0, t1).

    The lift time is derived from (bin, day) rather than a shared stream, so the
    same lift is found exactly once whatever the report windows are.
    """
    out = []
    for day in range(int(t0 // DAY_S), int(t1 // DAY_S) + 1):
        if weekday(day * DAY_S) != collection_day:
            continue
        rng = random.Random(f"{bin_id}/{day}")
        t = day * DAY_S + 6 * HOUR_S + rng.uniform(0, 6 * HOUR_S)
        if t0 <= t < t1:
            out.append((t, round(rng.uniform(5.0, 40.0), 1)))
    return out


def _poisson(rng: random.Random, lam: float) -> int:
    # Knuth's method: fine for the small means used here.
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def deposits_in(
    badges: list[str], t0: float, t1: float, rng: random.Random
) -> list[tuple[float, str, float | None]]:
    """(time, badge, litres or None) of badge deposits into one container in [t0, t1)."""
    if not badges:
        return []
    first, last = DEPOSIT_HOURS
    per_hour = len(badges) * DEPOSITS_PER_BADGE_PER_DAY / (last - first)
    out: list[tuple[float, str, float | None]] = []
    for a, b in _hour_slices(t0, t1):
        if not first <= hour_of_day(a) < last:
            continue
        for _ in range(_poisson(rng, per_hour * (b - a) / HOUR_S)):
            # Not every hatch measures volume, so v is optional.
            volume = float(rng.choice((30, 50, 60))) if rng.random() < 0.7 else None
            out.append((rng.uniform(a, b), rng.choice(badges), volume))
    return sorted(out, key=lambda d: d[0])


def maybe_fill(rng: random.Random, probability: float = 0.1) -> float | None:
    """An occasional fill-level report, in %."""
    return float(rng.randrange(5, 100)) if rng.random() < probability else None
