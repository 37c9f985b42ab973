"""Fee line builders: fixed parts, lifts, weights, openings, corrections, VAT.

Each builds one explained ``FeeLine`` (billing/explain.py) from exact amounts rounded
once (billing/money.py)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from decimal import Decimal
from fractions import Fraction
from zoneinfo import ZoneInfo

from billing import hygiene, money
from billing.errors import BillingInputError
from billing.explain import Words
from billing.model import (
    Account,
    Deposit,
    Equipment,
    Exclusion,
    FeeLine,
    Grid,
    Lift,
    LineKind,
    Period,
    Tariff,
)
from billing.spans import BinSpan, Span, bin_spans, household_spans, local_day, scaled_count

# -- fixed parts ---------------------------------------------------------------------


def fixed_lines(tariff: Tariff, account: Account, period: Period, words: Words) -> list[FeeLine]:
    grid = tariff.grid_for(account.category)
    lines: list[FeeLine] = []
    for span in household_spans(account, period):
        if grid.household_fixed:
            lines.append(
                _fixed(LineKind.HOUSEHOLD_FIXED, grid.household_fixed, span, period, words)
            )
        if grid.size_fixed:
            price = _size_price(grid, account, tariff)
            lines.append(
                _fixed(LineKind.SIZE_FIXED, price, span, period, words, persons=account.persons)
            )
    for bs in bin_spans(account, period) if grid.bin_fixed else []:
        price = _by_volume(grid.bin_fixed, bs.equipment.volume_l, "bin_fixed", tariff)
        lines.append(_fixed(LineKind.BIN_FIXED, price, bs.span, period, words, bs.equipment))
    return [_taxed(line, tariff.vat_rate, words) for line in lines]


def _fixed(
    kind: LineKind,
    price: Decimal,
    span: Span,
    period: Period,
    words: Words,
    equipment: Equipment | None = None,
    persons: int | None = None,
) -> FeeLine:
    amount = money.prorated(price, span.days, period.days)
    text = words.say(
        kind.value,
        period=words.period(period),
        price=words.unit_price(price),
        prorata=words.prorata(span.days, period, span.first, span.last),
        amount=words.money(amount),
        volume=equipment.volume_l if equipment else "",
        bin=equipment.bin_id if equipment else "",
        persons=persons,
    )
    return FeeLine(
        kind=kind,
        period=period,
        quantity=Decimal(span.days),
        unit_price=price,
        amount=amount,
        explanation=text,
        bin_id=equipment.bin_id if equipment else None,
        volume_l=equipment.volume_l if equipment else None,
        days=span.days,
        period_days=period.days,
    )


def _size_price(grid: Grid, account: Account, tariff: Tariff) -> Decimal:
    if account.persons is None or account.persons < 1:
        raise BillingInputError(
            f"{tariff.name}: bills by household size; household {account.household_id} "
            "has no number of persons"
        )
    sizes = sorted(grid.size_fixed)
    fitting = [s for s in sizes if s <= account.persons]
    return grid.size_fixed[fitting[-1] if fitting else sizes[0]]


def _by_volume(prices: Mapping[int, Decimal], volume: int, key: str, t: Tariff) -> Decimal:
    if volume not in prices:
        known = ", ".join(f"{v} L" for v in sorted(prices))
        raise BillingInputError(f"{t.name}: no grid.{key} for a {volume} L bin (known: {known})")
    return prices[volume]


def _as_decimal(count: Fraction) -> Decimal:
    """A billed count (whole, or to the hundredth by the tariff's rounding) exactly."""
    return Decimal(count.numerator) / Decimal(count.denominator)


# -- variable parts ------------------------------------------------------------------


def variable_lines(
    tariff: Tariff, account: Account, period: Period, words: Words
) -> tuple[list[FeeLine], list[Exclusion]]:
    """Lift, weight and opening lines of ``period``, and the events left out."""
    grid = tariff.grid_for(account.category)
    zone = ZoneInfo(tariff.timezone)
    lifts, excluded = hygiene.screen_lifts(account.lifts, tariff.duplicate_window)
    spans = bin_spans(account, period)
    by_span, unplaced = _place_lifts(lifts, spans, account, period, zone)
    excluded += unplaced
    lines: list[FeeLine] = []
    for bs in spans:
        mine = by_span.get(bs, [])
        if grid.lift_price:
            lines.append(_lift_line(tariff, grid, bs, len(mine), period, words))
        if grid.kg_price is not None:
            line, unweighed = _weight_line(tariff, grid, bs, mine, period, words)
            lines.append(line)
            excluded += unweighed
    if grid.opening_price is not None:
        line, left_out = _openings_line(tariff, grid, account, period, words, zone)
        lines.append(line)
        excluded += left_out
    return [_taxed(line, tariff.vat_rate, words) for line in lines], excluded


def _place_lifts(
    lifts: Iterable[Lift],
    spans: list[BinSpan],
    account: Account,
    period: Period,
    zone: ZoneInfo,
) -> tuple[dict[BinSpan, list[Lift]], list[Exclusion]]:
    """Each lift to the bin span it happened in; the others with their reason."""
    placed: dict[BinSpan, list[Lift]] = {}
    left_out: list[Exclusion] = []
    known = {eq.bin_id for eq in account.equipment}
    for lift in lifts:
        day = local_day(lift.at, zone)
        home = next(
            (
                bs
                for bs in spans
                if bs.equipment.bin_id == lift.bin_id and bs.span.first <= day <= bs.span.last
            ),
            None,
        )
        if home is not None:
            placed.setdefault(home, []).append(lift)
            continue
        reason = (
            "unknown_bin"
            if lift.bin_id not in known
            else "outside_period"
            if not period.contains(day)
            else "outside_occupancy"
        )
        left_out.append(Exclusion("lift", lift.bin_id, lift.at, reason))
    return placed, left_out


def _lift_line(
    tariff: Tariff, grid: Grid, bs: BinSpan, counted: int, period: Period, words: Words
) -> FeeLine:
    eq, days = bs.equipment, bs.span.days
    price = _by_volume(grid.lift_price, eq.volume_l, "lift_price", tariff)
    minimum = scaled_count(grid.minimum_lifts, days, tariff, period)
    included = scaled_count(grid.included_lifts, days, tariff, period)
    billed = max(Fraction(counted), minimum) - included
    billed = max(billed, Fraction(0))
    amount = money.line_amount(price, billed)
    text = words.say(
        "lifts",
        volume=eq.volume_l,
        bin=eq.bin_id,
        period=words.period(period),
        counted=counted,
        minimum=_minimum_words(grid.minimum_lifts, minimum, bs, tariff, period, words),
        included=words.say("included", count=words.number(included)) if included else "",
        billed=words.number(billed),
        price=words.unit_price(price),
        amount=words.money(amount),
    )
    return FeeLine(
        kind=LineKind.LIFTS,
        period=period,
        quantity=_as_decimal(billed),
        unit_price=price,
        amount=amount,
        explanation=text,
        bin_id=eq.bin_id,
        volume_l=eq.volume_l,
        days=days,
        period_days=period.days,
        counted=counted,
    )


def _minimum_words(
    full: int, scaled: Fraction, bs: BinSpan, tariff: Tariff, period: Period, words: Words
) -> str:
    if not full:
        return ""
    per = words.say(tariff.period)
    if scaled == full:
        return words.say("minimum", count=full, per=per)
    prorata = words.prorata(bs.span.days, period, bs.span.first, bs.span.last)
    return words.say(
        "minimum_prorated", full=full, per=per, count=words.number(scaled), prorata=prorata
    )


def _weight_line(
    tariff: Tariff, grid: Grid, bs: BinSpan, lifts: list[Lift], period: Period, words: Words
) -> tuple[FeeLine, list[Exclusion]]:
    """Net kg = gross - tare per weighed lift, never below zero (a bin is not paid for
    weighing less than its tare); lifts without a weight are listed, not guessed."""
    eq = bs.equipment
    tare = _by_volume(grid.tare_kg, eq.volume_l, "tare_kg", tariff) if grid.tare_kg else Decimal(0)
    weights = [lift.weight_kg for lift in lifts if lift.weight_kg is not None]
    unweighed = [
        Exclusion("weight", lift.bin_id, lift.at, "unweighed")
        for lift in lifts
        if lift.weight_kg is None
    ]
    gross = sum(weights, Decimal(0))
    net = sum((max(w - tare, Decimal(0)) for w in weights), Decimal(0))
    price = grid.kg_price or Decimal(0)
    amount = money.line_amount(price, net)
    text = words.say(
        "weight",
        volume=eq.volume_l,
        bin=eq.bin_id,
        period=words.period(period),
        lifts=len(weights),
        gross=words.number(gross),
        tare=words.number(tare),
        net=words.number(net),
        price=words.unit_price(price),
        amount=words.money(amount),
    )
    if any(w < tare for w in weights):
        text += words.say("weight_floor")
    line = FeeLine(
        kind=LineKind.WEIGHT,
        period=period,
        quantity=net,
        unit_price=price,
        amount=amount,
        explanation=text,
        bin_id=eq.bin_id,
        volume_l=eq.volume_l,
        counted=len(weights),
    )
    return line, unweighed


def _openings_line(
    tariff: Tariff, grid: Grid, account: Account, period: Period, words: Words, zone: ZoneInfo
) -> tuple[FeeLine, list[Exclusion]]:
    kept, excluded = hygiene.screen_deposits(account.deposits, tariff.duplicate_window)
    spans = household_spans(account, period)
    counted = 0
    for dep in kept:
        reason = _deposit_reason(dep, spans, period, zone)
        if reason is None:
            counted += 1
        else:
            excluded.append(Exclusion("deposit", dep.badge_id, dep.at, reason))
    days = sum(s.days for s in spans)
    included = scaled_count(grid.included_openings, days, tariff, period)
    billed = max(Fraction(counted) - included, Fraction(0))
    price = grid.opening_price or Decimal(0)
    amount = money.line_amount(price, billed)
    inc = words.say("openings_included", count=words.number(included)) if included else ""
    text = words.say(
        "openings",
        period=words.period(period),
        counted=counted,
        included=inc,
        billed=words.number(billed),
        price=words.unit_price(price),
        amount=words.money(amount),
    )
    line = FeeLine(
        kind=LineKind.OPENINGS,
        period=period,
        quantity=_as_decimal(billed),
        unit_price=price,
        amount=amount,
        explanation=text,
        days=days,
        period_days=period.days,
        counted=counted,
    )
    return line, excluded


def _deposit_reason(dep: Deposit, spans: list[Span], period: Period, zone: ZoneInfo) -> str | None:
    day = local_day(dep.at, zone)
    if any(s.first <= day <= s.last for s in spans):
        return None
    return "outside_period" if not period.contains(day) else "outside_occupancy"


# -- corrections, carry-over, VAT ----------------------------------------------------


def correction_lines(
    tariff: Tariff, account: Account, period: Period, words: Words
) -> list[FeeLine]:
    """Manual corrections: the operator and the reason are printed on the line."""
    lines = []
    for c in account.corrections:
        amount = money.to_cent(c.amount)
        text = words.say(
            "correction", operator=c.operator, reason=c.reason, amount=words.money(amount)
        )
        line = FeeLine(LineKind.CORRECTION, period, Decimal(1), amount, amount, text)
        lines.append(_taxed(line, tariff.vat_rate, words))
    return lines


def carried_line(amount: Decimal, period: Period, words: Words) -> FeeLine:
    """A balance not issued last time; it already includes its VAT, so it gets none."""
    rounded = money.to_cent(amount)
    text = words.say("carried_over", amount=words.money(rounded))
    return FeeLine(LineKind.CARRIED_OVER, period, Decimal(1), rounded, rounded, text)


def _taxed(line: FeeLine, rate: Decimal, words: Words) -> FeeLine:
    """VAT per line, rounded per line (CGI art. 260 A: only if the territory opted in)."""
    if not rate:
        return line
    vat = money.percent_of(line.amount, rate)
    text = line.explanation + words.say("vat", rate=words.number(rate), vat=words.money(vat))
    return replace(line, vat_rate=rate, vat=vat, explanation=text)
