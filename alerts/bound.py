"""A hindsight bound on inactivity detection: how fast can *any* detector be? (pure)

Issue 4 asks for a median delay <= 3 h and a p95 <= 9 h at <= 4 false alerts per
household-year. Whether a target is reachable at all depends on the behaviour, not on
the detector: a resident who goes to bed and sleeps 10 h without a toilet trip looks,
to a water meter, exactly like one who collapsed at bedtime. This module measures that.

The oracle: a detector that alerts once the silence since the last use exceeds D,
chosen per household and per (weekday, hour of the last use), *knowing in hindsight*
every normal silence of the whole evaluated year. Choosing D <= d in a bin detects
the incidents whose onset falls in that bin within d, and costs one false alert per
normal silence in that bin longer than d. The cheapest way to cover a share q of the
onsets is a fractional knapsack (bins by onset share per false alert), which is a
lower bound on the false alerts of any detector of this kind -- a real one learns
from the past only and must generalise, so it can only do worse.

Onsets are weighted like the simulator draws them: uniformly over the resident's
uses (the true ones when simulated; on a territory's history, the uses seen by the
meter, a cruder proxy). The silences are those the meter shows, excluding declared
away periods, device outages (no detector alerts then) and the time after an
incident onset. The bound holds for this class of detector -- one threshold per
household, weekday and hour of the last use -- not for one that would read other
signals (a check-in answered by the resident, another sensor).

The oracle is optimistic twice: it is one detector of the class, and it knows the year
it is judged on -- it keeps the hours that *happened* to have no long silence. So the
report also gives an honest version (``cross_validated_false_alerts``): the same
cheapest-first choice of (day type, hour) bins is made on alternate weeks and paid on
the others, and the other way round. That is still generous to a real detector (it
learns from half a year, not from the last weeks; incidents outside the chosen bins
get no alert at all rather than a late one), and it is the figure to set targets by.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

DAY = 86400
H = 3600
N_BINS = 7 * 24  # weekday x hour of the last use
TARGETS = (  # (share of onsets, within hours): median and p95 at several delays
    (0.5, 3),
    (0.5, 4),
    (0.5, 5),
    (0.95, 9),
    (0.95, 10),
    (0.95, 11),
    (0.95, 12),
)
AFTER_ONSET_S = 14 * DAY  # an incident's silence, and the stay after it, is not normal


WEEK = 7 * DAY
CV_BINS = 2 * 24  # (weekday | weekend) x hour: the rhythm model's slots; finer bins overfit


@dataclass(frozen=True)
class HouseholdGaps:
    onset_share: np.ndarray  # (N_BINS,) share of this household's uses in each bin
    gaps: tuple[np.ndarray, ...]  # per bin, the sorted normal silences (s)
    # the same, unbinned, for the cross-validated estimate
    gap_starts: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    gap_lengths: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    onset_times: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


def _bins(t: np.ndarray) -> np.ndarray:
    # 1970-01-01 was a Thursday: weekday = (days + 3) % 7, Monday = 0
    return np.asarray(((t // DAY + 3) % 7) * 24 + (t % DAY) // H, dtype=np.int64)


def household_gaps(
    uses: np.ndarray,
    excluded: Sequence[tuple[int, int]],
    onsets: Sequence[int],
    onset_uses: np.ndarray | None = None,
) -> HouseholdGaps:
    """The normal silences of one household by bin, and where incidents may start.

    ``onset_uses``: the uses incidents are drawn from (default: ``uses``).
    """
    u = np.sort(np.asarray(uses, dtype=np.int64))
    start, gap = u[:-1], np.diff(u)
    keep = np.ones(len(start), dtype=bool)
    for a, b in excluded:
        keep &= ~((start < b) & (start + gap > a))
    for o in onsets:
        keep &= ~((start >= o) & (start < o + AFTER_ONSET_S))
    start, gap = start[keep], gap[keep]
    bins = _bins(start)
    w = u if onset_uses is None else np.asarray(onset_uses, dtype=np.int64)
    at_home = np.ones(len(w), dtype=bool)
    for a, b in excluded:
        at_home &= ~((w >= a) & (w < b))
    share = np.bincount(_bins(w[at_home]), minlength=N_BINS) / max(int(at_home.sum()), 1)
    return HouseholdGaps(
        share, tuple(np.sort(gap[bins == b]) for b in range(N_BINS)), start, gap, w[at_home]
    )


def _cv_bins(t: np.ndarray) -> np.ndarray:
    weekend = ((t // DAY + 3) % 7 >= 5).astype(np.int64)
    return np.asarray(weekend * 24 + (t % DAY) // H, dtype=np.int64)


def _halves(households: Sequence[HouseholdGaps], d_s: int) -> tuple[np.ndarray, np.ndarray]:
    """Per half (even, odd weeks): onset shares and silences longer than d_s, by bin."""
    n = len(households)
    share = np.zeros((2, n, CV_BINS))
    cost = np.zeros((2, n, CV_BINS))
    for i, h in enumerate(households):
        for half in (0, 1):
            m = (h.gap_starts // WEEK) % 2 == half
            long = (h.gap_lengths[m] > d_s).astype(np.float64)
            cost[half, i] = np.bincount(_cv_bins(h.gap_starts[m]), long, minlength=CV_BINS)
            o = h.onset_times[(h.onset_times // WEEK) % 2 == half]
            share[half, i] = np.bincount(_cv_bins(o), minlength=CV_BINS) / max(len(o), 1)
    return share.reshape(2, -1) / n, cost.reshape(2, -1)


def _pay(
    pick: tuple[np.ndarray, np.ndarray], pay: tuple[np.ndarray, np.ndarray], q: float
) -> float:
    """Bins ordered cheapest-first on one half, taken until they cover q of the other's onsets."""
    s, c = pick
    order = np.lexsort((c, -s / np.maximum(c, 1e-12)))
    covered = np.cumsum(pay[0][order])
    k = int(np.searchsorted(covered, q * pay[0].sum()))
    return float(pay[1][order][: k + 1].sum())


def cross_validated_false_alerts(
    households: Sequence[HouseholdGaps], years: float, q: float, d_s: int
) -> float:
    """False alerts per household-year of bins chosen on alternate weeks, paid on the others."""
    if not households or years <= 0:
        return float("nan")
    share, cost = _halves(households, d_s)
    a, b = (share[0], cost[0]), (share[1], cost[1])
    paid = _pay(a, b, q) + _pay(b, a, q)  # each half pays once: the whole span
    return paid / years


def min_false_alerts(
    households: Sequence[HouseholdGaps], years: float, q: float, d_s: int
) -> float:
    """Fewest false alerts per household-year to detect a share q of onsets within d_s."""
    n = len(households)
    if n == 0 or years <= 0:
        return float("nan")
    share = np.concatenate([h.onset_share for h in households]) / n
    cost = np.array(
        [len(g) - np.searchsorted(g, d_s, side="right") for h in households for g in h.gaps],
        dtype=np.float64,
    )
    order = np.lexsort((cost, -share / np.maximum(cost, 1e-12)))
    s, c = share[order], cost[order]
    covered = np.cumsum(s)
    k = int(np.searchsorted(covered, q))
    if k >= len(s):
        return float("inf")
    before = covered[k - 1] if k else 0.0
    total = c[:k].sum() + c[k] * (q - before) / s[k]  # fractional last bin: a lower bound
    return float(total) / years


def bound_report(households: Sequence[HouseholdGaps], years: float) -> list[dict[str, float]]:
    return [
        {
            "share": q,
            "within_h": float(d),
            "min_false_alerts": min_false_alerts(households, years, q, d * H),
            "cross_validated_false_alerts": cross_validated_false_alerts(
                households, years, q, d * H
            ),
        }
        for q, d in TARGETS
    ]
