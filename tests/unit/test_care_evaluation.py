"""`foyer care evaluate`: the table, --json, the CSV path, and the metrics behind them."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alerts import cli, evaluation, rhythm
from device_sim import senior


def _run(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="foyer")
    cli.register(p.add_subparsers(required=True))
    args = p.parse_args(argv)
    code: int = args.func(args, None)
    return code


def test_the_cli_on_a_small_population_prints_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["care", "evaluate", "--households", "3", "--days", "40", "--workers", "1"]) == 0
    out = capsys.readouterr().out
    for word in (
        "rhythm",
        "fixed 8 h",
        "fixed 12 h",
        "fixed 24 h",
        "rec12h",
        "by cause",
        "Leak detection",
    ):
        assert word in out


def test_json_output_parses_with_the_metrics(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        _run(["care", "evaluate", "--households", "3", "--days", "40", "--workers", "1", "--json"])
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert set(report["detectors"]) == {"rhythm", "fixed 8 h", "fixed 12 h", "fixed 24 h"}
    assert report["detectors"]["rhythm"]["family_alerts_from_device_silence"] == 0


def test_the_csv_path_evaluates_a_territory_history(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    readings, incidents = senior.simulate(2, 40, 5)
    readings.to_csv(tmp_path / "r.csv", index=False)
    incidents[["household", "onset"]].to_csv(tmp_path / "i.csv", index=False)
    argv = [
        "care",
        "evaluate",
        "--readings",
        str(tmp_path / "r.csv"),
        "--incidents",
        str(tmp_path / "i.csv"),
    ]
    assert _run([*argv, "--json", "--workers", "1"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["households"] == 2 and report["incidents"] == len(incidents)


def test_a_bad_csv_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "r.csv").write_text("household,when\nH,2025-01-01\n")
    (tmp_path / "i.csv").write_text("household,onset\n")
    assert (
        _run(
            [
                "care",
                "evaluate",
                "--readings",
                str(tmp_path / "r.csv"),
                "--incidents",
                str(tmp_path / "i.csv"),
            ]
        )
        == 2
    )
    assert "missing column" in capsys.readouterr().err


def test_an_incident_is_detected_and_a_fixed_rule_fires_after_its_hours() -> None:
    day, h = evaluation.DAY, evaluation.H
    t = np.arange(0, 30 * day, 900, dtype=np.int64) + 1_700_006_400 - 1_700_006_400 % day
    hours = (t % day) // h
    onset = int(t[0] + 25 * day + 10 * h)
    use = (
        (hours >= 7) & (hours < 22) & (np.random.default_rng(2).random(len(t)) < 0.6) & (t <= onset)
    )
    index = np.floor(np.cumsum(np.where(use, np.random.default_rng(3).uniform(3, 12, len(t)), 0.0)))
    res = evaluation.replay_household(t, index, evaluation.Truth(incidents=[(onset, "silent")]))
    delay = res.detectors["rhythm"].delays[0][1]
    assert delay is not None and delay <= 6 * h
    assert res.detectors["fixed 8 h"].delays[0][1] == 8 * h
    assert res.detectors["rhythm"].false_causes == []


def test_the_replay_thresholds_match_a_five_minute_loop_of_assess() -> None:
    """The replay's shortcut (first crossing from per-day thresholds) equals the live path."""
    day, h = evaluation.DAY, evaluation.H
    rng = np.random.default_rng(7)
    d0 = 20_100  # a Monday (unix days)
    uses = []
    for d in range(d0, d0 + 40):
        wake = d * day + int((7 + rng.normal(0, 0.4)) * h)
        bed = d * day + int((22 + rng.normal(0, 0.4)) * h)
        t = wake
        while t < bed:
            uses.append(t)
            t += int(rng.uniform(10, 100) * 60)
        uses.append(bed)
    t_s = np.asarray(uses, dtype=np.int64)
    d = d0 + 35
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    crossing_starts = 0
    for start_h in (3.5, 8.25, 10.0, 14.6, 19.0, 21.2):
        s = d * day + int(start_h * h)
        before = t_s[t_s < s]
        rule = evaluation._Rhythm(np.append(before, s), [], d, d)
        model = rhythm.fit(
            pd.to_datetime(np.append(before, s), unit="s"), epoch + timedelta(seconds=d * day)
        )
        threshold = rule(s, d)
        last = epoch + timedelta(seconds=s)
        for now_s in range(s, (d + 1) * day, evaluation.TICK_S):
            now = epoch + timedelta(seconds=now_s)
            crossed = rhythm.assess(model, last, now, away=False)[1]
            assert crossed == (now_s - s >= threshold), (start_h, (now_s - s) / h)
        crossing_starts += s + threshold < (d + 1) * day
    assert crossing_starts >= 4  # the comparison covers real crossings, not only silences


def test_an_alert_on_the_first_frame_after_an_outage_is_blamed_on_the_residents_silence() -> None:
    # Hourly frames; the meter sends nothing from 08:00 to 17:00 while the resident is on
    # an undeclared day trip (no water 07:47-18:18). The alert raised at 17:05, on the
    # frame back whose index has not moved, is a false alert of the trip, not of the device.
    day = 20 * evaluation.DAY
    frames = np.array([day + h * evaluation.H for h in range(24) if not 8 < h < 17], dtype=np.int64)
    truth = evaluation.Truth(periods=[(day + 7 * 3600 + 47 * 60, day + 18 * 3600, "outing")])
    after = (day + 7 * 3600 + 47 * 60, day + 17 * 3600 + 300)
    during = (day + 7 * 3600 + 47 * 60, day + 14 * 3600)  # no frame for 6 h: the device's
    res = evaluation._score([after], truth, frames, 2 * 3600)
    assert (res.false_causes, res.silent_family_alerts) == (["outing"], 0)
    res = evaluation._score([during], truth, frames, 2 * 3600)
    assert (res.false_causes, res.silent_family_alerts) == (["device_silence"], 1)
