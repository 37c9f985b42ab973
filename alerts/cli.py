"""``foyer care evaluate``: replay the care detectors over simulated or real households.

Without files it simulates single-senior households (device_sim.senior); with
``--readings FILE --incidents FILE`` (CSV formats in docs/care.md, "Evaluation") it
evaluates a territory's own history. Households are replayed in parallel processes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from alerts import bound, detectors, evaluation

T = TypeVar("T")
DEFAULT_HOUSEHOLDS = 100
DEFAULT_DAYS = 365


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    care = sub.add_parser("care", help="care alerts").add_subparsers(
        required=True, metavar="ACTION"
    )
    ev = care.add_parser(
        "evaluate", help="replay the detectors and print recall, delays, false alerts"
    )
    ev.add_argument("--households", type=int, default=DEFAULT_HOUSEHOLDS)
    ev.add_argument("--days", type=int, default=DEFAULT_DAYS)
    ev.add_argument("--seed", type=int, default=1)
    ev.add_argument("--readings", type=Path, help="CSV household,time,index_l")
    ev.add_argument("--incidents", type=Path, help="CSV household,onset")
    ev.add_argument("--away", type=Path, help="optional CSV household,start,end (declared away)")
    ev.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    ev.add_argument("--json", action="store_true", help="print the report as JSON")
    ev.add_argument(
        "--bound",
        action="store_true",
        help="also print the hindsight bound: the fewest false alerts any detector needs",
    )
    ev.set_defaults(func=_evaluate)


def _evaluate(args: argparse.Namespace, settings: object = None) -> int:
    if (args.readings is None) != (args.incidents is None):
        print("--readings and --incidents go together", file=sys.stderr)
        return 2
    try:
        if args.readings is not None:
            jobs = _from_csv(args.readings, args.incidents, args.away)
            results = _run(jobs, args.workers)
            source = f"{args.readings}"
        else:
            jobs = [("sim", f"H{i:05d}", args.days, args.seed) for i in range(args.households)]
            results = _run(jobs, args.workers)
            source = f"simulation seed {args.seed}, {args.days} days"
    except (OSError, ValueError, KeyError) as exc:
        print(f"cannot evaluate: {exc}", file=sys.stderr)
        return 2
    report = evaluation.summarise(results)
    report["source"] = source
    if args.bound:
        gaps = _run_bound(jobs, args.workers)
        report["hindsight_bound"] = bound.bound_report(gaps, report["household_years"])
    print(json.dumps(report, indent=2) if args.json else format_table(report))
    return 0


def _inputs(job: tuple[Any, ...]) -> tuple[np.ndarray, np.ndarray, evaluation.Truth]:
    if job[0] == "sim":
        return _simulated(job[1], job[2], job[3])
    _, t_s, index, truth = job
    return t_s, index, truth


def _work(job: tuple[Any, ...]) -> evaluation.HouseholdResult:
    return evaluation.replay_household(*_inputs(job))


def _bound_work(job: tuple[Any, ...]) -> bound.HouseholdGaps:
    """The silences the detectors see (uses from the meter), with what they may ignore;
    simulated incidents start at one of the resident's true uses, drawn uniformly."""
    t_s, index, truth = _inputs(job)
    uses = t_s[detectors.use_mask(t_s, index)]
    outages = detectors.outage_periods(t_s, detectors.report_interval_s(t_s))
    onsets = [o for o, _ in truth.incidents]
    true_uses = _true_uses(job[1], job[2], job[3]) if job[0] == "sim" else None
    return bound.household_gaps(uses, truth.away + outages, onsets, true_uses)


def _true_uses(household: str, days: int, seed: int) -> np.ndarray:
    from device_sim import senior

    hh = senior.simulate_household(household, days, seed)
    return hh.uses.astype(np.int64) + int(senior.START.value // 10**9)


def _simulated(
    household: str, days: int, seed: int
) -> tuple[np.ndarray, np.ndarray, evaluation.Truth]:
    from device_sim import senior  # the simulator only speaks the wire contract

    hh = senior.simulate_household(household, days, seed)
    off = int(senior.START.value // 10**9)
    truth = evaluation.Truth(
        incidents=[(o + off, k) for o, k in hh.incidents],
        away=[(a + off, b + off) for a, b in hh.away],
        leaks=[(a + off, b + off, r) for a, b, r in hh.leaks],
        periods=[(a + off, b + off, c) for a, b, c in hh.periods],
        flows=[
            (o + off, o + off + senior.FOUND_AFTER_S) for o, k in hh.incidents if k == "tap_running"
        ],
    )
    return hh.frames + off, hh.index_l, truth


def _run(jobs: Iterable[tuple[Any, ...]], workers: int) -> list[evaluation.HouseholdResult]:
    return _map(_work, jobs, workers)


def _run_bound(jobs: Iterable[tuple[Any, ...]], workers: int) -> list[bound.HouseholdGaps]:
    return _map(_bound_work, jobs, workers)


def _map(
    fn: Callable[[tuple[Any, ...]], T], jobs: Iterable[tuple[Any, ...]], workers: int
) -> list[T]:
    jobs = list(jobs)
    if workers <= 1 or len(jobs) < 4:
        return [fn(j) for j in jobs]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(fn, jobs, chunksize=max(1, len(jobs) // (workers * 8))))


def _seconds(col: pd.Series) -> np.ndarray:
    t = pd.to_datetime(col, format="ISO8601")
    if t.dt.tz is not None:
        t = t.dt.tz_convert("UTC").dt.tz_localize(None)
    return np.asarray(t.dt.as_unit("s").astype("int64"), dtype=np.int64)


def _from_csv(readings: Path, incidents: Path, away: Path | None) -> list[tuple[Any, ...]]:
    r = pd.read_csv(readings, dtype={"household": str})
    inc = pd.read_csv(incidents, dtype={"household": str})
    for df, cols, name in (
        (r, ("household", "time", "index_l"), readings),
        (inc, ("household", "onset"), incidents),
    ):
        missing = set(cols) - set(df.columns)
        if missing:
            raise ValueError(f"{name}: missing column(s) {', '.join(sorted(missing))}")
    r = r.assign(t=_seconds(r["time"])).sort_values(["household", "t"])
    inc = inc.assign(t=_seconds(inc["onset"]))
    aw = pd.DataFrame(columns=["household", "a", "b"])
    if away is not None:
        a = pd.read_csv(away, dtype={"household": str})
        aw = a.assign(a=_seconds(a["start"]), b=_seconds(a["end"]))
    jobs: list[tuple[Any, ...]] = []
    for hid, g in r.groupby("household", sort=True):
        truth = evaluation.Truth(
            incidents=[(int(o), "incident") for o in inc.loc[inc["household"] == hid, "t"]],
            away=[
                (int(x), int(y))
                for x, y in aw.loc[aw["household"] == hid, ["a", "b"]].itertuples(index=False)
            ],
        )
        jobs.append(("csv", g["t"].to_numpy(), g["index_l"].to_numpy(dtype=np.float64), truth))
    if not jobs:
        raise ValueError(f"{readings}: no readings")
    return jobs


def _h(x: float | None) -> str:
    return "-" if x is None else ("inf" if x == float("inf") else f"{x:.1f}")


def _ratio(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def format_table(report: dict[str, Any]) -> str:
    dets = report["detectors"]
    lines = [
        f"Care evaluation ({report.get('source', '')}): {report['households']} households, "
        f"{report['household_years']} household-years, {report['incidents']} incidents",
        "",
        f"{'detector':<11}{'rec12h':>7}{'rec24h':>7}{'med h':>7}{'p95 h':>7}"
        f"{'night med/p95':>15}{'morning med/p95':>17}{'day med/p95':>13}"
        f"{'FA/hh-yr':>10}{'silence':>9}",
    ]
    for name, d in dets.items():
        per = d["delay_by_onset"]
        cells = [
            f"{_h(per[p]['median_h'])}/{_h(per[p]['p95_h'])}" for p in ("night", "morning", "day")
        ]
        lines.append(
            f"{name:<11}{_ratio(d['recall_12h']):>7}"
            f"{_ratio(d['recall_24h']):>7}"
            f"{_h(d['median_delay_h']):>7}{_h(d['p95_delay_h']):>7}"
            f"{cells[0]:>15}{cells[1]:>17}{cells[2]:>13}"
            f"{_h(d['false_alerts_per_household_year']):>10}"
            f"{d['family_alerts_from_device_silence']:>9}"
        )
    n_by = (
        {p: dets["rhythm"]["delay_by_onset"][p]["n"] for p in ("night", "morning", "day")}
        if dets
        else {}
    )
    lines.append(
        f"(incidents by onset: {n_by}; delays in hours; "
        "missed incidents count as infinite in med/p95)"
    )
    causes = sorted({c for d in dets.values() for c in d["false_alerts_by_cause"]})
    lines += [
        "",
        "False alerts per household-year by cause",
        f"{'cause':<28}" + "".join(f"{n:>12}" for n in dets),
    ]
    for c in causes:
        lines.append(
            f"{c:<28}"
            + "".join(f"{d['false_alerts_by_cause'].get(c, 0.0):>12.2f}" for d in dets.values())
        )
    lines += [
        "",
        "Leak detection (Kamstrup 24 h rule)",
        f"{'L/h':>6}{'n':>6}{'<=24h':>8}{'median h':>10}{'max h':>8}",
    ]
    for rate, v in report["leaks_by_rate_lph"].items():
        lines.append(
            f"{rate:>6}{v['n']:>6}{v['flagged_24h']:>8.2f}"
            f"{_h(v['median_delay_h']):>10}{_h(v['max_delay_h']):>8}"
        )
    lines.append(
        "leak false alerts per household-year: "
        f"{_h(report['leak_false_alerts_per_household_year'])}"
    )
    lines.append(
        f"use-while-away alerts (declared away, water used): {report['use_while_away_alerts']}"
    )
    if "hindsight_bound" in report:
        lines += ["", *format_bound(report["hindsight_bound"])]
    return "\n".join(lines)


def format_bound(rows: list[dict[str, float]]) -> list[str]:
    out = [
        "Hindsight bound: false alerts per household-year a detector that alerts on the silence",
        "since the last use must pay; 'hindsight' = thresholds per household, weekday and hour",
        "chosen knowing the year (a lower bound), 'cross-validated' = per day type and hour,",
        "chosen on alternate weeks and paid on the others (what learning from the past allows)",
        f"  {'target':<28}{'hindsight':>10}{'cross-validated':>17}",
    ]
    for r in rows:
        what = "median" if r["share"] == 0.5 else f"{r['share']:.0%} of onsets"
        out.append(
            f"  {what + ' within ' + format(r['within_h'], '.0f') + ' h':<28}"
            f"{'>= ' + format(r['min_false_alerts'], '.2f'):>10}"
            f"{r['cross_validated_false_alerts']:>17.2f}"
        )
    return out
