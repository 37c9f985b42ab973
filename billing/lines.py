"""Fee line builders: fixed parts, lifts, weights, openings, corrections, VAT.

Each builds one explained ``FeeLine`` (billing/explain.py) from exact amounts rounded
once (billing/money.py)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from decimal import Decimal
from fractions import Fraction
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from billing import hygiene, money
from billing.errors import BillingInputError
from billing.explain import Words
from billing.model import (
    RESIDUAL,
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
    Tier,
    Tiers,
)
from billing.spans import BinSpan, Span, bin_spans, household_spans, local_day, scaled_count

T = TypeVar("T")

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
    for bs in bin_spans(account, period):
        own = tariff.bin_grid(account.category, bs.equipment.stream)
        if own is None or not own.bin_fixed:
            continue  # a stream the tariff does not bill has no fixed part either
        price = _by_volume(own.bin_fixed, bs.equipment, "bin_fixed", tariff)
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
        bin=words.bin_label(equipment.bin_id, equipment.stream) if equipment else "",
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


def _by_volume(prices: Mapping[int, T], eq: Equipment, key: str, t: Tariff) -> T:
    volume = eq.volume_l
    if volume not in prices:
        known = ", ".join(f"{v} L" for v in sorted(prices))
        table = "grid" if eq.stream == RESIDUAL else f"streams.{eq.stream}"
        raise BillingInputError(f"{t.name}: no {table}.{key} for a {volume} L bin (known: {known})")
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
    weighed: dict[str, list[tuple[BinSpan, list[Lift]]]] = {}  # kg tiers: by stream
    for bs in spans:
        mine = by_span.get(bs, [])
        own = tariff.bin_grid(account.category, bs.equipment.stream)
        if own is None:  # e.g. a yellow bin where the territory does not bill it
            excluded += [Exclusion("lift", x.bin_id, x.at, "stream_not_billed") for x in mine]
            continue
        lines += _lift_lines(tariff, own, bs, len(mine), period, words)
        if own.kg_price is not None:
            line, unweighed = _weight_line(tariff, own, bs, mine, period, words)
            lines.append(line)
            excluded += unweighed
        elif own.kg_tiers:
            weighed.setdefault(bs.equipment.stream, []).append((bs, mine))
    for stream, bins in weighed.items():
        own = tariff.bin_grid(account.category, stream) or grid
        tiered, unweighed = _tiered_weight_lines(tariff, own, bins, account, period, words)
        lines += tiered
        excluded += unweighed
    if grid.opening_price is not None or grid.opening_tiers:
        found, left_out = _openings_lines(tariff, grid, account, period, words, zone)
        lines += found
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


def _lift_lines(
    tariff: Tariff, grid: Grid, bs: BinSpan, counted: int, period: Period, words: Words
) -> list[FeeLine]:
    if grid.lift_tiers:
        return _tiered_lift_lines(tariff, grid, bs, counted, period, words)
    return [_lift_line(tariff, grid, bs, counted, period, words)] if grid.lift_price else []


def _billed_lifts(
    tariff: Tariff, grid: Grid, bs: BinSpan, counted: int, period: Period, words: Words
) -> tuple[Fraction, dict[str, object]]:
    """max(counted, minimum) - included, at least 0, and the words that explain it."""
    eq, days = bs.equipment, bs.span.days
    minimum = scaled_count(grid.minimum_lifts, days, tariff, period)
    included = scaled_count(grid.included_lifts, days, tariff, period)
    billed = max(max(Fraction(counted), minimum) - included, Fraction(0))
    said: dict[str, object] = {
        "volume": eq.volume_l,
        "bin": words.bin_label(eq.bin_id, eq.stream),
        "period": words.period(period),
        "counted": counted,
        "minimum": _minimum_words(grid.minimum_lifts, minimum, bs, tariff, period, words),
        "included": words.say("included", count=words.number(included)) if included else "",
        "billed": words.number(billed),
    }
    return billed, said


def _tiered_lift_lines(
    tariff: Tariff, grid: Grid, bs: BinSpan, counted: int, period: Period, words: Words
) -> list[FeeLine]:
    """One line per tier of the billed lifts; bounds prorated like the minimum."""
    eq = bs.equipment
    tiers = _by_volume(grid.lift_tiers, eq, "lift_tiers", tariff)
    billed, said = _billed_lifts(tariff, grid, bs, counted, period, words)
    bounds = tier_bounds(tiers, bs.span.days, tariff, period)
    heads = (words.say("lifts_head", **said), words.say("lifts_tier_head", **said))
    return _tier_lines(
        LineKind.LIFTS, period, billed, tiers, bounds, "lift", heads, words,
        bin_id=eq.bin_id, volume_l=eq.volume_l, days=bs.span.days, period_days=period.days,
        counted=counted,
    )  # fmt: skip


def _lift_line(
    tariff: Tariff, grid: Grid, bs: BinSpan, counted: int, period: Period, words: Words
) -> FeeLine:
    eq, days = bs.equipment, bs.span.days
    price = _by_volume(grid.lift_price, eq, "lift_price", tariff)
    billed, said = _billed_lifts(tariff, grid, bs, counted, period, words)
    amount = money.line_amount(price, billed)
    text = words.say("lifts", price=words.unit_price(price), amount=words.money(amount), **said)
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
    tare, weights, unweighed = _weighings(tariff, grid, eq, lifts)
    gross = sum(weights, Decimal(0))
    net = sum((max(w - tare, Decimal(0)) for w in weights), Decimal(0))
    price = grid.kg_price or Decimal(0)
    amount = money.line_amount(price, net)
    text = words.say(
        "weight",
        volume=eq.volume_l,
        bin=words.bin_label(eq.bin_id, eq.stream),
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


def _weighings(
    tariff: Tariff, grid: Grid, eq: Equipment, lifts: list[Lift]
) -> tuple[Decimal, list[Decimal], list[Exclusion]]:
    """The bin's tare, its lifts' gross weights, and the lifts without a weighing."""
    tare = _by_volume(grid.tare_kg, eq, "tare_kg", tariff) if grid.tare_kg else Decimal(0)
    weights = [lift.weight_kg for lift in lifts if lift.weight_kg is not None]
    unweighed = [
        Exclusion("weight", lift.bin_id, lift.at, "unweighed")
        for lift in lifts
        if lift.weight_kg is None
    ]
    return tare, weights, unweighed


def _tiered_weight_lines(
    tariff: Tariff,
    grid: Grid,
    bins: list[tuple[BinSpan, list[Lift]]],
    account: Account,
    period: Period,
    words: Words,
) -> tuple[list[FeeLine], list[Exclusion]]:
    """kg tiers apply to the household's net kg of one stream in the period (all its
    bins together, as a territory's "first 100 kg" is per household); the bounds are
    prorated by the household's days like an included count."""
    net, weighings, below_tare = Decimal(0), 0, False
    unweighed: list[Exclusion] = []
    for bs, lifts in bins:
        tare, weights, missing = _weighings(tariff, grid, bs.equipment, lifts)
        net += sum((max(w - tare, Decimal(0)) for w in weights), Decimal(0))
        weighings += len(weights)
        below_tare = below_tare or any(w < tare for w in weights)
        unweighed += missing
    labels = ", ".join(words.bin_label(bs.equipment.bin_id, bs.equipment.stream) for bs, _ in bins)
    said = {"bins": labels, "period": words.period(period), "lifts": weighings}
    head = words.say("weight_head", net=words.number(net), **said)
    head += words.say("weight_floor") if below_tare else ""
    days = sum(s.days for s in household_spans(account, period))
    bounds = tier_bounds(grid.kg_tiers, days, tariff, period)
    single = bins[0][0].equipment if len(bins) == 1 else None
    found = _tier_lines(
        LineKind.WEIGHT, period, Fraction(net), grid.kg_tiers, bounds, "kg",
        (head, words.say("weight_tier_head", **said)), words,
        bin_id=single.bin_id if single else None, volume_l=single.volume_l if single else None,
        days=days, period_days=period.days, counted=weighings,
    )  # fmt: skip
    return found, unweighed


def _openings_lines(
    tariff: Tariff, grid: Grid, account: Account, period: Period, words: Words, zone: ZoneInfo
) -> tuple[list[FeeLine], list[Exclusion]]:
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
    inc = words.say("openings_included", count=words.number(included)) if included else ""
    if grid.opening_tiers:
        said = {"period": words.period(period), "counted": counted, "included": inc}
        heads = (
            words.say("openings_head", billed=words.number(billed), **said),
            words.say("openings_tier_head", **said),
        )
        bounds = tier_bounds(grid.opening_tiers, days, tariff, period)
        found = _tier_lines(
            LineKind.OPENINGS, period, billed, grid.opening_tiers, bounds, "opening", heads,
            words, days=days, period_days=period.days, counted=counted,
        )  # fmt: skip
        return found, excluded
    price = grid.opening_price or Decimal(0)
    amount = money.line_amount(price, billed)
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
    return [line], excluded


# -- tiers ---------------------------------------------------------------------------


def tier_bounds(tiers: Tiers, days: int, tariff: Tariff, period: Period) -> list[Fraction | None]:
    """Each tier's upper bound for ``days`` of the period: prorated and rounded like
    an included or minimum count (``[prorata]``), so rounding keeps them ascending."""
    return [
        None if tier.upto is None else scaled_count(tier.upto, days, tariff, period)
        for tier in tiers
    ]


def split_tiers(
    quantity: Fraction, tiers: Tiers, bounds: list[Fraction | None]
) -> list[tuple[Tier, Fraction, Fraction | None, Fraction]]:
    """(tier, low, high, units in it) for each tier: the units above ``low`` up to
    ``high``; together they add up to ``quantity``. Two bounds prorated to the same
    value leave the tier between them empty."""
    out = []
    low = Fraction(0)
    for tier, high in zip(tiers, bounds, strict=True):
        top = quantity if high is None else min(quantity, max(high, low))
        out.append((tier, low, high, max(top - low, Fraction(0))))
        low = low if high is None else max(low, high)
    return out


def _tier_lines(
    kind: LineKind,
    period: Period,
    billed: Fraction,
    tiers: Tiers,
    bounds: list[Fraction | None],
    unit: str,
    heads: tuple[str, str],
    words: Words,
    **fields: Any,
) -> list[FeeLine]:
    """One line per tier with units in it, each rounded on its own (so the bill's
    total stays the sum of its lines); the first line says how the quantity came about.
    Nothing billed: one line at the first tier's price, to explain the count."""
    per, suffix = ("/kg", " kg") if unit == "kg" else ("", "")
    parts = [p for p in split_tiers(billed, tiers, bounds) if p[3] > 0]
    if not parts:
        price, zero = tiers[0].price, money.to_cent(0)
        text = heads[0] + words.say(
            "tier_none", price=words.unit_price(price), per=per, amount=words.money(zero)
        )
        return [FeeLine(kind, period, Decimal(0), price, zero, text, **fields)]
    lines = []
    for n, (tier, low, high, units) in enumerate(parts):
        amount = money.line_amount(tier.price, units)
        text = heads[min(n, 1)] + words.say(
            "tier",
            range=words.tier_range(unit, low, high),
            quantity=words.number(_as_decimal(units)),
            unit=suffix,
            price=words.unit_price(tier.price),
            per=per,
            amount=words.money(amount),
        )
        lines.append(FeeLine(kind, period, _as_decimal(units), tier.price, amount, text, **fields))
    return lines


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
