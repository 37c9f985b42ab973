"""Replay the care detectors over households with known incidents, and score them (pure).

Replay: time runs forward; the rhythm model is retrained every midnight on the past
only (no peeking at the future) and the inactivity score is evaluated every 5 minutes.
Because ``rhythm.assess`` is monotone in the gap for a given model, the first 5-minute
tick at which it crosses is computed directly from the model's per-slot threshold --
the same alerts as a literal 5-minute loop, at a fraction of the cost. Inactivity is
suppressed while a declared away period runs and while the device is silent (last
frame older than two report intervals), exactly as in ``alerts.detectors``. One alert
per silence: it stays open until water use resumes.

The fixed-rule baselines (8 h, 12 h, 24 h since the last use, as deployed in Sakaki,
Gujo/LevenIsWater and K-water) run on the same uses with the same suppressions.

Times are int seconds on the household's local clock. An alert is a true detection if
it falls within ``FOUND_AFTER_S`` after an incident onset, otherwise a false alert,
named after the ground-truth behaviour that explains the silence when it is known.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from alerts import detectors, rhythm

DAY = 86400
H = 3600
TICK_S = 300  # scoring every 5 minutes
FOUND_AFTER_S = 36 * H  # an incident is over (found) after this
BASELINE_HOURS = (8, 12, 24)
CAUSE_PRIORITY = (
    "away_undeclared_holiday",
    "away_undeclared_hospital",
    "away_undeclared_day_trip",
    "late_wake_up",
    "outing",
    "nap",
)


@dataclass
class Truth:
    incidents: list[tuple[int, str]] = field(default_factory=list)  # (onset, kind)
    away: list[tuple[int, int]] = field(default_factory=list)  # declared
    leaks: list[tuple[int, int, float]] = field(default_factory=list)  # start, end, L/h
    periods: list[tuple[int, int, str]] = field(default_factory=list)  # quiet + cause
    flows: list[tuple[int, int]] = field(default_factory=list)  # other true flows (tap)


@dataclass
class DetectorResult:
    delays: list[tuple[int, int | None]] = field(default_factory=list)  # onset, delay
    false_causes: list[str] = field(default_factory=list)
    silent_family_alerts: int = 0


@dataclass
class HouseholdResult:
    years: float
    detectors: dict[str, DetectorResult]
    leak_delays: list[tuple[float, int | None]] = field(default_factory=list)  # L/h, delay
    leak_false_alerts: int = 0
    use_while_away: int = 0


def _gap_starts(uses: np.ndarray, away: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """Gap starts (uses and away ends, none inside away) and where each can alert until."""
    starts = np.unique(np.concatenate([uses, np.array([b for _, b in away], dtype=np.int64)]))
    inside = np.zeros(len(starts), dtype=bool)
    for a, b in away:
        inside |= (starts >= a) & (starts < b)
    starts = starts[~inside]
    nxt = np.searchsorted(uses, starts, side="right")
    cut = np.where(nxt < len(uses), uses[np.minimum(nxt, len(uses) - 1)], np.iinfo(np.int64).max)
    for a, _ in away:
        cut = np.where((starts < a) & (a < cut), a, cut)
    return starts, cut


def _first_tick(t: int) -> int:
    return -(-t // TICK_S) * TICK_S


def _unsilenced(t: int, frames: np.ndarray, silent_s: int) -> int | None:
    """The first time >= t at which the device is not silent (a frame arrived)."""
    i = np.searchsorted(frames, t, side="right") - 1
    if i >= 0 and t - frames[i] <= silent_s:
        return t
    return int(frames[i + 1]) if i + 1 < len(frames) else None


def _alerts(
    starts: np.ndarray,
    cut: np.ndarray,
    threshold: Any,
    frames: np.ndarray,
    silent_s: int,
) -> list[tuple[int, int]]:
    """(gap start, alert time) for every silence that alerts; threshold(start, day)->s."""
    out = []
    min_th = threshold.minimum
    for s, c in zip(starts.tolist(), cut.tolist(), strict=True):
        if c - s < min_th:
            continue
        k = s // DAY
        t: int | None = None
        while k * DAY < c:
            cand = max(s + threshold(s, k), k * DAY)
            if cand < (k + 1) * DAY:
                t = cand
                break
            k += 1
        if t is None:
            continue
        t = _unsilenced(_first_tick(t), frames, silent_s)
        if t is not None and t < c:
            out.append((s, t))
    return out


class _Fixed:
    def __init__(self, hours: int) -> None:
        self.minimum = hours * H

    def __call__(self, s: int, day: int) -> int:
        return self.minimum


class _Rhythm:
    """Thresholds of the model retrained at each midnight on the uses before it."""

    def __init__(self, uses: np.ndarray, excluded: list[tuple[int, int]], d0: int, d1: int) -> None:
        self.d0 = d0
        self.table = np.empty((d1 - d0 + 1, rhythm.N_SLOTS), dtype=np.int64)
        self.wake: list[tuple[int, int]] = []
        self.last: list[list[np.ndarray]] = []
        for d in range(d0, d1 + 1):
            _, n, e, first = rhythm.fit_counts(uses, d * DAY, excluded)
            self.table[d - d0] = rhythm.thresholds_from_counts(n, e)
            self.wake.append(rhythm.wake_deadlines_s(first))
            lo = np.searchsorted(uses, d * DAY - rhythm.WINDOW_DAYS * DAY)
            hi = np.searchsorted(uses, d * DAY)
            self.last.append(rhythm.last_uses(uses[lo:hi], excluded, d * DAY))
        self.minimum = min(int(self.table.min()), rhythm.MIN_GAP_S)

    def __call__(self, s: int, day: int) -> int:
        d = min(max(day - self.d0, 0), len(self.table) - 1)
        th = int(self.table[d, rhythm.slots_of_seconds(np.array([s]))[0]])
        deadline = rhythm.morning_deadline(s, self.wake[d])
        if deadline is not None:
            th = min(th, max(deadline - s, rhythm.MIN_GAP_S))
        evening = rhythm.evening_deadline(s, self.last[d])
        if evening is not None:
            th = min(th, max(evening - s, rhythm.MIN_GAP_S))
        return th


def _cause(s: int, t: int, truth: Truth) -> str:
    """Why the resident was silent from s to the false alert at t.

    An outage inside (s, t) is not the cause: the replay only alerts on a fresh frame,
    and a cumulative index that has not moved across the outage proves nobody used
    water (water used meanwhile counts as a use, detectors.use_mask). The alert says
    what the resident did; alerts raised while the device is silent are counted apart.
    """
    best, best_overlap = None, 0
    for a, b, cause in truth.periods:
        if a <= t < b:
            return cause
        overlap = min(b, t) - max(a, s)
        if overlap > best_overlap:
            best, best_overlap = cause, overlap
    if best:
        return best
    hour = (t % DAY) // H
    return "sleep" if hour >= 22 or hour < 10 else "quiet_at_home"


def replay_household(t_s: np.ndarray, index: np.ndarray, truth: Truth) -> HouseholdResult:
    t_s = np.asarray(t_s, dtype=np.int64)
    index = np.asarray(index, dtype=np.float64)
    uses = t_s[detectors.use_mask(t_s, index)]
    interval = detectors.report_interval_s(t_s)
    silent_s = detectors.SILENT_INTERVALS * interval
    outages = detectors.outage_periods(t_s, interval)
    starts, cut = _gap_starts(uses, truth.away)
    d0, d1 = int(t_s[0] // DAY), int(t_s[-1] // DAY) + 1
    rules: dict[str, Any] = {"rhythm": _Rhythm(uses, truth.away + outages, d0, d1)}
    for h in BASELINE_HOURS:
        rules[f"fixed {h} h"] = _Fixed(h)
    span = float(t_s[-1] - t_s[0])
    years = max(span - FOUND_AFTER_S * len(truth.incidents), 0.0) / (365 * DAY)
    result = HouseholdResult(years=years, detectors={})
    for name, rule in rules.items():
        result.detectors[name] = _score(
            _alerts(starts, cut, rule, t_s, silent_s), truth, t_s, silent_s
        )
    _score_leaks(result, t_s, index, truth)
    result.use_while_away = sum(
        bool(((uses >= a + interval) & (uses < b)).any()) for a, b in truth.away
    )
    return result


def _score(
    alerts: list[tuple[int, int]],
    truth: Truth,
    frames: np.ndarray,
    silent_s: int,
) -> DetectorResult:
    res = DetectorResult()
    first: dict[int, int] = {}
    for s, t in alerts:
        if _unsilenced(t, frames, silent_s) != t:
            # raised with no frame for > SILENT_INTERVALS reports: caused by the device's
            # silence, never expected (the replay, like the service, suppresses them)
            res.silent_family_alerts += 1
            res.false_causes.append("device_silence")
            continue
        hit = [o for o, _ in truth.incidents if o <= t < o + FOUND_AFTER_S]
        if hit:
            first.setdefault(hit[0], t - hit[0])
            continue
        res.false_causes.append(_cause(s, t, truth))
    res.delays = [(o, first.get(o)) for o, _ in truth.incidents]
    return res


def _score_leaks(result: HouseholdResult, t_s: np.ndarray, index: np.ndarray, truth: Truth) -> None:
    alarms = detectors.leak_alarm_intervals(t_s, index)
    true_flows = [(a, b) for a, b, _ in truth.leaks] + truth.flows
    for a, b, lph in truth.leaks:
        hits = [max(on, a) for on, off in alarms if on < b and off > a]
        result.leak_delays.append((lph, min(hits) - a if hits else None))
    for on, off in alarms:
        if on > t_s[-1]:
            continue
        if not any(on < b + H and off > a for a, b in true_flows):
            result.leak_false_alerts += 1


def onset_period(onset_s: int) -> str:
    hour = (onset_s % DAY) // H
    return "night" if hour >= 22 or hour < 6 else ("morning" if hour < 12 else "day")


def _q(x: list[float], q: float) -> float | None:
    return float(np.quantile(x, q)) / H if x else None


def summarise(results: list[HouseholdResult]) -> dict[str, Any]:
    """The evaluation report (JSON-ready)."""
    years = sum(r.years for r in results)
    report: dict[str, Any] = {
        "households": len(results),
        "household_years": round(years, 2),
        "incidents": sum(len(r.detectors["rhythm"].delays) for r in results) if results else 0,
        "detectors": {},
    }
    names = list(results[0].detectors) if results else []
    for name in names:
        delays = [d for r in results for d in r.detectors[name].delays]
        found = [float(d) for _, d in delays if d is not None]
        by_period: dict[str, Any] = {}
        for period in ("night", "morning", "day", "all"):
            xs = [
                float(d)
                for o, d in delays
                if d is not None and (period == "all" or onset_period(o) == period)
            ]
            n = sum(1 for o, _ in delays if period == "all" or onset_period(o) == period)
            by_period[period] = {"n": n, "median_h": _q(xs, 0.5), "p95_h": _q(xs, 0.95)}
        causes: dict[str, int] = {}
        for r in results:
            for c in r.detectors[name].false_causes:
                causes[c] = causes.get(c, 0) + 1
        n_inc = len(delays)
        # p95 of delays counts missed incidents as infinitely late
        all_d = sorted(found + [float("inf")] * (n_inc - len(found)))
        report["detectors"][name] = {
            "recall_12h": sum(d <= 12 * H for d in found) / n_inc if n_inc else None,
            "recall_24h": sum(d <= 24 * H for d in found) / n_inc if n_inc else None,
            "median_delay_h": float(np.quantile(all_d, 0.5)) / H if all_d else None,
            "p95_delay_h": float(np.quantile(all_d, 0.95)) / H if all_d else None,
            "delay_by_onset": by_period,
            "false_alerts_per_household_year": sum(causes.values()) / years if years else None,
            "false_alerts_by_cause": {c: n / years for c, n in sorted(causes.items())}
            if years
            else {},
            "family_alerts_from_device_silence": sum(
                r.detectors[name].silent_family_alerts for r in results
            ),
        }
    leaks: dict[str, Any] = {}
    for rate in sorted({lph for r in results for lph, _ in r.leak_delays}):
        ds = [d for r in results for lph, d in r.leak_delays if lph == rate]
        ok = [float(d) for d in ds if d is not None]
        leaks[f"{rate:g}"] = {
            "n": len(ds),
            "flagged_24h": sum(d <= 24 * H for d in ok) / len(ds),
            "median_delay_h": _q(ok, 0.5),
            "max_delay_h": max(ok) / H if ok else None,
        }
    report["leaks_by_rate_lph"] = leaks
    report["leak_false_alerts_per_household_year"] = (
        sum(r.leak_false_alerts for r in results) / years if years else None
    )
    report["use_while_away_alerts"] = sum(r.use_while_away for r in results)
    return report
