"""Worked examples, to the cent, from the bundled tariffs (billing/tariffs).

Batzendorf 2013 is a real published grid; the others are illustrative grids of the
shapes French territories publish. Each test shows its arithmetic.
"""

from __future__ import annotations

import tomllib
from datetime import date, timedelta
from decimal import Decimal
from importlib import resources
from typing import Any

import pytest

from billing import rules, tariff
from billing.errors import BillingInputError
from billing.model import (
    Account,
    Bill,
    Deposit,
    Equipment,
    Lift,
    LineKind,
    Occupancy,
    Period,
    Tariff,
)
from tests.billing_fixtures import at

S1_2013 = Period.semester(2013, 1)  # 181 days
BIN_120 = Equipment("B1", "D1", 120, date(2010, 1, 1))


def lifts(bin_id: str, first: date, count: int, step_days: int = 7) -> tuple[Lift, ...]:
    return tuple(Lift(at(first + timedelta(days=i * step_days)), bin_id) for i in range(count))


def amounts(bill: Bill) -> list[Decimal]:
    return [line.total for line in bill.lines]


@pytest.fixture(scope="module")
def batzendorf() -> Tariff:
    return tariff.bundled("batzendorf-2013")


def test_batzendorf_full_semester_with_nine_lifts_is_85_20(batzendorf: Tariff) -> None:
    # 43.50 (household) + 16.50 (120 L bin) + 9 lifts x 2.80 = 25.20 -> 85.20
    account = Account(
        "H1", (Occupancy("D1", date(2012, 5, 1)),), (BIN_120,), lifts("B1", date(2013, 1, 7), 9)
    )
    bill = rules.compute(batzendorf, account, S1_2013)
    assert amounts(bill) == [Decimal("43.50"), Decimal("16.50"), Decimal("25.20")]
    assert bill.total == Decimal("85.20")
    assert bill.disposition == "issue"


def test_batzendorf_move_in_on_15_march_with_seven_lifts_is_55_41(
    batzendorf: Tariff,
) -> None:
    # 15 March to 30 June = 17 + 30 + 31 + 30 = 108 of 181 days
    # household 43.50 x 108/181 = 25.9558 -> 25.96
    # bin       16.50 x 108/181 =  9.8453 ->  9.85
    # minimum 6 x 108/181 = 3.58 -> 4 < 7 lifts: 7 x 2.80 = 19.60
    # total 25.96 + 9.85 + 19.60 = 55.41 (unrounded sum 55.4011 would give 55.40)
    account = Account(
        "H1", (Occupancy("D1", date(2013, 3, 15)),), (BIN_120,), lifts("B1", date(2013, 3, 18), 7)
    )
    bill = rules.compute(batzendorf, account, S1_2013)
    assert amounts(bill) == [Decimal("25.96"), Decimal("9.85"), Decimal("19.60")]
    assert bill.total == Decimal("55.41")
    assert [line.days for line in bill.lines] == [108, 108, 108]
    assert "43,50 € \u00d7 108/181 jours (du 15/03/2013 au 30/06/2013) = 25,96 €" in (
        bill.lines[0].explanation
    )


def test_batzendorf_minimum_of_six_lifts_is_billed_when_fewer_happen(
    batzendorf: Tariff,
) -> None:
    # 2 lifts < minimum 6: 43.50 + 16.50 + 6 x 2.80 = 16.80 -> 76.80
    account = Account(
        "H1", (Occupancy("D1", date(2012, 5, 1)),), (BIN_120,), lifts("B1", date(2013, 2, 4), 2)
    )
    bill = rules.compute(batzendorf, account, S1_2013)
    assert bill.lines[2].counted == 2
    assert bill.lines[2].quantity == 6
    assert bill.total == Decimal("76.80")


def test_batzendorf_minimum_is_per_semester_not_per_year(batzendorf: Tariff) -> None:
    # 10 lifts in S1, none in S2.
    # S1: 60.00 + 10 x 2.80 = 88.00; S2: 60.00 + minimum 6 x 2.80 = 76.80; year 164.80.
    # A yearly minimum of 12 would give 120.00 + 12 x 2.80 = 153.60: a different,
    # wrong bill, so the engine refuses a year for a semestrial grid.
    account = Account(
        "H1", (Occupancy("D1", date(2012, 5, 1)),), (BIN_120,), lifts("B1", date(2013, 1, 7), 10)
    )
    s1 = rules.compute(batzendorf, account, Period.semester(2013, 1))
    s2 = rules.compute(batzendorf, account, Period.semester(2013, 2))
    assert (s1.total, s2.total) == (Decimal("88.00"), Decimal("76.80"))
    with pytest.raises(BillingInputError, match="bills by semester"):
        rules.compute(batzendorf, account, Period.year(2013))


def test_batzendorf_bin_swap_splits_fixed_part_and_minimum_by_day(
    batzendorf: Tariff,
) -> None:
    # Old bin 1 Jan-31 Mar (90 days), new bin from 1 Apr (91 days), both 120 L.
    # bin fixed 16.50 x 90/181 = 8.2044 -> 8.20 and 16.50 x 91/181 = 8.2956 -> 8.30
    # old bin: 2 lifts, minimum 6 x 90/181 = 2.98 -> 3: 3 x 2.80 = 8.40
    # new bin: 5 lifts, minimum 6 x 91/181 = 3.02 -> 3: 5 x 2.80 = 14.00
    # total 43.50 + 8.20 + 8.30 + 8.40 + 14.00 = 82.40
    old = Equipment("OLD", "D1", 120, date(2010, 1, 1), date(2013, 3, 31))
    new = Equipment("NEW", "D1", 120, date(2013, 4, 1))
    account = Account(
        "H1",
        (Occupancy("D1", date(2012, 5, 1)),),
        (old, new),
        lifts("OLD", date(2013, 2, 4), 2) + lifts("NEW", date(2013, 4, 8), 5),
    )
    bill = rules.compute(batzendorf, account, S1_2013)
    by_kind = [(line.kind, line.bin_id, line.total) for line in bill.lines]
    assert by_kind == [
        (LineKind.HOUSEHOLD_FIXED, None, Decimal("43.50")),
        (LineKind.BIN_FIXED, "OLD", Decimal("8.20")),
        (LineKind.BIN_FIXED, "NEW", Decimal("8.30")),
        (LineKind.LIFTS, "OLD", Decimal("8.40")),
        (LineKind.LIFTS, "NEW", Decimal("14.00")),
    ]
    assert bill.total == Decimal("82.40")


# -- badge containers (illustrative, yearly, 2024 has 366 days) ------------------------


def test_badges_full_year_household_of_three_with_forty_openings() -> None:
    # size 3: 196.00; 40 openings - 26 included = 14 x 1.10 = 15.40; total 211.40
    t = tariff.bundled("illustrative-badges-2024")
    deposits = tuple(
        Deposit(at(date(2024, 1, 2) + timedelta(days=9 * i), 18), "BG1", "C1") for i in range(40)
    )
    account = Account("H1", (Occupancy("D1", date(2020, 1, 1)),), deposits=deposits, persons=3)
    bill = rules.compute(t, account, Period.year(2024))
    assert amounts(bill) == [Decimal("196.00"), Decimal("15.40")]
    assert bill.total == Decimal("211.40")


def test_badges_household_larger_than_the_grid_pays_the_largest_size() -> None:
    # 6 persons, grid up to "4" = 222.00; no openings: 222.00
    t = tariff.bundled("illustrative-badges-2024")
    account = Account("H1", (Occupancy("D1", date(2020, 1, 1)),), persons=6)
    assert rules.compute(t, account, Period.year(2024)).total == Decimal("222.00")


def test_badges_move_in_on_1_july_prorates_fixed_part_and_included_openings() -> None:
    # 1 July-31 Dec = 184 of 366 days; size 2: 164.00 x 184/366 = 82.4481 -> 82.45
    # included 26 x 184/366 = 13.07 -> 13 (count_rounding = down)
    # 21 reads, one a duplicate 30 s after another: 20 openings - 13 = 7 x 1.10 = 7.70
    # total 82.45 + 7.70 = 90.15
    t = tariff.bundled("illustrative-badges-2024")
    opened = [at(date(2024, 7, 1) + timedelta(days=9 * i), 18) for i in range(20)]
    deposits = [Deposit(when, "BG1", "C1") for when in opened]
    deposits.append(Deposit(opened[3] + timedelta(seconds=30), "BG1", "C1"))
    account = Account(
        "H1", (Occupancy("D1", date(2024, 7, 1)),), deposits=tuple(deposits), persons=2
    )
    bill = rules.compute(t, account, Period.year(2024))
    assert amounts(bill) == [Decimal("82.45"), Decimal("7.70")]
    assert bill.total == Decimal("90.15")
    assert [(e.kind, e.reason) for e in bill.excluded] == [("deposit", "duplicate")]


# -- weight, included lifts, VAT opted in (illustrative, yearly) ------------------------


def test_weight_grid_with_tare_included_lifts_and_vat_per_line() -> None:
    # 120 L bin, full year 2024, 15 lifts: 14 at 27.35 kg gross, one at 8.0 kg.
    # household 95.00, VAT 10 % 9.50; bin 30.00, VAT 3.00
    # lifts 15 - 12 included = 3 x 2.40 = 7.20, VAT 0.72
    # net 14 x (27.35 - 10) = 242.90 kg (8.0 kg is under the 10 kg tare: 0 kg)
    #   x 0.22 = 53.438 -> 53.44, VAT 5.344 -> 5.34
    # before VAT 185.64; VAT 18.56; total 204.20
    t = tariff.bundled("illustrative-weight-2024")
    weighed = tuple(
        Lift(at(date(2024, 1, 3) + timedelta(days=14 * i)), "B1", Decimal("27.35"))
        for i in range(14)
    )
    light = Lift(at(date(2024, 12, 20)), "B1", Decimal("8.0"))
    account = Account("H1", (Occupancy("D1", date(2020, 1, 1)),), (BIN_120,), (*weighed, light))
    bill = rules.compute(t, account, Period.year(2024))
    assert [(line.amount, line.vat) for line in bill.lines] == [
        (Decimal("95.00"), Decimal("9.50")),
        (Decimal("30.00"), Decimal("3.00")),
        (Decimal("7.20"), Decimal("0.72")),
        (Decimal("53.44"), Decimal("5.34")),
    ]
    assert bill.lines[3].quantity == Decimal("242.90")
    assert (bill.total_before_vat, bill.total_vat, bill.total) == (
        Decimal("185.64"),
        Decimal("18.56"),
        Decimal("204.20"),
    )
    assert "TVA 10 % = 5,34 €" in bill.lines[3].explanation


def test_weight_grid_second_home_uses_its_own_grid_and_lists_unweighed_lifts() -> None:
    # secondary: household 60.00 (VAT 6.00), bin 30.00 (VAT 3.00),
    # 8 lifts - 6 included = 2 x 2.40 = 4.80 (VAT 0.48), no weights: 0 kg.
    # total 94.80 + 9.48 = 104.28
    t = tariff.bundled("illustrative-weight-2024")
    account = Account(
        "H1",
        (Occupancy("D1", date(2020, 1, 1)),),
        (BIN_120,),
        lifts("B1", date(2024, 3, 1), 8, step_days=30),
        category="secondary",
    )
    bill = rules.compute(t, account, Period.year(2024))
    assert bill.total == Decimal("104.28")
    assert [e.reason for e in bill.excluded] == ["unweighed"] * 8


# -- collective housing (illustrative, semestrial, lifts in arrears) --------------------


def test_collective_building_bill_in_arrears_split_by_persons_adds_up() -> None:
    # Bill of S2 2024 (184 days, full): fixed 40.00 + 150.00 + 150.00 + 175.00 = 515.00
    # lifts of S1 2024 (in arrears): A 26 x 11.50 = 299.00; B 10 < minimum 13:
    # 13 x 11.50 = 149.50; C (770 L) 13 x 13.40 = 174.20. Total 1137.70.
    # Split by persons 1,2,3,4,2,1,3 (16): quotas 113770 x w / 16 cents =
    # 7110.625, 14221.25, 21331.875, 28442.5, ...; floors leave 4 cents, which go to
    # the largest remainders .875 (d3, d7) and .625 (d1, d6).
    t = tariff.bundled("illustrative-collective-2024")
    bins = (
        Equipment("A", "BLDG", 660, date(2020, 1, 1)),
        Equipment("B", "BLDG", 660, date(2020, 1, 1)),
        Equipment("C", "BLDG", 770, date(2020, 1, 1)),
    )
    events = (
        lifts("A", date(2024, 1, 2), 26)
        + lifts("B", date(2024, 1, 2), 10)
        + lifts("C", date(2024, 1, 3), 13, 14)
    )
    account = Account("SYNDIC", (Occupancy("BLDG", date(2019, 1, 1)),), bins, events)
    bill = rules.compute(t, account, Period.semester(2024, 2))
    assert bill.total == Decimal("1137.70")
    assert {line.period.label for line in bill.lines if line.kind == LineKind.LIFTS} == {"2024-S1"}
    persons = [("d1", 1), ("d2", 2), ("d3", 3), ("d4", 4), ("d5", 2), ("d6", 1), ("d7", 3)]
    shares = rules.split(bill, [(d, Decimal(p)) for d, p in persons])
    assert shares == [
        ("d1", Decimal("71.11")),
        ("d2", Decimal("142.21")),
        ("d3", Decimal("213.32")),
        ("d4", Decimal("284.42")),
        ("d5", Decimal("142.21")),
        ("d6", Decimal("71.11")),
        ("d7", Decimal("213.32")),
    ]
    assert sum(a for _, a in shares) == bill.total


def test_collective_bill_under_the_recovery_threshold_is_cancelled() -> None:
    # Manager from 25 Dec: 7 of 184 days: 40.00 x 7/184 = 1.5217 -> 1.52 < 15.00,
    # and this tariff cancels such bills (CGCT D1611-1). Bins: none in S1 for them.
    t = tariff.bundled("illustrative-collective-2024")
    account = Account("SYNDIC", (Occupancy("BLDG", date(2024, 12, 25)),))
    bill = rules.compute(t, account, Period.semester(2024, 2))
    assert bill.total == Decimal("1.52")
    assert bill.disposition == "cancel"
    assert bill.carried_forward == 0


def test_bill_under_the_threshold_is_carried_over_and_added_to_the_next() -> None:
    # Badges, 1 person moving in on 20 Dec 2024: 118.00 x 12/366 = 3.8689 -> 3.87,
    # included 26 x 12/366 = 0.85 -> 0; no opening. 3.87 < 15.00: carried over.
    # Next year, full year: 118.00 + 3.87 carried = 121.87.
    t = tariff.bundled("illustrative-badges-2024")
    account = Account("H1", (Occupancy("D1", date(2024, 12, 20)),), persons=1)
    first = rules.compute(t, account, Period.year(2024))
    assert (first.total, first.disposition) == (Decimal("3.87"), "carry_over")
    later = tariff.parse(
        {**_raw("illustrative-badges-2024"), "tariff": _head_2025()}, "badges-2025"
    )
    nxt = rules.compute(later, account, Period.year(2025), carried_over=first.carried_forward)
    assert nxt.total == Decimal("121.87")
    assert nxt.lines[-1].kind == LineKind.CARRIED_OVER


def _raw(name: str) -> dict[str, Any]:
    text = (resources.files("billing") / "tariffs" / f"{name}.toml").read_text("utf-8")
    return tomllib.loads(text)


def _head_2025() -> dict[str, Any]:
    head = dict(_raw("illustrative-badges-2024")["tariff"])
    head.update(effective_from=date(2025, 1, 1), effective_to=date(2025, 12, 31))
    return head
