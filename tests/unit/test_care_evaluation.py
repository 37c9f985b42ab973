"""`foyer care evaluate`: the table, --json, the CSV path, and the metrics behind them."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

from alerts import cli, evaluation
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
