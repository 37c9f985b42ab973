"""Care detectors on one household's meter readings (pure: no I/O, no await).

Input is what the meter sends: a cumulative index in litres every 15 min or hour,
also at zero flow. A frame with an unchanged index means the *resident* is silent; no
frame at all means the *device* is silent, which is a technician finding and never a
family alert (issue 4). From the readings we derive:

* water-use events: a frame whose volume exceeds the steady flow of the two previous
  intervals by ``MIN_USE_L`` litres. Subtracting the steady flow keeps a leak or a tap
  left running from looking like a resident who is up and about; it is not subtracted
  over a frame gap longer than ``UNKNOWN_GAP_S`` (what the index gained during a meter
  outage may be the resident's, so it counts as use);
* inactivity (family): the household's rhythm model (alerts.rhythm) scores the silence
  since the later of the last use and the end of the last declared away period;
  suppressed while away and while the device is silent;
* device_silent (technician): last frame older than two report intervals;
* leak / continuous_flow (household): Kamstrup's rule -- the last 24 h had no full hour
  without flow -- and South East Water's -- more than 5 L/h all day without returning
  to zero -- for the kind. An interval longer than 2 h between frames may have had no
  flow, so a meter outage never makes a leak;
* use_while_away (family): water used during a declared away period;
* meter alarm flags (PROTOCOL.md ``alarm``): leak/backflow to the household,
  tamper/battery_low and anything else to technicians.

Recoveries are emitted whenever a condition is absent, with ``at`` = when it ended
(last use, last frame); the lifecycle resolves an open alert only when the recovery is
later than the alert's opening, and ignores keys with no open alert.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pandas as pd

from alerts import rhythm
from alerts.model import LAST_USE_KEY, Finding, Recovery

MIN_USE_L = 2.0  # smaller steps are meter resolution or leak jitter, not a resident
STEADY_TOL = 0.10  # two intervals within 10 % (or MIN_USE_L) are one steady flow
SILENT_INTERVALS = 2  # device silent after two missed reports
ZERO_HOUR_S = 3600  # Kamstrup: a full hour without flow
LEAK_WINDOW_S = 24 * 3600
UNKNOWN_GAP_S = 2 * 3600  # a longer interval between frames may have had no flow
CONTINUOUS_LPH = 5.0  # South East Water: > 5 L/h never returning to zero
HOUSEHOLD_ALARMS = ("leak", "backflow")


def use_mask(t_s: np.ndarray, index: np.ndarray) -> np.ndarray:
    """True for the frames that show a resident's water use (vectorised)."""
    n = len(t_s)
    out = np.zeros(n, dtype=bool)
    if n < 2:
        return out
    dt = np.diff(t_s).astype(np.float64)
    delta = np.clip(np.diff(index.astype(np.float64)), 0.0, None)  # meter reset: no use
    rate = delta / np.maximum(dt, 1.0)
    prev1 = np.concatenate([[0.0], rate[:-1]])
    prev2 = np.concatenate([[0.0, 0.0], rate[:-2]])
    lo, hi = np.minimum(prev1, prev2), np.maximum(prev1, prev2)
    steady = (hi - lo) * dt <= np.maximum(MIN_USE_L, STEADY_TOL * hi * dt)
    # a steady flow is not extrapolated over a frame gap: what the index gained while
    # the device was silent may be the resident, so it counts as use (no false alarm)
    baseline = np.where(steady & (dt <= UNKNOWN_GAP_S), lo, 0.0) * dt
    out[1:] = delta - baseline >= MIN_USE_L
    return out


def report_interval_s(t_s: np.ndarray) -> int:
    """The device's usual report interval: the median of its recent spacings."""
    if len(t_s) < 2:
        return 3600
    # np.median's own arithmetic on a sorted copy: np.median costs more than the rest
    # of a household's detectors at 100,000 households a pass (issue 6)
    d = np.sort(np.diff(t_s[-97:]))
    mid = len(d) // 2
    return int(d[mid] if len(d) % 2 else (d[mid - 1] + d[mid]) / 2)


def outage_periods(t_s: np.ndarray, interval_s: int) -> list[tuple[int, int]]:
    """Periods (last frame, next frame) with more than two reports missing."""
    if len(t_s) < 2:
        return []
    d = np.diff(t_s)
    i = np.nonzero(d > SILENT_INTERVALS * interval_s)[0]
    return [(int(t_s[k]), int(t_s[k + 1])) for k in i]


def leak_alarm_intervals(t_s: np.ndarray, index: np.ndarray) -> list[tuple[int, int]]:
    """Periods (start, end; end may be past the data) when the leak rule holds.

    Flow may have stopped in an interval with no index increase or one longer than
    UNKNOWN_GAP_S; a run of such intervals of at least an hour is a "zero hour", and
    the rule holds from 23 h after the end of one zero hour until the next one.
    """
    if len(t_s) < 2:
        return []
    dt = np.diff(t_s)
    maybe_zero = (np.diff(index) <= 0) | (dt > UNKNOWN_GAP_S)
    # runs of consecutive maybe-zero intervals: interval k spans t_s[k]..t_s[k+1]
    z = np.concatenate([[False], maybe_zero, [False]]).astype(np.int8)
    starts = np.nonzero(np.diff(z) == 1)[0]
    ends = np.nonzero(np.diff(z) == -1)[0]
    a, b = t_s[starts], t_s[ends]
    ok = b - a >= ZERO_HOUR_S
    a = np.concatenate([[t_s[0] - ZERO_HOUR_S], a[ok]])  # before the data: unknown
    b = np.concatenate([[t_s[0]], b[ok]])
    on = b + LEAK_WINDOW_S - ZERO_HOUR_S
    off = np.concatenate([a[1:] + ZERO_HOUR_S, [np.iinfo(np.int64).max // 2]])
    keep = off > on
    return [(int(x), int(y)) for x, y in zip(on[keep], off[keep], strict=True)]


def _min_hourly_litres(t_s: np.ndarray, index: np.ndarray, now_s: int) -> float:
    """The smallest consumption of any full hour of the last 24 h (South East Water)."""
    points = now_s - LEAK_WINDOW_S + 3600 * np.arange(25)
    i = np.searchsorted(t_s, points, side="right") - 1
    if i[0] < 0:
        return 0.0
    return float(np.diff(index[i]).min())


@dataclass(frozen=True)
class Readings:
    """A meter's readings as arrays: what the scoring job has, with no DataFrame to build.

    A DataFrame per household cost more than the detectors themselves at 100,000
    households every five minutes (issue 6).
    """

    t_s: np.ndarray  # int64 seconds of the household's local clock read as UTC (naive)
    index_l: np.ndarray  # float64 litres, same length


@dataclass(frozen=True)
class HouseholdData:
    household_id: str
    device_id: str | None
    readings: pd.DataFrame | Readings  # frame: columns time (UTC or naive local), index_l
    away: Sequence[tuple[datetime, datetime | None]] = ()  # declared; end None = open
    alarms: Sequence[tuple[datetime, str]] = field(default_factory=tuple)


def _seconds(values: pd.Series | pd.DatetimeIndex) -> np.ndarray:
    idx = pd.DatetimeIndex(values)
    if idx.tz is not None:
        idx = idx.tz_convert("UTC").tz_localize(None)
    return np.asarray(idx.as_unit("s").asi8, dtype=np.int64)


def _ts(t: datetime) -> int:
    p = pd.Timestamp(t)
    if p.tz is not None:
        p = p.tz_convert("UTC").tz_localize(None)
    return int(p.value // 10**9)


def _dt(s: int, like: datetime) -> datetime:
    out: datetime = pd.Timestamp(s, unit="s").to_pydatetime()
    return out.replace(tzinfo=like.tzinfo) if like.tzinfo else out


# The household's model, or a callable that loads it: scoring 100,000 households only
# pays for loading a model when the silence is long enough to be judged (issue 6).
ModelSource = rhythm.RhythmModel | None | Callable[[], rhythm.RhythmModel | None]


def detect(data: HouseholdData, model: ModelSource, now: datetime) -> list[Finding | Recovery]:
    """Every detector on one household at ``now`` (only readings up to ``now`` are used)."""
    hid, dev = data.household_id, data.device_id
    t_s, index = _arrays(data.readings)
    now_s = _ts(now)
    keep = t_s <= now_s
    t_s, index = t_s[keep], index[keep]
    out: list[Finding | Recovery] = _alarm_findings(data, now)
    if len(t_s) == 0:
        return out
    interval = report_interval_s(t_s)
    uses = t_s[use_mask(t_s, index)]
    silent_key = f"device_silent:{dev or hid}"
    last_frame = int(t_s[-1])
    if now_s - last_frame > SILENT_INTERVALS * interval:
        since = _dt(last_frame, now).strftime("%d/%m %H:%M")
        out.append(
            Finding(
                kind="device_silent",
                audience="technician",
                household_id=hid,
                device_id=dev,
                at=now,
                score=None,
                dedupe_key=silent_key,
                explanation={
                    "en": f"no frame from the meter since {since} "
                    f"(every {interval // 60} min expected)",
                    "fr": f"aucune trame du compteur depuis le {since} "
                    f"(attendue toutes les {interval // 60} min)",
                },
            )
        )
    else:
        out.append(Recovery(silent_key, _dt(last_frame, now), "device_back"))
        out.extend(_inactivity(data, model, now, t_s, uses))
    out.extend(_use_while_away(data, now, uses, interval))
    out.extend(_leak(data, now, t_s, index))
    return out


def _arrays(readings: pd.DataFrame | Readings) -> tuple[np.ndarray, np.ndarray]:
    """(seconds, litres), oldest first."""
    if isinstance(readings, Readings):
        t_s = np.asarray(readings.t_s, dtype=np.int64)
        index = np.asarray(readings.index_l, dtype=np.float64)
        if len(t_s) > 1 and bool((np.diff(t_s) < 0).any()):
            order = np.argsort(t_s, kind="stable")
            t_s, index = t_s[order], index[order]
        return t_s, index
    r = readings.sort_values("time")
    return _seconds(r["time"]), r["index_l"].to_numpy(dtype=np.float64)


def _away_now(data: HouseholdData, now: datetime) -> bool:
    return any(_ts(a) <= _ts(now) and (b is None or _ts(now) < _ts(b)) for a, b in data.away)


def _inactivity(
    data: HouseholdData,
    model: ModelSource,
    now: datetime,
    t_s: np.ndarray,
    uses: np.ndarray,
) -> list[Finding | Recovery]:
    key = f"inactivity:{data.household_id}"
    if _away_now(data, now):
        return []
    now_s = _ts(now)
    ends = [_ts(b) for _, b in data.away if b is not None and _ts(b) <= now_s]
    starts = [int(uses[-1])] if len(uses) else []
    # no use seen yet: count from the first frame
    start_s = max(starts + ends) if starts or ends else int(t_s[0])
    last = _dt(start_s, now)
    resumed: list[Finding | Recovery] = (
        [Recovery(key, last, "water_resumed")] if starts and start_s == starts[0] else []
    )
    if now_s - start_s < rhythm.MIN_GAP_S:
        return resumed  # rhythm.assess never alerts on so short a silence: skip the model
    if callable(model):
        model = model()
    m = model if model is not None else rhythm.RhythmModel(trained_at=now, n_uses=0)
    score, crossed, explanation = rhythm.assess(
        m, last.replace(tzinfo=None), now.replace(tzinfo=None), False
    )
    if not crossed:
        return resumed
    return [
        Finding(
            kind="inactivity",
            audience="family",
            household_id=data.household_id,
            device_id=data.device_id,
            at=now,
            score=score,
            dedupe_key=key,
            # the last use, local: the SMS tells the family "no water since ..."
            explanation={**explanation, LAST_USE_KEY: last.isoformat(timespec="minutes")},
        )
    ]


def _use_while_away(
    data: HouseholdData, now: datetime, uses: np.ndarray, grace: int
) -> list[Finding | Recovery]:
    # the first report after leaving may carry water drawn just before (``grace``, one
    # report interval): not "while away"
    out: list[Finding | Recovery] = []
    for a, b in data.away:
        a_s, b_s = _ts(a) + grace, _ts(b) if b is not None else _ts(now) + 1
        inside = uses[(uses >= a_s) & (uses < b_s)]
        if len(inside) == 0:
            continue
        first = _dt(int(inside[0]), now)
        hhmm = first.strftime("%d/%m %H:%M")
        out.append(
            Finding(
                kind="use_while_away",
                audience="family",
                household_id=data.household_id,
                device_id=data.device_id,
                at=first,
                score=None,
                dedupe_key=f"use_while_away:{data.household_id}:{pd.Timestamp(a).isoformat()}",
                explanation={
                    "en": f"water used at {hhmm} while the resident is declared away",
                    "fr": f"eau utilisée le {hhmm} alors que la personne est déclarée absente",
                },
            )
        )
    return out


def _leak(
    data: HouseholdData, now: datetime, t_s: np.ndarray, index: np.ndarray
) -> list[Finding | Recovery]:
    key = f"leak:{data.household_id}"
    now_s = _ts(now)
    window = t_s >= now_s - LEAK_WINDOW_S - UNKNOWN_GAP_S
    t_w, index_w = t_s[window], index[window]
    active = [
        (a, b)
        for a, b in leak_alarm_intervals(t_w, index_w)
        if a <= now_s < b and t_w[0] <= now_s - LEAK_WINDOW_S
    ]
    if not active:
        return [Recovery(key, now, "flow_stopped")]
    lph = _min_hourly_litres(t_s, index, now_s)
    continuous = lph > CONTINUOUS_LPH
    return [
        Finding(
            kind="continuous_flow" if continuous else "leak",
            audience="household",
            household_id=data.household_id,
            device_id=data.device_id,
            at=now,
            score=None,
            dedupe_key=key,
            explanation={
                "en": f"water has flowed every hour for 24 h (at least {lph:.0f} L/h): "
                "possible leak",
                "fr": f"l'eau coule toutes les heures depuis 24 h (au moins {lph:.0f} L/h) : "
                "fuite possible",
            },
        )
    ]


def _alarm_findings(data: HouseholdData, now: datetime) -> list[Finding | Recovery]:
    out: list[Finding | Recovery] = []
    for at, flag in data.alarms:
        if _ts(at) > _ts(now):
            continue
        household = flag in HOUSEHOLD_ALARMS
        out.append(
            Finding(
                kind="meter_alarm",
                audience="household" if household else "technician",
                household_id=data.household_id,
                device_id=data.device_id,
                at=at,
                score=None,
                dedupe_key=f"meter_alarm:{flag}:{data.device_id or data.household_id}",
                explanation={
                    "en": f"the meter reports '{flag}'",
                    "fr": f"le compteur signale « {flag} »",
                },
            )
        )
    return out
