"""The hindsight bound: what any silence-since-last-use detector must pay in false alerts."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from alerts import bound, cli

DAY, H = 86400, 3600
MONDAY = 4 * DAY  # 1970-01-05 was a Monday


def _hourly_days(days: int) -> np.ndarray:
    """Uses on the hour from 07:00 to 22:00 (16 a day), then a 9 h night."""
    return np.array(
        [MONDAY + d * DAY + h * H for d in range(days) for h in range(7, 23)], dtype=np.int64
    )


def test_covering_the_bedtime_onsets_costs_one_false_alert_per_night() -> None:
    uses = _hourly_days(56)
    hh = bound.household_gaps(uses, [], [])
    years = 56 / 365
    # 15 of 16 uses are followed by a 1 h gap: 93.75 % of onsets are detectable at no cost
    assert bound.min_false_alerts([hh], years, 0.90, 8 * H) == 0.0
    # the rest are bedtime onsets, in 7 weekday bins of 1/112 each; every night is a 9 h
    # silence: the cheapest bin is Sunday's (7 nights, the last one has no morning), then
    # a fraction of a bin with 8 nights
    rest = 0.95 - 15 / 16 - 1 / 112
    assert bound.min_false_alerts([hh], years, 0.95, 8 * H) == pytest.approx(
        (7 + 8 * rest * 112) / years
    )
    # waiting 9 h is enough: no night is longer
    assert bound.min_false_alerts([hh], years, 0.95, 9 * H) == 0.0


def test_away_periods_outages_and_incidents_are_not_normal_silences() -> None:
    uses = _hourly_days(56)
    nights = [(MONDAY + d * DAY + 22 * H, MONDAY + (d + 1) * DAY + 7 * H) for d in range(56)]
    hh = bound.household_gaps(uses, nights, [])
    assert sum(len(g) for g in hh.gaps) == 56 * 15
    onset = int(uses[16 * 20])  # an incident on day 20: the two weeks after it are not normal
    hh = bound.household_gaps(uses, [], [onset])
    assert sum(len(g) for g in hh.gaps) == (16 * 56 - 1) - 16 * 14
    assert bound.min_false_alerts([hh], 56 / 365, 0.95, 9 * H) == 0.0


def test_the_cli_reports_the_bound_next_to_the_detectors(
    capsys: pytest.CaptureFixture[str],
) -> None:
    p = argparse.ArgumentParser(prog="foyer")
    cli.register(p.add_subparsers(required=True))
    argv = ["care", "evaluate", "--households", "3", "--days", "40", "--workers", "1"]
    args = p.parse_args([*argv, "--bound", "--json"])
    assert args.func(args, None) == 0
    rows = json.loads(capsys.readouterr().out)["hindsight_bound"]
    assert [(r["share"], r["within_h"]) for r in rows] == [(q, float(d)) for q, d in bound.TARGETS]
    assert all(r["min_false_alerts"] >= 0 for r in rows)
    # waiting longer never costs more
    p95 = [r["min_false_alerts"] for r in rows if r["share"] == 0.95]
    assert p95 == sorted(p95, reverse=True)
    args = p.parse_args([*argv, "--bound"])
    assert args.func(args, None) == 0
    assert "Hindsight bound" in capsys.readouterr().out


def test_incidents_are_weighted_where_the_resident_uses_water() -> None:
    uses = _hourly_days(56)
    bedtime_uses = uses[(uses % DAY) // H == 22]  # a resident who only fell at bedtime
    hh = bound.household_gaps(uses, [], [], onset_uses=bedtime_uses)
    assert hh.onset_share.sum() == pytest.approx(1.0)
    assert {int(b) % 24 for b in np.nonzero(hh.onset_share)[0]} == {22}
    # half of them within 8 h costs half of the 55 nights that are longer
    assert bound.min_false_alerts([hh], 56 / 365, 0.5, 8 * H) == pytest.approx(
        (7 + 8 + 8 + 4) / (56 / 365)  # the 3 cheapest weekday bins and half of a 4th
    )


def test_hours_quiet_only_by_luck_cost_false_alerts_once_chosen_on_other_weeks() -> None:
    # One long afternoon silence a week on Mondays, at 09:00 in even weeks and 14:00 in
    # odd ones. Knowing the year, the oracle skips exactly those two Monday hours and pays
    # nothing; choosing hours on alternate weeks keeps the hour that was quiet there and
    # pays for its silences on the other weeks.
    uses = _hourly_days(56)
    week = (uses - MONDAY) // (7 * DAY)
    monday = (uses - MONDAY) % (7 * DAY) < DAY
    hour = (uses % DAY) // H
    gone = monday & np.where(
        week % 2 == 0, (hour >= 10) & (hour <= 14), (hour >= 15) & (hour <= 19)
    )
    hh = bound.household_gaps(uses[~gone], [], [])
    years = 56 / 365
    assert bound.min_false_alerts([hh], years, 0.9, 3 * H) == 0.0
    assert bound.cross_validated_false_alerts([hh], years, 0.9, 3 * H) >= 4 / years


def test_a_regular_household_costs_nothing_either_way() -> None:
    hh = bound.household_gaps(_hourly_days(56), [], [])
    years = 56 / 365
    assert bound.cross_validated_false_alerts([hh], years, 0.9, 8 * H) == 0.0
    assert bound.cross_validated_false_alerts([hh], years, 0.99, 8 * H) > 0.0  # bedtimes
