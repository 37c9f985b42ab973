"""Single senior living alone: a realistic water-use simulation for the care evaluation.

Deliberately independent of the backend (an ast test checks it imports no Foyer
package): it only produces what a meter would send -- a cumulative index in litres,
every 15 min or every hour, also at zero flow -- plus the ground truth the evaluation
needs (incidents, declared away periods, leaks, outages, and the behaviour behind each
quiet period, to name the cause of a false alert).

Behaviour per household (parameters drawn per household, days drawn per day):
wake and bed times with day-to-day variance (later at weekends), night toilet trips,
a morning routine, lunch and dinner, scattered uses at home, outings (random, plus a
regular weekly one), naps, visitors, occasional late wake-ups, day trips, holidays and
hospital stays (declared or not), leaks of various rates, meter outages (no frames).
Incidents: all human use stops at onset (just after a use: falls happen while active);
in the ``tap_running`` variant a tap keeps running. The person is found 36 h later and
spends a declared hospital stay away. Everything is deterministic by seed.
Times are the household's local clock, naive.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

H = 3600
DAY = 86400
START = pd.Timestamp("2025-01-06")  # a Monday
FOUND_AFTER_S = 36 * H
LEAK_RATES_LPH = (1.0, 2.0, 5.0, 6.0, 10.0, 20.0, 50.0)


@dataclass
class Household:
    household: str
    interval_s: int
    frames: np.ndarray  # int64 seconds since START
    index_l: np.ndarray  # float, whole litres
    uses: np.ndarray  # true human use times (s), for tests and diagnostics
    incidents: list[tuple[int, str]] = field(default_factory=list)  # (onset s, kind)
    away: list[tuple[int, int]] = field(default_factory=list)  # declared (start, end)
    leaks: list[tuple[int, int, float]] = field(default_factory=list)  # start, end, L/h
    outages: list[tuple[int, int]] = field(default_factory=list)
    periods: list[tuple[int, int, str]] = field(default_factory=list)  # quiet periods + cause


@dataclass
class _Params:
    wake: float
    wake_sd: float
    weekend_shift: float
    bed: float
    bed_sd: float
    night_trips: float
    home_rate: float
    outing_p: float
    outing_median_h: float
    club_day: int
    club_hour: float
    club_h: float
    nap_p: float
    late_p: float
    visitor_p: float


def _params(rng: np.random.Generator) -> _Params:
    return _Params(
        wake=rng.uniform(6.0, 8.5),
        wake_sd=rng.uniform(0.25, 0.6),
        weekend_shift=rng.uniform(0.0, 0.7),
        bed=rng.uniform(21.0, 23.5),
        bed_sd=rng.uniform(0.25, 0.6),
        night_trips=rng.uniform(0.4, 2.0),
        home_rate=rng.uniform(0.9, 1.8),
        outing_p=rng.uniform(0.3, 0.8),
        outing_median_h=rng.uniform(0.8, 1.8),
        club_day=int(rng.integers(0, 7)),
        club_hour=rng.uniform(9.0, 15.0),
        club_h=rng.uniform(1.5, 3.0),
        nap_p=rng.uniform(0.0, 0.6),
        late_p=rng.uniform(0.01, 0.04),
        visitor_p=rng.uniform(0.05, 0.2),
    )


def _burst(rng: np.random.Generator, t0: float, dur: float, rate_h: float) -> np.ndarray:
    n = rng.poisson(rate_h * dur / H)
    return np.asarray(t0 + rng.uniform(0, dur, n), dtype=np.float64)


def _volumes(rng: np.random.Generator, n: int) -> np.ndarray:
    # toilet flush, hand wash, kettle/cooking, dishes, shower: litres per use
    kind = rng.choice(5, size=n, p=[0.4, 0.25, 0.15, 0.12, 0.08])
    lo = np.array([4.0, 1.0, 1.0, 8.0, 30.0])[kind]
    hi = np.array([9.0, 3.0, 4.0, 20.0, 70.0])[kind]
    return np.asarray(rng.uniform(lo, hi), dtype=np.float64)


def _day(
    rng: np.random.Generator, p: _Params, d: int, periods: list[tuple[int, int, str]]
) -> np.ndarray:
    """Use times (s) of day ``d`` from wake-up to bed, and the night after bed."""
    base = d * DAY
    weekend = (d % 7) >= 5
    wake = (p.wake + (p.weekend_shift if weekend else 0.0) + rng.normal(0, p.wake_sd)) * H
    if rng.random() < p.late_p:  # unwell or slept badly: up 1.5-3.5 h late
        late = rng.uniform(1.5, 3.5) * H
        periods.append((int(base + wake), int(base + wake + late), "late_wake_up"))
        wake += late
    bed = (p.bed + rng.normal(0, p.bed_sd)) * H
    bed = max(bed, wake + 10 * H)
    t = [base + wake + np.array([0.0, 60.0])]  # toilet and wash at once
    t.append(base + wake + rng.uniform(120, 90 * 60, rng.integers(2, 6)))  # morning routine
    for meal in (12.3, 19.0):
        m = base + (meal + rng.normal(0, 0.4)) * H
        t.append(m + rng.uniform(0, 45 * 60, rng.integers(2, 5)))
    t.append(_burst(rng, base + wake + 1.5 * H, bed - wake - 1.5 * H, p.home_rate))
    t.append(base + bed - rng.uniform(0, 900, 2))  # before bed
    n_trips = rng.poisson(p.night_trips)
    night = base + bed + rng.uniform(0.7 * H, 24 * H + p.wake * H - bed - 0.3 * H, n_trips)
    t.append(night)
    if rng.random() < p.visitor_p:
        v = base + rng.uniform(10, 18) * H
        t.append(v + rng.uniform(0, 2 * H, rng.integers(2, 6)))
    uses = np.concatenate(t)
    # quiet periods: remove uses inside outings and naps
    quiet: list[tuple[float, float, str]] = []
    if (d % 7) == p.club_day and rng.random() < 0.85:
        s = base + (p.club_hour + rng.normal(0, 0.25)) * H
        quiet.append((s, s + (p.club_h + rng.normal(0, 0.2)) * H, "outing"))
    if rng.random() < p.outing_p:
        s = base + wake + rng.uniform(1.5 * H, max(2 * H, bed - wake - 4 * H))
        dur = p.outing_median_h * H * float(np.exp(rng.normal(0, 0.5)))
        quiet.append((s, s + dur, "outing"))
    if rng.random() < p.nap_p:
        s = base + rng.uniform(13.5, 15.0) * H
        quiet.append((s, s + rng.uniform(0.5, 2.0) * H, "nap"))
    keep = np.ones(len(uses), dtype=bool)
    for a, b, cause in quiet:
        keep &= ~((uses >= a) & (uses < b))
        periods.append((int(a), int(b), cause))
        uses = np.append(uses, b + rng.uniform(60, 900))  # back home: toilet / kettle
        keep = np.append(keep, True)
    return uses[keep]


def _away_plan(rng: np.random.Generator, days: int) -> list[tuple[int, int, str, bool]]:
    """(start s, end s, cause, declared): holidays, hospital stays, day trips."""
    out: list[tuple[int, int, str, bool]] = []
    per_year = days / 365
    for cause, rate, lo_d, hi_d, declared_p in (
        ("holiday", 1.2, 3, 14, 0.85),
        ("hospital", 0.3, 2, 10, 0.7),
    ):
        for _ in range(rng.poisson(rate * per_year)):
            d0 = int(rng.integers(1, max(2, days - 1)))
            a = d0 * DAY + int(rng.uniform(9, 15) * H)
            b = a + int(rng.integers(lo_d, hi_d + 1)) * DAY + int(rng.uniform(-3, 3) * H)
            out.append((a, b, cause, bool(rng.random() < declared_p)))
    for _ in range(rng.poisson(4 * per_year)):  # a day at the family's
        d0 = int(rng.integers(1, max(2, days - 1)))
        a = d0 * DAY + int(rng.uniform(9, 11) * H)
        out.append((a, a + int(rng.uniform(7, 11) * H), "day_trip", bool(rng.random() < 0.5)))
    return out


def simulate_household(household: str, days: int = 365, seed: int = 1) -> Household:
    rng = np.random.default_rng([seed, int.from_bytes(household.encode()[-8:], "big")])
    p = _params(rng)
    periods: list[tuple[int, int, str]] = []
    uses = np.concatenate([_day(rng, p, d, periods) for d in range(days)])
    away_plan = _away_plan(rng, days)
    # incidents: about 1.5 a year, after the first week, two weeks apart at least
    incidents: list[tuple[int, str]] = []
    for d0 in sorted(rng.choice(np.arange(7, max(8, days - 2)), rng.poisson(1.5 * days / 365))):
        if incidents and d0 * DAY - incidents[-1][0] < 14 * DAY:
            continue
        if any(a - DAY <= d0 * DAY <= b + DAY for a, b, _, _ in away_plan):
            continue
        day_uses = uses[(uses >= d0 * DAY) & (uses < (d0 + 1) * DAY)]
        if len(day_uses) == 0:
            continue
        onset = int(rng.choice(day_uses))
        kind = "tap_running" if rng.random() < 0.2 else "silent"
        incidents.append((onset, kind))
        found = onset + FOUND_AFTER_S
        stay = found + int(rng.integers(3, 11)) * DAY
        away_plan.append((found, stay, "hospital", True))
        uses = uses[(uses <= onset) | (uses >= stay + 1800)]
    away: list[tuple[int, int]] = []
    extras = []
    for a, b, cause, declared in away_plan:
        if declared and rng.random() < 0.2 and b - a > 2 * DAY:  # a neighbour waters plants
            extras.append(a + DAY + rng.uniform(0, (b - a) - 2 * DAY, 2))
        uses = np.append(uses, b + rng.uniform(60, 1200, 2))  # home again
        if declared:
            away.append((a, b))
        else:
            periods.append((a, b, f"away_undeclared_{cause}"))
    for a, b, _, _ in away_plan:  # after all of them: away periods may overlap
        uses = uses[(uses < a) | (uses >= b)]
    uses = np.concatenate([uses, *extras])
    uses = np.sort(uses[(uses >= 0) & (uses < days * DAY)])
    for onset, _ in incidents:  # nothing human between onset and the end of the stay
        stay_end = next(b for a, b, c, _ in away_plan if a == onset + FOUND_AFTER_S)
        uses = uses[(uses <= onset) | (uses >= stay_end)]
    interval = 900 if rng.random() < 0.6 else 3600
    frames = np.arange(int(rng.integers(0, interval)), days * DAY, interval, dtype=np.int64)
    outages: list[tuple[int, int]] = []
    for _ in range(rng.poisson(0.6 * days / 365)):
        a = int(rng.uniform(0, days * DAY))
        b = a + int(np.exp(rng.uniform(np.log(2 * H), np.log(5 * DAY))))
        outages.append((a, b))
        frames = frames[(frames < a) | (frames >= b)]
    leaks: list[tuple[int, int, float]] = []
    for _ in range(rng.poisson(0.3 * days / 365)):
        a = int(rng.uniform(0, max(1, days - 3) * DAY))
        leaks.append((a, a + int(rng.uniform(2, 10) * DAY), float(rng.choice(LEAK_RATES_LPH))))
    flows = list(leaks)
    for onset, kind in incidents:
        if kind == "tap_running":
            flows.append((onset + 60, onset + FOUND_AFTER_S, float(rng.uniform(60, 480))))
    volumes = _volumes(rng, len(uses))
    cum = np.concatenate([[0.0], np.cumsum(volumes)])
    index = cum[np.searchsorted(uses, frames, side="right")]
    for a, b, lph in flows:
        index = index + lph / H * np.clip(frames - a, 0, b - a)
    return Household(
        household=household,
        interval_s=interval,
        frames=frames,
        index_l=np.floor(index + float(rng.uniform(1000, 90000))),
        uses=uses,
        incidents=incidents,
        away=sorted(away),
        leaks=leaks,
        outages=outages,
        periods=sorted(periods),
    )


def to_time(seconds: np.ndarray | list[int]) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(START + pd.to_timedelta(np.asarray(seconds, dtype=np.int64), unit="s"))


def readings_frame(hh: Household) -> pd.DataFrame:
    """Rows household, time, index_l: the documented --readings CSV format."""
    return pd.DataFrame(
        {
            "household": hh.household,
            "time": to_time(hh.frames),
            "index_l": hh.index_l.astype(np.int64),
        }
    )


def incidents_frame(hh: Household) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "household": [hh.household] * len(hh.incidents),
            "onset": to_time([o for o, _ in hh.incidents]),
            "kind": [k for _, k in hh.incidents],
        }
    )


def simulate(households: int, days: int = 365, seed: int = 1) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(readings, incidents) for a population, deterministic by seed."""
    hhs = [simulate_household(f"H{i:05d}", days, seed) for i in range(households)]
    return (
        pd.concat([readings_frame(h) for h in hhs], ignore_index=True),
        pd.concat([incidents_frame(h) for h in hhs], ignore_index=True),
    )
