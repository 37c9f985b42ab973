"""The scoring job's array path (issue 6) decides as the DataFrame path, and its setting."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from alerts import detectors, rhythm
from alerts.detectors import HouseholdData, Readings, detect, report_interval_s
from core.settings import SettingsError, load
from device_sim import senior


def _both(hh: senior.Household, now: pd.Timestamp) -> tuple[HouseholdData, HouseholdData]:
    """The same three days of readings, as a (shuffled) frame and as the job's arrays."""
    lo, hi = (
        int((now - senior.START).total_seconds()) - 3 * senior.DAY,
        int((now - senior.START).total_seconds()),
    )
    keep = (hh.frames >= lo) & (hh.frames <= hi)
    times, index = senior.to_time(hh.frames[keep]), hh.index_l[keep].astype(np.float64)
    away = [
        (senior.to_time(np.array([a]))[0].to_pydatetime(), None if b > hi else
         senior.to_time(np.array([b]))[0].to_pydatetime())
        for a, b in hh.away
    ]  # fmt: skip
    frame = pd.DataFrame({"time": times, "index_l": index}).sample(frac=1.0, random_state=1)
    t_s = np.asarray(times.as_unit("s").asi8, dtype=np.int64)
    hid = hh.household
    return (
        HouseholdData(hid, "m-1", frame, away=away),
        HouseholdData(hid, "m-1", Readings(t_s, index), away=away),
    )


def test_arrays_and_frames_give_the_same_findings_and_recoveries() -> None:
    seen: set[str] = set()
    for h in range(12):
        hh = senior.simulate_household(f"H{h:03d}", days=70, seed=5)
        model = rhythm.fit(senior.to_time(hh.uses), senior.START + pd.Timedelta(days=56))
        for step in range(0, 14 * 24, 5):
            now = senior.START + pd.Timedelta(days=56, hours=step, minutes=13)
            framed, arrays = _both(hh, now)
            want = detect(framed, model, now.to_pydatetime())
            assert detect(arrays, model, now.to_pydatetime()) == want
            seen |= {getattr(r, "kind", "recovery") for r in want}
    assert {"inactivity", "recovery"} <= seen  # the comparison covered alerts too


def test_unsorted_arrays_are_read_oldest_first() -> None:
    t_s = np.arange(0, 30 * 900, 900, dtype=np.int64) + 1_700_000_000
    index = np.arange(len(t_s), dtype=np.float64) * 10
    now = pd.Timestamp(int(t_s[-1]) + 60, unit="s").to_pydatetime()
    order = np.random.default_rng(2).permutation(len(t_s))
    ordered = detect(HouseholdData("h", "m", Readings(t_s, index)), None, now)
    shuffled = detect(HouseholdData("h", "m", Readings(t_s[order], index[order])), None, now)
    assert shuffled == ordered


@pytest.mark.parametrize("n", [0, 1, 2, 3, 4, 50, 97, 98, 200])
def test_report_interval_is_the_median_spacing_of_the_last_97(n: int) -> None:
    rng = np.random.default_rng(n)
    t_s = np.cumsum(rng.integers(1, 5000, size=n)).astype(np.int64)
    expected = 3600 if n < 2 else int(np.median(np.diff(t_s[-97:])))
    assert report_interval_s(t_s) == expected
    assert detectors.report_interval_s(np.array([0, 900, 1800, 4500])) == 900


def test_care_score_workers_defaults_to_the_cores_and_reads_the_environment() -> None:
    assert load(env={}).care_score_workers >= 1
    assert load(env={"FOYER_CARE_SCORE_WORKERS": "3"}).care_score_workers == 3
    for bad in ("0", "-1", "two", "1.5"):
        with pytest.raises(SettingsError, match="care_score_workers"):
            load(env={"FOYER_CARE_SCORE_WORKERS": bad})
