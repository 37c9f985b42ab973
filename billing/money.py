"""Money rules: exact arithmetic, one rounding per fee line, exact splits.

The rounding rule, documented once here and in docs/billing.md ("Money"):
every fee line is computed exactly (``Fraction``: no binary floats, no Decimal
context precision) and rounded once, to the cent, half up (half a cent goes away
from zero), the convention of Council Regulation (EC) No 1103/97 art. 5 for euro
amounts. A bill's total is the sum of its rounded lines, never a re-rounded sum of
unrounded amounts, so every line printed on the bill adds up to the total.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from fractions import Fraction

CENT = Decimal("0.01")
ZERO = Decimal("0.00")

Exact = Decimal | Fraction | int


def to_cent(value: Exact) -> Decimal:
    """Round an exact amount to the cent, half up (away from zero on a half cent)."""
    exact = Fraction(value)
    cents_x2 = exact * 200  # twice the number of cents: a half cent becomes odd
    magnitude = (abs(cents_x2.numerator) // cents_x2.denominator + 1) // 2
    cents = magnitude if exact >= 0 else -magnitude
    return _cents(cents)


def line_amount(unit_price: Decimal, quantity: Exact) -> Decimal:
    """``unit_price x quantity`` rounded once, to the cent."""
    return to_cent(Fraction(unit_price) * Fraction(quantity))


def prorated(amount: Decimal, days: int, period_days: int) -> Decimal:
    """``amount x days / period_days`` rounded once (pro-rata by day, docs/billing.md)."""
    return to_cent(Fraction(amount) * days / period_days)


def split_largest_remainder(
    total: Decimal, keys: Sequence[tuple[str, Decimal]]
) -> list[tuple[str, Decimal]]:
    """Split ``total`` between ``keys`` (name, weight) so that the cents add up exactly.

    Hamilton's largest-remainder method on cents: each part gets the floor of its
    exact quota, and the cents left go one each to the largest fractional remainders
    (ties to the earlier key, so the result is deterministic). A negative total (a
    credit) is split by its magnitude and negated.
    """
    if not keys:
        raise ValueError("a split needs at least one key")
    if any(w < 0 for _, w in keys) or sum(w for _, w in keys) <= 0:
        raise ValueError("split keys must be non-negative and not all zero")
    cents = int(total.quantize(CENT) * 100)
    sign, magnitude = (-1 if cents < 0 else 1), abs(cents)
    weight_sum = sum(Fraction(w) for _, w in keys)
    quotas = [magnitude * Fraction(w) / weight_sum for _, w in keys]
    floors = [q.numerator // q.denominator for q in quotas]
    left = magnitude - sum(floors)
    order = sorted(range(len(keys)), key=lambda i: (-(quotas[i] - floors[i]), i))
    for i in order[:left]:
        floors[i] += 1
    return [(name, _cents(sign * c)) for (name, _), c in zip(keys, floors, strict=True)]


def _cents(count: int) -> Decimal:
    return (Decimal(count) / 100).quantize(CENT)


def percent_of(amount: Decimal, rate_percent: Decimal) -> Decimal:
    """A tax of ``rate_percent`` % on one rounded line, itself rounded to the cent."""
    return to_cent(Fraction(amount) * Fraction(rate_percent) / 100)
