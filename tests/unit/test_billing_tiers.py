"""Tiered prices and per-stream grids (issue 5: "tiered prices and second-home,
professional and yellow-bin grids exist too"). Worked examples show their arithmetic;
hypothesis checks that tiers split the billed quantity and never make a bill cheaper
for more use; tariff errors name the key."""

# ruff: noqa: RUF001  (the multiplication sign of a printed bill is meant)
from __future__ import annotations

import tomllib
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing import money, rules, tariff
from billing.errors import BillingInputError, TariffError
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

PARIS = ZoneInfo("Europe/Paris")
S1_2013 = Period.semester(2013, 1)  # 181 days
Y2024 = Period.year(2024)  # 366 days

HEAD = """
[tariff]
territory = "t"
name = "Tiers"
source = "illustrative"
illustrative = true
effective_from = 2013-01-01
effective_to = 2013-12-31
period = "semester"
"""

TIERED_LIFTS = (
    HEAD
    + """
[grid]
household_fixed = "40.00"
bin_fixed = { "120" = "20.00" }
lift_tiers = { "120" = [
    { upto = 12, price = "2.50" }, { upto = 24, price = "3.50" }, { price = "5.00" },
] }
"""
)

STREAMS = (
    HEAD
    + """
[grid]
household_fixed = "43.50"
bin_fixed = { "120" = "20.00" }
minimum_lifts = 6
lift_price = { "120" = "2.80" }

[streams.recyclables]
bin_fixed = { "240" = "6.00" }
included_lifts = 4
lift_price = { "240" = "1.00" }
"""
)


def parse(text: str) -> Tariff:
    return tariff.parse(tomllib.loads(text), "t.toml")


def at(day: date, hour: int = 6) -> datetime:
    return datetime.combine(day, time(hour), tzinfo=PARIS)


def lifts(
    bin_id: str, first: date, count: int, step_days: int = 5, kg: str | None = None
) -> tuple[Lift, ...]:
    weight = Decimal(kg) if kg is not None else None
    return tuple(
        Lift(at(first + timedelta(days=i * step_days)), bin_id, weight) for i in range(count)
    )


def amounts(bill: Bill) -> list[Decimal]:
    return [line.amount for line in bill.lines]


def bin_120(bin_id: str = "B1", stream: str = "residual") -> Equipment:
    return Equipment(bin_id, "D1", 120, date(2010, 1, 1), stream=stream)


# ---- tiered lifts -----------------------------------------------------------------


def test_thirty_lifts_over_a_full_semester_are_billed_tier_by_tier() -> None:
    # 40.00 (household) + 20.00 (bin)
    # lifts 1-12:  12 x 2.50 = 30.00
    # lifts 13-24: 12 x 3.50 = 42.00
    # beyond 24:    6 x 5.00 = 30.00
    # total 40.00 + 20.00 + 30.00 + 42.00 + 30.00 = 162.00
    account = Account(
        "H1", (Occupancy("D1", date(2012, 5, 1)),), (bin_120(),), lifts("B1", date(2013, 1, 2), 30)
    )
    bill = rules.compute(parse(TIERED_LIFTS), account, S1_2013)
    assert amounts(bill) == [Decimal(a) for a in ("40.00", "20.00", "30.00", "42.00", "30.00")]
    assert bill.total == Decimal("162.00")
    tiers = [line for line in bill.lines if line.kind == LineKind.LIFTS]
    assert [(t.quantity, t.unit_price) for t in tiers] == [
        (Decimal(12), Decimal("2.50")),
        (Decimal(12), Decimal("3.50")),
        (Decimal(6), Decimal("5.00")),
    ]
    assert tiers[0].explanation.startswith("Levées du bac 120 L (B1), 1er semestre 2013 : 30 levée")
    assert "1re à 12e levée : 12 × 2,50 € = 30,00 €" in tiers[0].explanation
    assert tiers[1].explanation.endswith("13e à 24e levée : 12 × 3,50 € = 42,00 €")
    assert tiers[2].explanation.endswith("au-delà de la 24e levée : 6 × 5,00 € = 30,00 €")


def test_tier_bounds_are_prorated_like_minimum_counts_on_a_move_in() -> None:
    # 15 March to 30 June = 108 of 181 days
    # household 40.00 x 108/181 = 23.867 -> 23.87; bin 20.00 x 108/181 = 11.934 -> 11.93
    # bounds 12 x 108/181 = 7.16 -> 7 and 24 x 108/181 = 14.32 -> 14 (half up)
    # 16 lifts: 7 x 2.50 = 17.50, 7 x 3.50 = 24.50, 2 x 5.00 = 10.00
    # total 23.87 + 11.93 + 17.50 + 24.50 + 10.00 = 87.80
    account = Account(
        "H1",
        (Occupancy("D1", date(2013, 3, 15)),),
        (bin_120(),),
        lifts("B1", date(2013, 3, 18), 16),
    )
    bill = rules.compute(parse(TIERED_LIFTS), account, S1_2013)
    assert amounts(bill) == [Decimal(a) for a in ("23.87", "11.93", "17.50", "24.50", "10.00")]
    assert bill.total == Decimal("87.80")
    assert bill.lines[3].explanation.endswith("8e à 14e levée : 7 × 3,50 € = 24,50 €")


def test_tiers_apply_to_the_lifts_left_after_the_included_ones() -> None:
    # 6 included: 20 counted -> 14 billed: 12 x 2.50 = 30.00, 2 x 3.50 = 7.00
    text = TIERED_LIFTS.replace('household_fixed = "40.00"', "included_lifts = 6")
    account = Account(
        "H1", (Occupancy("D1", date(2012, 5, 1)),), (bin_120(),), lifts("B1", date(2013, 1, 2), 20)
    )
    bill = rules.compute(parse(text), account, S1_2013, language="en")
    assert amounts(bill) == [Decimal("20.00"), Decimal("30.00"), Decimal("7.00")]
    assert "20 counted, 6 included in the fixed part; 14 billed" in bill.lines[1].explanation
    assert bill.lines[2].explanation.endswith("lifts 13 to 24: 2 × 3.50 EUR = 7.00 EUR")


def test_no_billed_lift_still_gets_one_line_that_explains_the_count() -> None:
    text = TIERED_LIFTS.replace('household_fixed = "40.00"', "included_lifts = 6")
    account = Account(
        "H1", (Occupancy("D1", date(2012, 5, 1)),), (bin_120(),), lifts("B1", date(2013, 1, 2), 4)
    )
    bill = rules.compute(parse(text), account, S1_2013)
    [line] = [line for line in bill.lines if line.kind == LineKind.LIFTS]
    assert (line.quantity, line.amount) == (Decimal(0), Decimal("0.00"))
    assert "4 levée(s) comptée(s), 6 incluse(s) dans la part fixe ; 0 facturée(s)" in (
        line.explanation
    )


# ---- tiered weights and openings --------------------------------------------------


KG = """
[tariff]
territory = "t"
name = "Kg"
source = "illustrative"
illustrative = true
effective_from = 2024-01-01
effective_to = 2024-12-31
period = "year"

[grid]
household_fixed = "100.00"
kg_tiers = [ { upto = 100, price = "0.18" }, { price = "0.25" } ]
"""


def test_kilograms_are_tiered_over_the_household_not_per_bin() -> None:
    # B1: 8 lifts x 10 kg = 80 kg, B2: 4 lifts x 12.5 kg = 50 kg -> 130 kg for the household
    # 0 to 100 kg: 100 x 0.18 = 18.00; beyond: 30 x 0.25 = 7.50
    # total 100.00 + 18.00 + 7.50 = 125.50 (per bin it would be 80 x 0.18 + 50 x 0.18 = 23.40)
    eqs = (bin_120("B1"), bin_120("B2"))
    account = Account(
        "H1",
        (Occupancy("D1", date(2020, 1, 1)),),
        eqs,
        lifts("B1", date(2024, 1, 3), 8, 14, "10") + lifts("B2", date(2024, 1, 4), 4, 14, "12.5"),
    )
    bill = rules.compute(parse(KG), account, Y2024)
    assert amounts(bill) == [Decimal("100.00"), Decimal("18.00"), Decimal("7.50")]
    assert bill.total == Decimal("125.50")
    assert bill.lines[1].explanation.endswith("de 0 à 100 kg : 100 kg × 0,18 €/kg = 18,00 €")
    assert "130 kg net" in bill.lines[1].explanation
    assert bill.lines[2].explanation.endswith("au-delà de 100 kg : 30 kg × 0,25 €/kg = 7,50 €")


def test_tiered_openings_count_after_the_included_ones() -> None:
    # 40 openings, 10 included -> 30 billed: 20 x 1.00 = 20.00, 10 x 2.00 = 20.00
    text = KG.replace(
        'kg_tiers = [ { upto = 100, price = "0.18" }, { price = "0.25" } ]',
        'included_openings = 10\nopening_tiers = [ { upto = 20, price = "1.00" }, '
        '{ price = "2.00" } ]',
    )
    deposits = tuple(
        Deposit(at(date(2024, 1, 1) + timedelta(days=7 * i), 18), "BG1", "C1") for i in range(40)
    )
    account = Account("H1", (Occupancy("D1", date(2020, 1, 1)),), deposits=deposits)
    bill = rules.compute(parse(text), account, Y2024)
    assert amounts(bill) == [Decimal("100.00"), Decimal("20.00"), Decimal("20.00")]
    assert bill.lines[2].explanation.endswith("au-delà de la 20e ouverture : 10 × 2,00 € = 20,00 €")


# ---- per-stream grids -------------------------------------------------------------


def yellow_account() -> Account:
    yellow = Equipment("Y1", "D1", 240, date(2010, 1, 1), stream="recyclables")
    return Account(
        "H1",
        (Occupancy("D1", date(2012, 5, 1)),),
        (bin_120(), yellow),
        lifts("B1", date(2013, 1, 7), 9, 7) + lifts("Y1", date(2013, 1, 8), 7, 14),
    )


def test_a_yellow_bin_is_billed_by_its_own_grid_next_to_the_residual_bin() -> None:
    # household 43.50; residual 120 L: 20.00 + 9 lifts x 2.80 = 25.20 (minimum 6 < 9)
    # yellow 240 L ([streams.recyclables]): 6.00 + (7 - 4 included) x 1.00 = 3.00
    # total 43.50 + 20.00 + 6.00 + 25.20 + 3.00 = 97.70
    bill = rules.compute(parse(STREAMS), yellow_account(), S1_2013)
    assert amounts(bill) == [Decimal(a) for a in ("43.50", "20.00", "6.00", "25.20", "3.00")]
    assert bill.total == Decimal("97.70")
    assert [line.bin_id for line in bill.lines] == [None, "B1", "Y1", "B1", "Y1"]
    assert "bac 240 L (Y1, recyclables)" in bill.lines[4].explanation
    assert bill.excluded == ()


def test_a_yellow_bin_is_not_billed_when_the_tariff_has_no_table_for_its_stream() -> None:
    # no [streams.recyclables]: 43.50 + 20.00 + 25.20 = 88.70; Y1's 7 lifts listed, not billed
    text = STREAMS.split("[streams.recyclables]")[0]
    bill = rules.compute(parse(text), yellow_account(), S1_2013)
    assert amounts(bill) == [Decimal("43.50"), Decimal("20.00"), Decimal("25.20")]
    assert bill.total == Decimal("88.70")
    assert [(e.ref, e.reason) for e in bill.excluded] == [("Y1", "stream_not_billed")] * 7


def test_a_stream_grid_does_not_borrow_the_residual_prices() -> None:
    # a 120 L yellow bin: [streams.recyclables] prices 240 L only; the residual 120 L
    # price is not used for it
    account = Account(
        "H1",
        (Occupancy("D1", date(2012, 5, 1)),),
        (bin_120("Y1", "recyclables"),),
        lifts("Y1", date(2013, 1, 8), 3),
    )
    with pytest.raises(BillingInputError, match=r"streams\.recyclables\.bin_fixed for a 120 L"):
        rules.compute(parse(STREAMS), account, S1_2013)


# ---- properties -------------------------------------------------------------------

TIERED = parse(TIERED_LIFTS.replace('household_fixed = "40.00"', "minimum_lifts = 6"))


def tier_lines(count: int, first: date) -> list[Any]:
    account = Account(
        "H1",
        (Occupancy("D1", first),),
        (bin_120(),),
        lifts("B1", max(first, date(2013, 1, 1)), count, 1),
    )
    bill = rules.compute(TIERED, account, S1_2013)
    return [line for line in bill.lines if line.kind == LineKind.LIFTS]


moves = st.integers(0, 180).map(lambda d: date(2013, 1, 1) + timedelta(days=d))


@given(st.integers(0, 60), moves)
def test_tier_lines_split_the_billed_lifts_and_each_is_rounded_alone(
    count: int, first: date
) -> None:
    days = (S1_2013.last_day - first).days + 1
    count = min(count, days)  # one lift a day at most
    found = tier_lines(count, first)
    minimum = Fraction(6 * days, 181) if days < 181 else Fraction(6)
    billed = max(count, int(minimum + Fraction(1, 2)))
    assert sum(line.quantity for line in found) == billed
    for line in found:
        assert line.amount == money.line_amount(line.unit_price, line.quantity)
    assert [line.unit_price for line in found] == sorted(line.unit_price for line in found)


@given(st.integers(0, 59), moves)
def test_one_more_lift_never_makes_the_tiered_amount_smaller(count: int, first: date) -> None:
    days = (S1_2013.last_day - first).days + 1
    count = min(count, days - 1) if days > 1 else 0
    before = sum(line.amount for line in tier_lines(count, first))
    after = sum(line.amount for line in tier_lines(count + 1, first))
    assert after >= before


# ---- tariff validation ------------------------------------------------------------


def grid(body: str) -> str:
    return HEAD + "\n[grid]\n" + body


@pytest.mark.parametrize(
    ("body", "key", "problem"),
    [
        (
            'lift_price = { "120" = "2.80" }\nlift_tiers = { "120" = [ { price = "2.80" } ] }',
            "grid.lift_tiers",
            "not both",
        ),
        (
            'lift_tiers = { "120" = [ { upto = 12, price = "2.50" }, '
            '{ upto = 10, price = "3.50" }, { price = "5.00" } ] }',
            'grid.lift_tiers."120"[2].upto',
            "above the previous",
        ),
        (
            'kg_tiers = [ { upto = 100, price = "0.18" }, { upto = 200, price = "0.25" } ]',
            "grid.kg_tiers[2].upto",
            "last tier",
        ),
        (
            'kg_tiers = [ { price = "0.18" }, { price = "0.25" } ]',
            "grid.kg_tiers[1].upto",
            "missing",
        ),
        (
            'opening_tiers = [ { upto = 10, price = 1.10 }, { price = "2" } ]',
            "grid.opening_tiers[1].price",
            "TOML float",
        ),
        ('kg_tiers = [ { from = 0, price = "0.18" } ]', "grid.kg_tiers[1].from", "unknown"),
        ("kg_tiers = []", "grid.kg_tiers", "at least one"),
        (
            'kg_tiers = [ { upto = 0, price = "0.18" }, { price = "1" } ]',
            "grid.kg_tiers[1].upto",
            "whole number > 0",
        ),
        ('kg_tiers = "0.18"', "grid.kg_tiers", "array"),
    ],
)
def test_tier_errors_name_the_key(body: str, key: str, problem: str) -> None:
    with pytest.raises(TariffError) as err:
        parse(grid(body))
    assert f"t.toml: {key}: " in str(err.value)
    assert problem in str(err.value)


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ('[streams.yellow]\nbin_fixed = { "240" = "6.00" }', "streams.yellow"),
        ('[streams.recyclables]\nhousehold_fixed = "6.00"', "streams.recyclables.household_fixed"),
        ('[streams.residual]\nbin_fixed = { "240" = "6.00" }', "streams.residual"),
        ('[streams.biowaste]\nlift_price = { "80" = 1.0 }', 'streams.biowaste.lift_price."80"'),
    ],
)
def test_stream_errors_name_the_key(extra: str, key: str) -> None:
    with pytest.raises(TariffError, match=f"t.toml: {key}: "):
        parse(grid('household_fixed = "1.00"\n') + extra)


def test_a_category_grid_giving_tiers_replaces_the_flat_price_it_inherits() -> None:
    text = grid(
        'lift_price = { "120" = "2.80" }\n\n[grids.secondary]\n'
        'lift_tiers = { "120" = [ { upto = 6, price = "3.00" }, { price = "4.00" } ] }'
    )
    t = parse(text)
    assert t.grid_for("secondary").lift_price == {}
    assert t.grid_for("primary").lift_tiers == {}
