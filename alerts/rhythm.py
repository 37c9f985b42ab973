"""Per-household water rhythm: how improbable is a gap in water use this long, now?

Model (pure, no I/O). For every water use ``u`` in the household's own recent history
we record the time until its next use, ``W``, in a slot given by the day type of ``u``
(weekday / weekend) and its hour of day. For a slot, the empirical survival
``S(g) = P(W > g)`` answers the question asked by issue 4: "given the time of day and
week of the last use, how improbable is a silence this long?". Sleep windows need no
configuration: the last use before bed is followed by a long gap every night, so long
gaps after 22:00 are simply normal in that household's data.

Why an empirical survival and not a scikit-learn model: the quantity we alert on is a
tail probability of one household's own waiting times, and the empirical distribution
is its unbiased, assumption-free estimate; a classifier would need labelled incidents
we do not have. Sparse slots are handled in a Bayesian way:

* pooling: a slot borrows half weight from the neighbouring hours and a small weight
  from the other day type (weekends are 2/7 of the data);
* cold start: the pooled counts are blended with a conservative population prior
  (a Weibull survival whose scale is long at night and generous by day) worth
  ``PRIOR_WEIGHT`` pseudo-observations, i.e. ``S = (E + n0 * S_prior) / (N + n0)``,
  the posterior mean of a Beta-Binomial with the prior as its mean. With no data the
  prior alone decides (late alerts, no false alarms); after a few weeks the household's
  own waiting times dominate.

The model stores counts on a 15-minute grid of gaps (JSON-serialisable via
``to_dict``/``from_dict``) so the service can keep it between nightly retrains.
Times are naive or UTC datetimes interpreted as the household's local clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

STEP_S = 900  # gap grid: 15 minutes
N_STEPS = 192  # gaps up to 48 h
GRID_S = np.arange(1, N_STEPS + 1, dtype=np.int64) * STEP_S  # g_j = (j+1) * 15 min
N_SLOTS = 48  # (weekday, weekend) x 24 hours
WINDOW_DAYS = 56  # history used at each retrain: 8 weeks follows slow changes
NEIGHBOUR_WEIGHT = 0.5
OTHER_DAYTYPE_WEIGHT = 0.25
PRIOR_WEIGHT = 6.0  # pseudo-observations of the population prior
WAKE_MARGIN_S = 7200  # alert 2 h after the latest first use of the morning seen lately
PRIOR_WAKE_DEADLINE_S = 11 * 3600  # cold start: not before 11:00
MIN_WAKE_DAYS = 5
NIGHT_FROM_H, NIGHT_TO_H = 19, 5  # last uses in this window are judged by the morning rule too
DAY_MAX_GAP_S = 12 * 3600  # by day, never wait longer than the 12 h fixed rule (cold start)
EVENING_MARGIN_S = 7200  # alert 2 h after the earliest evening last use seen lately
TAIL_FROM = 0.5  # the tail model starts at the body median (enough exceedances to learn from)
TAIL_PRIOR_A = 3.0  # pseudo-exceedances of the prior on the tail rate
ALPHA = 0.0005  # alert when the posterior P(gap this long) falls below this (tuned on seed 1)
MIN_GAP_S = 2 * 3600  # never alert on a gap shorter than this
VERSION = 1


def slot_of(t: datetime | pd.Timestamp) -> int:
    weekend = 1 if t.weekday() >= 5 else 0
    return weekend * 24 + t.hour


_DAY_SLOT = np.array([NIGHT_TO_H <= (s % 24) < NIGHT_FROM_H for s in range(N_SLOTS)])


def prior_survival(hour: int) -> np.ndarray:
    """Population prior S_prior(g) for a last use at ``hour``: conservative by design.

    Its scale is the time to a late morning (10:00) plus 2 h after an evening or night
    use, and 6 h by day, so with no history only a long silence is called improbable.
    """
    scale_h = ((10 - hour) % 24) + 2.0 if hour >= 20 or hour < 6 else 6.0
    g_h = GRID_S / 3600.0
    return np.asarray(np.exp(-((g_h / (scale_h / 1.6)) ** 2)), dtype=np.float64)


_PRIOR = np.stack([prior_survival(s % 24) for s in range(N_SLOTS)])
# prior mean excess over the 80th percentile (h): long at night, a couple of hours by day
TAIL_PRIOR_EXCESS_H = np.array(
    [3.0 if (s % 24) >= 20 or (s % 24) < 6 else 2.0 for s in range(N_SLOTS)], dtype=np.float64
)


@dataclass(frozen=True)
class RhythmModel:
    trained_at: datetime
    n_uses: int
    n: list[int] = field(default_factory=lambda: [0] * N_SLOTS)  # gaps per slot
    exceed: list[list[int]] = field(  # exceed[slot][j] = #gaps longer than g_j
        default_factory=lambda: [[0] * N_STEPS for _ in range(N_SLOTS)]
    )
    first_uses: list[list[int]] = field(  # [weekday, weekend]: first use of the morning, s of day
        default_factory=lambda: [[], []]
    )
    last_uses: list[list[int]] = (
        field(  # [weekday, weekend]: last use of the evening, s after midnight
            default_factory=lambda: [[], []]
        )
    )

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": VERSION,
            "trained_at": self.trained_at.isoformat(),
            "n_uses": self.n_uses,
            "n": list(self.n),
            "exceed": [list(r) for r in self.exceed],
            "first_uses": [list(r) for r in self.first_uses],
            "last_uses": [list(r) for r in self.last_uses],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RhythmModel:
        if d.get("version") != VERSION:
            raise ValueError(f"unsupported rhythm model version {d.get('version')!r}")
        n = [int(x) for x in d["n"]]
        exceed = [[int(x) for x in r] for r in d["exceed"]]
        if len(n) != N_SLOTS or len(exceed) != N_SLOTS or any(len(r) != N_STEPS for r in exceed):
            raise ValueError("rhythm model has the wrong shape")
        first = [[int(x) for x in r] for r in d.get("first_uses", [[], []])]
        last = [[int(x) for x in r] for r in d.get("last_uses", [[], []])]
        if len(first) != 2 or len(last) != 2:
            raise ValueError("rhythm model has the wrong shape")
        return cls(
            datetime.fromisoformat(d["trained_at"]), int(d["n_uses"]), n, exceed, first, last
        )

    def survival(self) -> np.ndarray:
        """Posterior S[slot, j] = P(W > g_j) for every slot (pooled, blended with the prior).

        Computed once per model object (read-only array): the evaluation replay and the
        scoring job ask for it at every step.
        """
        cached: np.ndarray | None = self.__dict__.get("_survival")
        if cached is None:
            cached = _posterior(np.asarray(self.n, np.float64), np.asarray(self.exceed, np.float64))
            cached.setflags(write=False)
            object.__setattr__(self, "_survival", cached)
        return cached


def _pool(a: np.ndarray) -> np.ndarray:
    """Borrow from neighbouring hours (same day type) and from the other day type."""
    shaped = a.reshape(2, 24, *a.shape[1:])
    own = shaped + NEIGHBOUR_WEIGHT * (np.roll(shaped, 1, axis=1) + np.roll(shaped, -1, axis=1))
    pooled = own + OTHER_DAYTYPE_WEIGHT * own[::-1]
    return np.asarray(pooled.reshape(a.shape), dtype=np.float64)


def _posterior(n: np.ndarray, exceed: np.ndarray) -> np.ndarray:
    """Posterior predictive survival S[slot, j] = P(W > g_j).

    Body: pooled empirical survival blended with the prior (Beta-Binomial mean).
    Tail: beyond the body's TAIL_FROM quantile u, gaps are too rare to count, so the
    excess over u is modelled as exponential with a conjugate Gamma prior on its rate
    (peaks-over-threshold); the predictive survival of the excess x is then Lomax,
    S(u + x) = S(u) * (b / (b + x)) ** a, with a = a0 + exceedances and
    b = b0 + total excess (hours). It is heavier-tailed than the data when data are
    few (conservative at cold start) and follows the household's own tail after that.
    """
    pn = _pool(n)[:, None]
    pe = _pool(exceed)
    body = (pe + PRIOR_WEIGHT * _PRIOR) / (pn + PRIOR_WEIGHT)
    grid_h = GRID_S / 3600.0
    u_idx = np.argmax(body <= TAIL_FROM, axis=1)  # body is non-increasing in g
    rows = np.arange(N_SLOTS)
    s_u = body[rows, u_idx]
    u_h = grid_h[u_idx]
    beyond = np.arange(N_STEPS)[None, :] > u_idx[:, None]
    m = pe[rows, u_idx]  # gaps longer than u (pooled)
    excess_h = np.where(beyond, pe, 0.0).sum(axis=1) * (STEP_S / 3600.0)  # sum of (W - u)
    prior_mean_excess = TAIL_PRIOR_EXCESS_H[rows]
    a = TAIL_PRIOR_A + m
    b = TAIL_PRIOR_A * prior_mean_excess + excess_h
    x = np.clip(grid_h[None, :] - u_h[:, None], 0.0, None)
    tail = s_u[:, None] * (b[:, None] / (b[:, None] + x)) ** a[:, None]
    return np.asarray(np.where(beyond, tail, body), dtype=np.float64)


def _as_index(uses: pd.Series | Sequence[datetime] | pd.DatetimeIndex) -> pd.DatetimeIndex:
    values = uses.to_numpy() if isinstance(uses, pd.Series) else uses
    idx = pd.DatetimeIndex(values)
    if idx.tz is not None:
        idx = idx.tz_convert("UTC").tz_localize(None)
    return idx.sort_values()


def _naive(t: datetime) -> pd.Timestamp:
    ts = pd.Timestamp(t)
    return ts.tz_convert("UTC").tz_localize(None) if ts.tz is not None else ts


def slots_of_seconds(t_s: np.ndarray) -> np.ndarray:
    """Slots of unix-second times (1970-01-01 was a Thursday)."""
    weekend = ((t_s // 86400 + 3) % 7 >= 5).astype(np.int64)
    return np.asarray(weekend * 24 + (t_s % 86400) // 3600, dtype=np.int64)


def fit(
    uses: pd.Series | Sequence[datetime] | pd.DatetimeIndex,
    now: datetime,
    excluded: Iterable[tuple[datetime, datetime]] = (),
    window_days: int = WINDOW_DAYS,
) -> RhythmModel:
    """Train on the uses before ``now`` (never after: no peeking at the future).

    ``excluded`` periods (declared away, device outages) carry no information about
    the resident's rhythm: gaps overlapping them are left out.
    """
    now_ts = _naive(now)
    t = np.asarray(_as_index(uses).as_unit("s").asi8, dtype=np.int64)
    ex = [(_naive(a).value // 10**9, _naive(b).value // 10**9) for a, b in excluded]
    n_uses, n, exceed, first = fit_counts(t, now_ts.value // 10**9, ex, window_days)
    lo = np.searchsorted(t, now_ts.value // 10**9 - window_days * 86400)
    hi = np.searchsorted(t, now_ts.value // 10**9)
    last = last_uses(t[lo:hi], ex, now_ts.value // 10**9)
    return RhythmModel(
        trained_at=now_ts.to_pydatetime(),
        n_uses=n_uses,
        n=[int(x) for x in n],
        exceed=[[int(x) for x in r] for r in exceed],
        first_uses=[[int(x) for x in r] for r in first],
        last_uses=[[int(x) for x in r] for r in last],
    )


def fit_counts(
    t: np.ndarray, now_s: int, excluded: Sequence[tuple[int, int]], window_days: int = WINDOW_DAYS
) -> tuple[int, np.ndarray, np.ndarray, list[np.ndarray]]:
    """The counts behind ``fit`` on sorted unix seconds (vectorised core)."""
    lo = np.searchsorted(t, now_s - window_days * 86400, side="left")
    hi = np.searchsorted(t, now_s, side="left")
    t = t[lo:hi]
    first = _first_uses(t, excluded)
    if len(t) < 2:
        return len(t), np.zeros(N_SLOTS, np.int64), np.zeros((N_SLOTS, N_STEPS), np.int64), first
    start, end = t[:-1], t[1:]
    keep = np.ones(len(start), dtype=bool)
    for a, b in excluded:
        if b > t[0] and a < t[-1]:
            keep &= ~((start < b) & (end > a))
    gaps = (end - start)[keep]
    slots = slots_of_seconds(start[keep])
    # bin j holds gaps in (g_{j-1}, g_j]: #gaps > g_j = n - cumulative count up to j
    bins = np.clip(np.ceil(gaps / STEP_S).astype(np.int64) - 1, 0, N_STEPS)
    counts = np.bincount(slots * (N_STEPS + 1) + bins, minlength=N_SLOTS * (N_STEPS + 1))
    counts = counts.reshape(N_SLOTS, N_STEPS + 1)
    n = counts.sum(axis=1)
    exceed = n[:, None] - np.cumsum(counts, axis=1)[:, :N_STEPS]
    return len(t), n, exceed, first


def _first_uses(t: np.ndarray, excluded: Sequence[tuple[int, int]]) -> list[np.ndarray]:
    """Per day type, the time of day of each morning's first use (05:00-14:00)."""
    sod = t % 86400
    cand = t[(sod >= NIGHT_TO_H * 3600) & (sod < 14 * 3600)]
    days, first_i = np.unique(cand // 86400, return_index=True)
    firsts = cand[first_i]
    keep = np.ones(len(days), dtype=bool)
    for a, b in excluded:  # mornings away or without frames say nothing about waking
        keep &= ~((days * 86400 < b) & ((days + 1) * 86400 > a))
    days, firsts = days[keep], firsts[keep]
    weekend = (days + 3) % 7 >= 5
    return [np.sort(firsts[~weekend] % 86400), np.sort(firsts[weekend] % 86400)]


def last_uses(t: np.ndarray, excluded: Sequence[tuple[int, int]], now_s: int) -> list[np.ndarray]:
    """Per day type, each evening's last use (12:00 to 04:00 the next night), s after midnight."""
    shifted = t - 4 * 3600  # an evening runs until 04:00
    sod = shifted % 86400
    cand = t[sod >= 8 * 3600]
    days = (cand - 4 * 3600) // 86400
    uniq, rev_i = np.unique(days[::-1], return_index=True)
    lasts = cand[::-1][rev_i]
    keep = (uniq + 1) * 86400 + 4 * 3600 <= now_s  # only finished evenings
    for a, b in excluded:
        keep &= ~((uniq * 86400 < b) & ((uniq + 1) * 86400 + 4 * 3600 > a))
    uniq, lasts = uniq[keep], lasts[keep]
    weekend = (uniq + 3) % 7 >= 5
    rel = lasts - uniq * 86400
    return [np.sort(rel[~weekend]), np.sort(rel[weekend])]


def evening_deadline(last_use_s: int, last: Sequence[Sequence[int] | np.ndarray]) -> int | None:
    """Absolute time by which a silence since ``last_use_s`` is earlier than any evening seen.

    The resident's earliest "last use of the evening" over the window, plus a margin:
    stopping before it has never happened lately. None when the rule does not apply.
    """
    day = (last_use_s - 4 * 3600) // 86400
    weekend = (day + 3) % 7 >= 5
    arr = np.asarray(last[1 if weekend else 0], dtype=np.int64)
    if len(arr) < 3:
        arr = np.concatenate([np.asarray(x, dtype=np.int64) for x in last])
    if len(arr) < MIN_WAKE_DAYS:
        return None
    earliest = int(arr.min())
    if last_use_s - day * 86400 >= earliest - EVENING_MARGIN_S:
        return None
    return int(day * 86400 + earliest + EVENING_MARGIN_S)


def wake_deadlines_s(first: Sequence[Sequence[int] | np.ndarray]) -> tuple[int, int]:
    """(weekday, weekend) time of day after which a silent morning is improbable.

    The latest first use seen in the window plus a margin; with fewer than
    MIN_WAKE_DAYS mornings the conservative prior (11:00) is the floor.
    """
    out = []
    pooled = np.concatenate([np.asarray(f, dtype=np.int64) for f in first])
    for f in first:
        arr = np.asarray(f, dtype=np.int64)
        if len(arr) < 3:
            arr = pooled
        if len(arr) < MIN_WAKE_DAYS:
            out.append(
                max(PRIOR_WAKE_DEADLINE_S, int(arr.max()) + WAKE_MARGIN_S if len(arr) else 0)
            )
        else:
            out.append(int(arr.max()) + WAKE_MARGIN_S)
    return out[0], out[1]


def morning_deadline(last_use_s: int, deadlines: tuple[int, int]) -> int | None:
    """Absolute time (s) by which the resident is usually up after a night-time last use."""
    hour = (last_use_s % 86400) // 3600
    if NIGHT_TO_H <= hour < NIGHT_FROM_H:
        return None
    day = last_use_s // 86400 + (1 if hour >= NIGHT_FROM_H else 0)
    weekend = (day + 3) % 7 >= 5
    return int(day * 86400 + deadlines[1 if weekend else 0])


def thresholds_from_counts(
    n: np.ndarray, exceed: np.ndarray, alpha: float | None = None, min_gap_s: int | None = None
) -> np.ndarray:
    alpha = ALPHA if alpha is None else alpha
    min_gap_s = MIN_GAP_S if min_gap_s is None else min_gap_s
    surv = _posterior(n.astype(np.float64), exceed.astype(np.float64))
    ok = (surv < alpha) & (GRID_S[None, :] >= min_gap_s)
    ok |= _DAY_SLOT[:, None] & (GRID_S[None, :] >= DAY_MAX_GAP_S)
    first = np.where(ok.any(axis=1), ok.argmax(axis=1), N_STEPS - 1)
    return np.asarray(GRID_S[first], dtype=np.int64)


def thresholds_s(
    model: RhythmModel, alpha: float = ALPHA, min_gap_s: int = MIN_GAP_S
) -> np.ndarray:
    """Per slot, the shortest gap (s) at which ``assess`` crosses the threshold.

    ``assess`` is monotone in the gap for a given model, so scoring every few minutes
    is equivalent to comparing the gap with this value (used by the evaluation replay).
    """
    n, e = np.asarray(model.n), np.asarray(model.exceed)
    return thresholds_from_counts(n, e, alpha, min_gap_s)


def _survival_at(surv_row: np.ndarray, gap_s: float) -> float:
    j = int(gap_s // STEP_S) - 1  # S is a step function: P(W > g_j) on [g_j, g_{j+1})
    if j < 0:
        return 1.0
    return float(surv_row[min(j, N_STEPS - 1)])


def usual_within_s(surv_row: np.ndarray, q: float = 0.9) -> int:
    """The gap within which the next use usually (with probability q) comes."""
    hit = np.nonzero(surv_row <= 1 - q)[0]
    return int(GRID_S[hit[0]]) if len(hit) else int(GRID_S[-1])


def _fmt_h(seconds: int) -> str:
    h = seconds / 3600
    return f"{h:.0f} h" if h >= 1.75 or h.is_integer() else f"{round(h * 60)} min"


def explain(last_use_at: datetime, usual_s: int, weekend: bool) -> dict[str, str]:
    hhmm = last_use_at.strftime("%H:%M")
    return {
        "en": (
            f"no water since {hhmm}, usually used within {_fmt_h(usual_s)} at this hour "
            f"{'at weekends' if weekend else 'on weekdays'}"
        ),
        "fr": (
            f"pas d'eau depuis {hhmm}, d'habitude utilisée en moins de "
            f"{_fmt_h(usual_s).replace(' h', ' h')} à cette heure "
            f"{'le week-end' if weekend else 'en semaine'}"
        ),
    }


def assess(
    model: RhythmModel,
    last_use_at: datetime,
    now: datetime,
    away: bool,
    alpha: float | None = None,
    min_gap_s: int | None = None,
) -> tuple[float, bool, dict[str, str]]:
    """(score, threshold_crossed, explanation) for the silence since ``last_use_at``.

    ``score`` = 1 - P(a gap at least this long | the slot of the last use). During a
    declared away period nothing is improbable. The caller passes as ``last_use_at``
    the later of the last use and the end of the last away period.
    """
    if away:
        return 0.0, False, {"en": "away (declared)", "fr": "absence déclarée"}
    slot = slot_of(last_use_at)
    surv = model.survival()[slot]
    gap_s = max(0.0, (now - last_use_at) / timedelta(seconds=1))
    s = _survival_at(surv, gap_s)
    alpha = ALPHA if alpha is None else alpha
    min_gap_s = MIN_GAP_S if min_gap_s is None else min_gap_s
    crossed = s < alpha and gap_s >= min_gap_s
    crossed |= bool(_DAY_SLOT[slot]) and gap_s >= DAY_MAX_GAP_S
    explanation = explain(last_use_at, usual_within_s(surv), slot >= 24)
    last_s = int(pd.Timestamp(last_use_at).value // 10**9)
    now_s = int(pd.Timestamp(now).value // 10**9)
    deadlines = wake_deadlines_s(model.first_uses)
    deadline = morning_deadline(last_s, deadlines)
    evening = evening_deadline(last_s, model.last_uses)
    if evening is not None and now_s >= evening and gap_s >= min_gap_s and not crossed:
        crossed = True
        s = min(s, alpha)
        earliest = (evening - EVENING_MARGIN_S) % 86400
        explanation = explain_evening(last_use_at, earliest, slot >= 24)
    if deadline is not None and now_s >= deadline and gap_s >= min_gap_s and not crossed:
        crossed = True
        s = min(s, alpha)
        weekend = ((deadline // 86400) + 3) % 7 >= 5
        explanation = explain_morning(last_use_at, deadlines[1 if weekend else 0], weekend)
    return 1.0 - s, crossed, explanation


def explain_evening(last_use_at: datetime, earliest_sod: int, weekend: bool) -> dict[str, str]:
    hhmm = last_use_at.strftime("%H:%M")
    until = f"{earliest_sod // 3600:02d}:{earliest_sod % 3600 // 60:02d}"
    return {
        "en": f"no water since {hhmm}, usually used until at least {until} in the evening",
        "fr": f"pas d'eau depuis {hhmm}, d'habitude utilisée jusqu'à au moins {until} le soir",
    }


def explain_morning(last_use_at: datetime, deadline_sod: int, weekend: bool) -> dict[str, str]:
    hhmm = last_use_at.strftime("%H:%M")
    usual = (deadline_sod - WAKE_MARGIN_S) % 86400
    up = f"{usual // 3600:02d}:{usual % 3600 // 60:02d}"
    return {
        "en": f"no water since {hhmm}, usually up by {up} "
        f"{'at weekends' if weekend else 'on weekdays'}",
        "fr": f"pas d'eau depuis {hhmm}, d'habitude levée avant {up} "
        f"{'le week-end' if weekend else 'en semaine'}",
    }
