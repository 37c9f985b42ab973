"""Consumption stays continuous across meter swaps."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meters.continuity import Reading, Swap, continuous

H = 3_600 * 10**9


def test_consumption_across_a_swap_is_the_sum_of_both_meters_parts() -> None:
    swap = Swap("m-old", "m-new", at_ns=10 * H, old_final_index_l=412_345, new_initial_index_l=12)
    readings = [Reading("m-old", 9 * H, 412_300), Reading("m-new", 11 * H, 40)]
    series = continuous("m-old", [swap], readings)
    # 45 L on the old meter after its last reading + 28 L on the new one.
    assert series[1][1] - series[0][1] == 45 + 28


def test_readings_outside_an_installation_are_dropped() -> None:
    swap = Swap("a", "b", at_ns=10 * H, old_final_index_l=100, new_initial_index_l=0)
    readings = [Reading("a", 11 * H, 999), Reading("b", 9 * H, 5), Reading("a", 1 * H, 50)]
    assert continuous("a", [swap], readings) == [(1 * H, 50)]


def test_a_swap_chain_must_follow_the_installed_meter() -> None:
    with pytest.raises(ValueError, match="replaces x"):
        continuous("a", [Swap("x", "y", 1, 0, 0)], [])


@given(
    st.lists(st.integers(min_value=0, max_value=500), min_size=1, max_size=30),
    st.lists(st.integers(min_value=0, max_value=10**6), min_size=3, max_size=3),
)
def test_the_series_never_goes_backwards_when_each_meter_only_counts_up(
    steps: list[int], initials: list[int]
) -> None:
    """Three meters in turn; each starts at an arbitrary initial index."""
    readings, swaps, t = [], [], 0
    meters = ["m0", "m1", "m2"]
    index = initials[0]
    per_meter = max(1, len(steps) // 3)
    for n, step in enumerate(steps):
        k = min(n // per_meter, 2)
        if k > len(swaps):
            swaps.append(Swap(meters[k - 1], meters[k], t + 1, index, initials[k]))
            index = initials[k]
        t += H
        index += step
        readings.append(Reading(meters[k], t, index))
    series = continuous("m0", swaps, readings)
    assert len(series) == len(readings)
    assert all(b[1] >= a[1] for a, b in itertools.pairwise(series))
