"""Downsampled water use (meters/rollup.py): hours, Paris days, communes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.store.setup import Policy, major_version, retention_seconds, statements
from meters.rollup import (
    HOUR_NS,
    Bound,
    CommuneUse,
    Use,
    by_commune,
    daily,
    hourly_use,
    late_days,
    meter_hours,
    next_paris_day,
    paris_day_start,
)

H = HOUR_NS
M = 60 * 10**9
T0 = 1_767_225_600 * 10**9  # 2026-01-01T00:00Z, an hour boundary


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> int:
    return int(datetime(year, month, day, hour, minute, tzinfo=UTC).timestamp()) * 10**9


def test_an_hours_use_is_its_last_index_minus_the_previous_hours_last() -> None:
    points = [(T0 + 10 * M, 100), (T0 + 50 * M, 130), (T0 + H + 5 * M, 150), (T0 + H + 55 * M, 175)]
    assert hourly_use(points, baseline=90) == [(T0, 40), (T0 + H, 45)]


def test_the_first_hour_without_an_earlier_index_gets_no_point() -> None:
    assert hourly_use([(T0 + M, 100), (T0 + H + M, 110)], baseline=None) == [(T0 + H, 10)]


def test_a_backwards_index_counts_zero_and_use_resumes_from_the_new_index() -> None:
    points = [(T0, 1000), (T0 + H, 40), (T0 + 2 * H, 55)]
    assert hourly_use(points, baseline=990) == [(T0, 10), (T0 + H, 0), (T0 + 2 * H, 15)]


def test_water_of_a_silent_gap_goes_to_the_hour_the_meter_is_seen_again() -> None:
    # No reading for hours 1-3: no points there (not zeros), all 60 L at hour 4.
    points = [(T0, 100), (T0 + 4 * H + M, 160)]
    assert hourly_use(points, baseline=100) == [(T0, 0), (T0 + 4 * H, 60)]


def test_points_out_of_order_use_the_latest_reading_of_each_hour() -> None:
    points = [(T0 + 50 * M, 130), (T0 + 10 * M, 100)]
    assert hourly_use(points, baseline=120) == [(T0, 10)]


def test_paris_days_start_at_local_midnight_in_winter_and_summer() -> None:
    assert paris_day_start(utc(2026, 1, 15, 12)) == utc(2026, 1, 14, 23)
    assert paris_day_start(utc(2026, 7, 15, 12)) == utc(2026, 7, 14, 22)
    # 23:30 UTC on 14 July is already 15 July in Paris.
    assert paris_day_start(utc(2026, 7, 14, 22, 30)) == utc(2026, 7, 14, 22)


def _hours(first: int, count: int, litres: int = 1) -> list[Use]:
    return [Use("m", "Valence", first + i * H, litres) for i in range(count)]


def test_the_march_dst_day_has_23_hours_and_the_october_one_25() -> None:
    # 29 March 2026 starts at 23:00 UTC on the 28th; 30 March at 22:00 UTC on the 29th.
    march = daily(_hours(utc(2026, 3, 28, 23), 23 + 24))
    assert [(u.start_ns, u.litres) for u in march] == [
        (utc(2026, 3, 28, 23), 23),
        (utc(2026, 3, 29, 22), 24),
    ]
    # 25 October 2026 starts at 22:00 UTC on the 24th and lasts until 23:00 UTC on the 25th.
    october = daily(_hours(utc(2026, 10, 24, 22), 25 + 24))
    assert [(u.start_ns, u.litres) for u in october] == [
        (utc(2026, 10, 24, 22), 25),
        (utc(2026, 10, 25, 23), 24),
    ]


def test_communes_sum_their_meters_and_count_those_with_a_point() -> None:
    uses = [
        Use("a", "Valence", T0, 10),
        Use("b", "Valence", T0, 0),
        Use("c", "Romans", T0, 7),
        Use("a", "Valence", T0 + H, 5),
    ]
    assert by_commune(uses) == [
        CommuneUse("Romans", T0, 7, 1),
        CommuneUse("Valence", T0, 10, 2),
        CommuneUse("Valence", T0 + H, 5, 1),
    ]


def test_hours_take_the_commune_of_the_binding_in_force_and_unbound_hours_are_left_out() -> None:
    bindings = [
        Bound("m", "Valence", from_ns=T0 + 30 * M, to_ns=T0 + 2 * H),
        Bound("m", "Romans", from_ns=T0 + 3 * H),
    ]
    points = [(T0 + 40 * M, 10), (T0 + H, 20), (T0 + 2 * H, 30), (T0 + 3 * H, 45)]
    assert meter_hours(bindings, points, baseline=0) == [
        Use("m", "Valence", T0, 10),
        Use("m", "Valence", T0 + H, 10),
        Use("m", "Romans", T0 + 3 * H, 15),
    ]


@given(
    st.integers(0, 10**9),
    st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 5 * H)), min_size=1, max_size=60),
)
def test_with_a_monotone_index_the_hours_sum_to_last_minus_first(
    first: int, steps: list[tuple[int, int]]
) -> None:
    points, t, index = [(T0, first)], T0, first
    for litres, delay in steps:
        t, index = t + delay + 1, index + litres
        points.append((t, index))
    total = sum(litres for _, litres in hourly_use(points, baseline=None))
    first_hour_last = max((p for p in points if p[0] < T0 + H), key=lambda p: p[0])[1]
    assert total == index - first_hour_last
    days = daily(Use("m", "c", h, litres) for h, litres in hourly_use(points, baseline=first))
    assert sum(u.litres for u in days) == index - first


@given(st.lists(st.tuples(st.integers(0, 48 * H), st.integers(0, 10**6)), max_size=40))
def test_use_is_never_negative_whatever_the_indexes(points: list[tuple[int, int]]) -> None:
    assert all(litres >= 0 for _, litres in hourly_use(points, baseline=500))


# ---- `foyer store setup`'s pure parts (core/store/setup.py) -----------------------------


def test_retention_accepts_influxql_and_go_durations_and_inf_means_forever() -> None:
    assert retention_seconds("730d") == 730 * 86_400
    assert retention_seconds("17520h0m0s") == 730 * 86_400  # as SHOW RETENTION POLICIES says
    assert retention_seconds("INF") == retention_seconds("0s") == 0
    for bad in ("730", "30m", "1 d", "forever"):
        with pytest.raises(ValueError):
            retention_seconds(bad)


def test_setup_only_creates_or_alters_what_differs() -> None:
    want = [Policy("raw", 86_400 * 730, default=True), Policy("rollup", 0, default=False)]
    assert statements("foyer", {p.name: p for p in want}, want) == []
    have = {"raw": Policy("raw", 86_400 * 730, default=False)}
    assert statements("foyer", have, want) == [
        'ALTER RETENTION POLICY "raw" ON "foyer" DURATION 730d DEFAULT',
        'CREATE RETENTION POLICY "rollup" ON "foyer" DURATION INF REPLICATION 1',
    ]


def test_the_server_version_header_tells_influxdb_1_from_2_and_3() -> None:
    assert major_version("1.6.7~rc0") == 1
    assert major_version("v2.7.10") == 2
    assert major_version("3.0.1") == 3
    assert major_version(None) is None


def test_a_reading_before_the_days_the_next_run_covers_is_late() -> None:
    # Paris is UTC+1 in January: 10:20 local; the run covers from 04:00, i.e. all of Jan 15
    now = utc(2026, 1, 15, 9, 20)
    today, yesterday = paris_day_start(now), paris_day_start(utc(2026, 1, 14, 12))
    assert late_days([utc(2026, 1, 15, 0, 30), now], now, recent_hours=6) == set()
    assert late_days([utc(2026, 1, 14, 22, 59), utc(2026, 1, 14, 8)], now, 6) == {yesterday}
    assert late_days([utc(2026, 1, 14, 23, 0)], now, 6) == set()  # 00:00 Paris, Jan 15
    assert today == utc(2026, 1, 14, 23)


def test_early_in_the_morning_yesterday_is_still_covered_and_the_day_before_is_late() -> None:
    now = utc(2026, 1, 15, 2, 10)  # 03:10 Paris: the last 6 closed hours reach into Jan 14
    assert late_days([utc(2026, 1, 14, 8)], now, 6) == set()
    assert late_days([utc(2026, 1, 13, 8)], now, 6) == {paris_day_start(utc(2026, 1, 13, 8))}


@pytest.mark.parametrize(
    ("day", "hours"),
    [((2026, 3, 29), 23), ((2026, 10, 25), 25), ((2026, 6, 1), 24)],
    ids=["spring-forward", "fall-back", "summer"],
)
def test_the_next_paris_day_follows_a_day_of_23_24_or_25_hours(
    day: tuple[int, int, int], hours: int
) -> None:
    start = paris_day_start(utc(*day, 12))
    assert next_paris_day(start) - start == hours * H
