"""Days billed together: a household's occupancy and its bins' days inside a period,
and the included or minimum counts prorated to them (docs/billing.md, "Pro-rata")."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime
from fractions import Fraction
from zoneinfo import ZoneInfo

from billing import money
from billing.errors import BillingInputError
from billing.model import (
    Account,
    Equipment,
    Period,
    Tariff,
)


@dataclass(frozen=True)
class Span:
    """Days billed together inside one period, first and last included."""

    first: date
    last: date

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1


@dataclass(frozen=True)
class BinSpan:
    equipment: Equipment
    span: Span


def household_spans(account: Account, period: Period) -> list[Span]:
    """The household's days in ``period``, overlapping occupancies merged."""
    clipped = sorted(
        c for o in account.occupancies if (c := period.clip(o.first_day, o.last_day)) is not None
    )
    merged: list[Span] = []
    for first, last in clipped:
        if merged and (first - merged[-1].last).days <= 1:
            merged[-1] = Span(merged[-1].first, max(last, merged[-1].last))
        else:
            merged.append(Span(first, last))
    return merged


def bin_spans(account: Account, period: Period) -> list[BinSpan]:
    """Each bin's days in ``period`` while this household occupies its dwelling."""
    out: list[BinSpan] = []
    for eq in account.equipment:
        for occ in account.occupancies:
            if occ.dwelling_id != eq.dwelling_id:
                continue
            last = _earliest(occ.last_day, eq.valid_to)
            days = period.clip(max(occ.first_day, eq.valid_from), last)
            if days is not None:
                out.append(BinSpan(eq, Span(*days)))
    return sorted(out, key=lambda b: (b.span.first, b.equipment.bin_id))


def _earliest(a: date | None, b: date | None) -> date | None:
    return b if a is None else a if b is None else min(a, b)


def scaled_count(count: int, days: int, tariff: Tariff, period: Period) -> Fraction:
    """An included or minimum count for ``days`` of the period, per the tariff."""
    if not tariff.prorate_counts or days >= period.days:
        return Fraction(count)
    exact = Fraction(count * days, period.days)
    if tariff.count_rounding == "down":
        return Fraction(math.floor(exact))
    if tariff.count_rounding == "up":
        return Fraction(math.ceil(exact))
    if tariff.count_rounding == "hundredths":
        return Fraction(money.to_cent(exact))
    return Fraction(math.floor(exact + Fraction(1, 2)))


def local_day(at: datetime, zone: ZoneInfo) -> date:
    if at.tzinfo is None:
        raise BillingInputError(f"event time {at.isoformat()} has no time zone")
    return at.astimezone(zone).date()
