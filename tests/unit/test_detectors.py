"""Detectors on meter readings: device silence to technicians only; leaks, away use flagged."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from alerts import detectors, rhythm
from alerts.detectors import HouseholdData, detect
from alerts.model import Finding, Recovery

START = datetime(2025, 3, 3, tzinfo=UTC)


def _readings(
    days: float, step_min: int = 15, leak_lph: float = 0.0, stop_at: datetime | None = None
) -> pd.DataFrame:
    """A resident using 3-12 L in 60 % of the quarter-hours from 07:00 to 22:00 (+ a leak)."""
    rng = np.random.default_rng(3)
    times = pd.date_range(
        START, START + timedelta(days=days), freq=f"{step_min}min", inclusive="left"
    )
    idx, total = [], 1000.0
    prev = times[0]
    for t in times:
        minutes = t.hour * 60 + t.minute
        if (
            7 * 60 <= minutes < 22 * 60
            and rng.random() < 0.6 * step_min / 15
            and (stop_at is None or t < stop_at)
        ):
            total += rng.uniform(3, 12)
        total += leak_lph * (t - prev).total_seconds() / 3600
        prev = t
        idx.append(np.floor(total))
    return pd.DataFrame({"time": times, "index_l": idx})


def _kinds(out: list[Finding | Recovery]) -> dict[str, Finding]:
    return {f.kind: f for f in out if isinstance(f, Finding)}


def test_flat_index_frames_are_not_uses_and_index_steps_are() -> None:
    t = np.arange(0, 10 * 900, 900, dtype=np.int64)
    index = np.array([0, 0, 6, 6, 6, 7, 15, 15, 15, 15], dtype=np.float64)
    assert detectors.use_mask(t, index).tolist() == [
        False,
        False,
        True,
        False,
        False,
        False,
        True,
        False,
        False,
        False,
    ]


def test_a_tap_left_running_is_not_a_resident_using_water() -> None:
    t = np.arange(0, 12 * 900, 900, dtype=np.int64)
    index = np.concatenate([[0, 0, 0], 100 + 90 * np.arange(9)]).astype(np.float64)
    assert detectors.use_mask(t, index)[5:].sum() == 0


def test_water_gained_during_a_meter_outage_is_a_use_even_on_a_steady_flow() -> None:
    # hourly frames with a steady 13 L/h, then 11 h without frames and +144 L: extrapolating
    # the flow would explain it all away and make the outage look like a silent resident
    t = np.array([0, 3600, 7200, 10800, 10800 + 11 * 3600], dtype=np.int64)
    index = np.array([0, 13, 26, 39, 183], dtype=np.float64)
    assert detectors.use_mask(t, index).tolist() == [False, True, True, False, True]


def test_a_meter_outage_gives_a_technician_finding_and_no_family_finding() -> None:
    r = _readings(21)
    now = START + timedelta(days=21, hours=6)  # frames stopped at midnight
    data = HouseholdData("h1", "m1", r)
    model = rhythm.fit(
        r["time"][detectors.use_mask(detectors._seconds(r["time"]), r["index_l"].to_numpy())], now
    )
    out = detect(data, model, now + timedelta(hours=12))
    found = [f for f in out if isinstance(f, Finding)]
    assert [f.kind for f in found] == ["device_silent"]
    assert found[0].audience == "technician"


def test_a_stop_of_all_use_at_10_alerts_the_family_with_an_explanation() -> None:
    stop = START + timedelta(days=22, hours=10)  # a Tuesday
    r = _readings(23, stop_at=stop)
    t_s = detectors._seconds(r["time"])
    model = rhythm.fit(
        pd.to_datetime(t_s[detectors.use_mask(t_s, r["index_l"].to_numpy())], unit="s"),
        START + timedelta(days=22),
    )
    data = HouseholdData("h1", "m1", r)
    assert "inactivity" not in _kinds(detect(data, model, stop + timedelta(minutes=30)))
    alerted = None
    for minutes in range(30, 12 * 60, 15):
        f = _kinds(detect(data, model, stop + timedelta(minutes=minutes))).get("inactivity")
        if f is not None:
            alerted = minutes
            break
    assert alerted is not None and alerted <= 6 * 60
    assert f is not None and f.audience == "family" and "no water since" in f.explanation["en"]


def test_a_6_litre_an_hour_leak_is_flagged_within_24_hours() -> None:
    r = _readings(4, leak_lph=6.0)
    leak_start = START  # the leak runs from the start
    data = HouseholdData("h1", "m1", r)
    f = _kinds(detect(data, None, leak_start + timedelta(hours=24)))
    assert "continuous_flow" in f and f["continuous_flow"].audience == "household"
    no_leak = _kinds(
        detect(HouseholdData("h1", "m1", _readings(4)), None, START + timedelta(days=3))
    )
    assert "leak" not in no_leak and "continuous_flow" not in no_leak


def test_away_mode_suppresses_inactivity_and_flags_use_while_away() -> None:
    r = _readings(10)
    away = [(START + timedelta(days=5), START + timedelta(days=9))]
    out = detect(HouseholdData("h1", "m1", r, away=away), None, START + timedelta(days=8))
    kinds = _kinds(out)
    assert "inactivity" not in kinds
    assert kinds["use_while_away"].audience == "family"
    quiet = _readings(10, stop_at=START + timedelta(days=5))
    assert "inactivity" not in _kinds(
        detect(HouseholdData("h1", "m1", quiet, away=away), None, START + timedelta(days=8))
    )
    assert "inactivity" in _kinds(
        detect(HouseholdData("h1", "m1", quiet), None, START + timedelta(days=8))
    )


def test_meter_alarms_are_routed_to_the_right_people() -> None:
    alarms = [(START, "leak"), (START, "backflow"), (START, "tamper"), (START, "battery_low")]
    out = detect(
        HouseholdData("h1", "m1", _readings(1), alarms=alarms), None, START + timedelta(hours=12)
    )
    routes = {
        f.dedupe_key.split(":")[1]: f.audience
        for f in out
        if isinstance(f, Finding) and f.kind == "meter_alarm"
    }
    assert routes == {
        "leak": "household",
        "backflow": "household",
        "tamper": "technician",
        "battery_low": "technician",
    }


def test_use_resuming_gives_a_recovery() -> None:
    out = detect(HouseholdData("h1", "m1", _readings(3)), None, START + timedelta(days=2, hours=12))
    assert any(isinstance(x, Recovery) and x.reason == "water_resumed" for x in out)
    assert any(isinstance(x, Recovery) and x.reason == "device_back" for x in out)
