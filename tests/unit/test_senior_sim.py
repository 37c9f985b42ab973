"""The single-senior simulation: deterministic, realistic enough, independent of the backend."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np

from device_sim import senior

BACKEND = ("core", "meters", "bins", "alerts", "billing")


def test_the_senior_simulation_imports_no_backend_package() -> None:
    tree = ast.parse(Path(senior.__file__).read_text())
    for node in ast.walk(tree):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        assert not any(n.split(".")[0] in BACKEND for n in names), names


def test_same_seed_same_household_and_other_seed_differs() -> None:
    a = senior.simulate_household("H1", 30, 7)
    b = senior.simulate_household("H1", 30, 7)
    c = senior.simulate_household("H1", 30, 8)
    assert (a.index_l == b.index_l).all() and (a.frames == b.frames).all()
    assert len(a.index_l) != len(c.index_l) or not (a.index_l == c.index_l).all()


def test_the_index_is_cumulative_whole_litres_with_frames_at_zero_flow() -> None:
    hh = senior.simulate_household("H2", 20, 1)
    assert (np.diff(hh.index_l) >= 0).all()
    assert (hh.index_l == np.floor(hh.index_l)).all()
    assert (
        np.diff(hh.index_l) == 0
    ).mean() > 0.3  # nights and outings: flat index, frames still sent
    assert hh.interval_s in (900, 3600)


def test_a_day_has_a_plausible_rhythm() -> None:
    hh = senior.simulate_household("H3", 60, 1)
    per_day = len(hh.uses) / 60
    assert 8 < per_day < 45
    hours = (hh.uses % senior.DAY) // senior.H
    assert (hours < 5).mean() < 0.1  # nights are mostly quiet


def test_incidents_stop_all_human_use() -> None:
    for i in range(10):
        hh = senior.simulate_household(f"H{i}", 120, 3)
        for onset, kind in hh.incidents:
            assert kind in ("silent", "tap_running")
            after = hh.uses[(hh.uses > onset) & (hh.uses < onset + senior.FOUND_AFTER_S)]
            assert len(after) == 0


def test_population_frames_have_the_documented_columns() -> None:
    readings, incidents = senior.simulate(3, 20, 1)
    assert list(readings.columns) == ["household", "time", "index_l"]
    assert list(incidents.columns) == ["household", "onset", "kind"]
