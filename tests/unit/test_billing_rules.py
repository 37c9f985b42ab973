"""The fee engine's rules: event hygiene, attribution by day, refusals, wording."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

import pytest

from billing import lines, rules, spans, tariff
from billing.errors import BillingInputError
from billing.explain import Words
from billing.model import (
    Account,
    Bill,
    Correction,
    CountRounding,
    Equipment,
    FeeLine,
    Grid,
    Lift,
    LineKind,
    Occupancy,
    Period,
    Tariff,
)
from tests.billing_fixtures import at

S1 = Period.semester(2013, 1)
BIN = Equipment("B1", "D1", 120, date(2010, 1, 1))
HOME = (Occupancy("D1", date(2012, 1, 1)),)


@pytest.fixture(scope="module")
def batz() -> Tariff:
    return tariff.bundled("batzendorf-2013")


def lift_line(bill: Bill) -> FeeLine:
    return next(line for line in bill.lines if line.kind == LineKind.LIFTS)


def bill_of(t: Tariff, *lifts: Lift, occupancy: tuple[Occupancy, ...] = HOME) -> Bill:
    return rules.compute(t, Account("H1", occupancy, (BIN,), tuple(lifts)), S1)


def test_unread_chip_and_refused_lifts_are_listed_not_billed(batz: Tariff) -> None:
    day = date(2013, 2, 1)
    good = [Lift(at(day + timedelta(days=7 * i)), "B1") for i in range(7)]
    unread = Lift(at(date(2013, 4, 1)), "B1", chip_read=False)
    refused = Lift(at(date(2013, 4, 8)), "B1", refused=True)
    bill = bill_of(batz, *good, unread, refused)
    assert lift_line(bill).counted == 7
    assert [(e.kind, e.reason) for e in bill.excluded] == [
        ("lift", "unread_chip"),
        ("lift", "refused"),
    ]


def test_reads_of_one_bin_inside_the_window_count_once_outside_twice(batz: Tariff) -> None:
    first = at(date(2013, 3, 4), 6, 0)
    reads = [
        Lift(first, "B1"),
        Lift(first + timedelta(seconds=20), "B1"),  # re-read while lifting
        Lift(first + timedelta(minutes=9, seconds=59), "B1"),  # still inside 10 min
        Lift(first + timedelta(minutes=10), "B1"),  # a second lift
    ]
    bill = bill_of(batz, *reads)
    assert lift_line(bill).counted == 2
    assert [e.reason for e in bill.excluded] == ["duplicate", "duplicate"]


def test_the_duplicate_window_is_a_tariff_setting(batz: Tariff) -> None:
    first = at(date(2013, 3, 4))
    reads = [Lift(first, "B1"), Lift(first + timedelta(minutes=2), "B1")]
    assert lift_line(bill_of(batz, *reads)).counted == 1
    short = replace(batz, duplicate_window=timedelta(seconds=60))
    assert lift_line(bill_of(short, *reads)).counted == 2


def test_a_duplicate_lends_its_weight_to_an_unweighed_first_read() -> None:
    t = tariff.bundled("illustrative-weight-2024")
    first = at(date(2024, 3, 4))
    reads = (Lift(first, "B1"), Lift(first + timedelta(seconds=5), "B1", Decimal("30")))
    account = Account("H1", HOME, (BIN,), reads)
    bill = rules.compute(t, account, Period.year(2024))
    weight = next(line for line in bill.lines if line.kind == LineKind.WEIGHT)
    assert weight.quantity == Decimal("20")  # 30 kg gross - 10 kg tare, counted once
    assert [e.reason for e in bill.excluded] == ["duplicate"]


def test_lifts_are_attributed_by_local_day_and_occupancy(batz: Tariff) -> None:
    before = Lift(at(date(2013, 3, 1)), "B1")  # previous occupant's
    mine = Lift(at(date(2013, 3, 20)), "B1")
    stranger = Lift(at(date(2013, 3, 21)), "X9")
    # 22:30 UTC on 30 June is 00:30 on 1 July in Paris: the next semester's lift
    next_semester = Lift(datetime(2013, 6, 30, 22, 30, tzinfo=UTC), "B1")
    moved_in = (Occupancy("D1", date(2013, 3, 15)),)
    bill = bill_of(batz, before, mine, stranger, next_semester, occupancy=moved_in)
    assert lift_line(bill).counted == 1
    assert sorted(e.reason for e in bill.excluded) == [
        "outside_occupancy",
        "outside_period",
        "unknown_bin",
    ]


def test_the_last_day_of_occupancy_is_billed(batz: Tariff) -> None:
    # moved out on 31 January: 31 of 181 days; 43.50 x 31/181 = 7.4503 -> 7.45
    left = (Occupancy("D1", date(2012, 1, 1), date(2013, 1, 31)),)
    bill = bill_of(batz, Lift(at(date(2013, 1, 31)), "B1"), occupancy=left)
    assert bill.lines[0].days == 31
    assert bill.lines[0].amount == Decimal("7.45")
    assert lift_line(bill).counted == 1


def test_two_occupancies_of_one_household_pay_one_household_part(batz: Tariff) -> None:
    # moved within the commune on 1 April, overlapping by one day: one fixed part
    occupancies = (
        Occupancy("D1", date(2012, 1, 1), date(2013, 4, 1)),
        Occupancy("D2", date(2013, 4, 1)),
    )
    fixed = lines.fixed_lines(batz, Account("H1", occupancies), S1, Words("fr"))
    assert [(line.kind, line.amount) for line in fixed] == [
        (LineKind.HOUSEHOLD_FIXED, Decimal("43.50"))
    ]


def test_a_bin_volume_missing_from_the_grid_is_refused_not_guessed(batz: Tariff) -> None:
    big = Equipment("B2", "D1", 240, date(2010, 1, 1))
    with pytest.raises(BillingInputError, match=r"no grid\.bin_fixed for a 240 L bin"):
        rules.compute(batz, Account("H1", HOME, (big,)), S1)


def test_a_period_outside_the_tariff_dates_is_refused(batz: Tariff) -> None:
    with pytest.raises(BillingInputError, match="not for 2014-S1"):
        rules.compute(batz, Account("H1", HOME), Period.semester(2014, 1))


def test_size_pricing_needs_the_number_of_persons() -> None:
    t = tariff.bundled("illustrative-badges-2024")
    with pytest.raises(BillingInputError, match="number of persons"):
        rules.compute(t, Account("H1", HOME), Period.year(2024))


def test_event_times_without_a_time_zone_are_refused(batz: Tariff) -> None:
    naive = Lift(datetime(2013, 3, 4, 6, 0), "B1")  # noqa: DTZ001  (the point of the test)
    with pytest.raises(BillingInputError, match="no time zone"):
        bill_of(batz, naive)


def test_in_arrears_the_previous_years_tariff_is_required() -> None:
    t = tariff.bundled("illustrative-collective-2024")
    with pytest.raises(BillingInputError, match="tariff of 2023-S2 is needed"):
        rules.compute(
            t, Account("S", (Occupancy("BLDG", date(2020, 1, 1)),)), Period.semester(2024, 1)
        )


def test_in_arrears_the_previous_tariff_prices_the_previous_semester() -> None:
    t = tariff.bundled("illustrative-collective-2024")
    old = replace(
        t,
        name="2023",
        effective_from=date(2023, 1, 1),
        effective_to=date(2023, 12, 31),
        grid=replace(t.grid, lift_price={660: Decimal("10.00")}),
    )
    bin_a = Equipment("A", "BLDG", 660, date(2020, 1, 1))
    events = tuple(Lift(at(date(2023, 7, 3) + timedelta(days=7 * i)), "A") for i in range(20))
    account = Account("S", (Occupancy("BLDG", date(2020, 1, 1)),), (bin_a,), events)
    bill = rules.compute(t, account, Period.semester(2024, 1), arrears_tariff=old)
    lifts = lift_line(bill)
    assert (lifts.period.label, lifts.counted, lifts.amount) == ("2023-S2", 20, Decimal("200.00"))


def test_a_correction_needs_an_operator_and_a_reason() -> None:
    with pytest.raises(BillingInputError, match="operator and a reason"):
        Correction(Decimal("-5"), "alice", "  ")
    with pytest.raises(BillingInputError):
        Correction(Decimal("-5"), "", "bin stolen in March")


def test_a_correction_is_a_line_that_names_its_operator_and_reason(batz: Tariff) -> None:
    fix = Correction(Decimal("-8.40"), "alice", "bin stolen, 3 lifts by another household")
    account = Account("H1", HOME, (BIN,), corrections=(fix,))
    bill = rules.compute(batz, account, S1)
    line = bill.lines[-1]
    assert (line.kind, line.amount) == (LineKind.CORRECTION, Decimal("-8.40"))
    assert "alice" in line.explanation and "bin stolen" in line.explanation
    assert bill.total == Decimal("43.50") + Decimal("16.50") + Decimal("16.80") - Decimal("8.40")


def test_a_negative_total_is_a_credit_carried_over_never_cancelled() -> None:
    t = replace(tariff.bundled("illustrative-collective-2024"), below_threshold="cancel")
    refund = Correction(Decimal("-50"), "bob", "double billing of 2023")
    account = Account("S", (Occupancy("BLDG", date(2024, 12, 25)),), corrections=(refund,))
    bill = rules.compute(t, account, Period.semester(2024, 2))
    assert bill.total == Decimal("-48.48")
    assert bill.disposition == "carry_over"


def test_explanations_are_french_by_default_and_english_on_request(batz: Tariff) -> None:
    account = Account("H1", (Occupancy("D1", date(2013, 3, 15)),), (BIN,))
    fr = rules.compute(batz, account, S1)
    en = rules.compute(batz, account, S1, language="en")
    assert lift_line(fr).explanation.startswith("Levées du bac 120 L (B1), 1er semestre 2013")
    assert "minimum 6 par semestre" in lift_line(fr).explanation
    assert "soit 4 ; 4 facturée(s)" in lift_line(fr).explanation
    assert lift_line(en).explanation.startswith("Lifts of the 120 L bin (B1), first half of 2013")
    with pytest.raises(BillingInputError, match="language"):
        rules.compute(batz, account, S1, language="de")


@pytest.mark.parametrize(
    ("rounding", "expected"),
    [
        ("half_up", Fraction(4)),  # 6 x 108/181 = 3.580
        ("down", Fraction(3)),
        ("up", Fraction(4)),
        ("hundredths", Fraction(358, 100)),
    ],
)
def test_prorated_counts_round_as_the_tariff_says(
    batz: Tariff, rounding: CountRounding, expected: Fraction
) -> None:
    t = replace(batz, count_rounding=rounding)
    assert spans.scaled_count(6, 108, t, S1) == expected


def test_counts_are_not_prorated_when_the_tariff_says_so(batz: Tariff) -> None:
    # moved in on 15 March, no lift: the full minimum of 6 x 2.80 = 16.80
    t = replace(batz, prorate_counts=False)
    account = Account("H1", (Occupancy("D1", date(2013, 3, 15)),), (BIN,))
    assert lift_line(rules.compute(t, account, S1)).amount == Decimal("16.80")


def test_a_fractional_minimum_bills_hundredths_of_a_lift(batz: Tariff) -> None:
    # 6 x 108/181 = 3.58 lifts x 2.80 = 10.024 -> 10.02
    t = replace(batz, count_rounding="hundredths")
    account = Account("H1", (Occupancy("D1", date(2013, 3, 15)),), (BIN,))
    line = lift_line(rules.compute(t, account, S1))
    assert (line.quantity, line.amount) == (Decimal("3.58"), Decimal("10.02"))


def test_included_lifts_are_deducted_after_the_minimum() -> None:
    # max(counted 3, minimum 6) - 4 included = 2 billed
    grid = Grid(minimum_lifts=6, included_lifts=4, lift_price={120: Decimal("2.00")})
    t = replace(tariff.bundled("batzendorf-2013"), grid=grid)
    lifts = tuple(Lift(at(date(2013, 2, 1) + timedelta(days=7 * i)), "B1") for i in range(3))
    line = lift_line(rules.compute(t, Account("H1", HOME, (BIN,), lifts), S1))
    assert (line.counted, line.quantity, line.amount) == (3, Decimal(2), Decimal("4.00"))
