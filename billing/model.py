"""Billing values: a tariff and its grids, what a household did, and the bill.

All frozen and free of I/O. Money is ``Decimal`` (parsed from strings, never from
floats); days are calendar dates in the territory's time zone, first and last days
included (``first_day``/``last_day``, unlike the registry's half-open occupancy).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, Literal, Protocol

from billing.errors import BillingInputError

if TYPE_CHECKING:  # billing.document imports this module
    from billing.document import Issuer

PeriodKind = Literal["semester", "year"]
CountRounding = Literal["half_up", "down", "up", "hundredths"]
BelowThreshold = Literal["carry_over", "cancel"]
Disposition = Literal["issue", "carry_over", "cancel"]


@dataclass(frozen=True, order=True)
class Period:
    """A billing period, first and last days included."""

    first_day: date
    last_day: date
    kind: PeriodKind = "year"

    @property
    def days(self) -> int:
        return (self.last_day - self.first_day).days + 1

    @property
    def label(self) -> str:
        if self.kind == "semester":
            return f"{self.first_day.year}-S{1 if self.first_day.month == 1 else 2}"
        return str(self.first_day.year)

    @classmethod
    def semester(cls, year: int, half: int) -> Period:
        if half == 1:
            return cls(date(year, 1, 1), date(year, 6, 30), "semester")
        return cls(date(year, 7, 1), date(year, 12, 31), "semester")

    @classmethod
    def year(cls, year: int) -> Period:
        return cls(date(year, 1, 1), date(year, 12, 31), "year")

    @classmethod
    def parse(cls, text: str) -> Period:
        """``2013`` or ``2013-S1`` / ``2013-S2``."""
        year, _, half = text.partition("-")
        if not year.isdigit() or half not in ("", "S1", "S2"):
            raise BillingInputError(f"period {text!r}: expected YYYY or YYYY-S1 / YYYY-S2")
        return cls.year(int(year)) if not half else cls.semester(int(year), int(half[1]))

    def previous(self) -> Period:
        if self.kind == "year":
            return Period.year(self.first_day.year - 1)
        if self.first_day.month == 7:
            return Period.semester(self.first_day.year, 1)
        return Period.semester(self.first_day.year - 1, 2)

    def clip(self, first: date, last: date | None) -> tuple[date, date] | None:
        """The days of [first, last] inside this period, or None."""
        lo = max(first, self.first_day)
        hi = self.last_day if last is None else min(last, self.last_day)
        return (lo, hi) if lo <= hi else None

    def contains(self, day: date) -> bool:
        return self.first_day <= day <= self.last_day


@dataclass(frozen=True)
class Tier:
    """One step of a tiered price: the units above the previous tier's bound, up to
    ``upto`` (``None``: no bound, the last tier), cost ``price`` each."""

    upto: int | None
    price: Decimal


Tiers = tuple[Tier, ...]
RESIDUAL = "residual"  # the default waste stream, priced by [grid] / [grids.<kind>]
STREAMS = (RESIDUAL, "recyclables", "biowaste")  # core/registry/models.py BIN_STREAMS


@dataclass(frozen=True)
class Grid:
    """The prices of one household category; see docs/billing.md for each key.

    Volume-keyed mappings are by nominal bin volume in litres. ``size_fixed`` is by
    persons in the household; a larger household pays the largest size's amount.
    """

    household_fixed: Decimal = Decimal(0)
    size_fixed: Mapping[int, Decimal] = field(default_factory=dict)
    bin_fixed: Mapping[int, Decimal] = field(default_factory=dict)
    included_lifts: int = 0
    minimum_lifts: int = 0
    lift_price: Mapping[int, Decimal] = field(default_factory=dict)
    kg_price: Decimal | None = None
    tare_kg: Mapping[int, Decimal] = field(default_factory=dict)
    included_openings: int = 0
    opening_price: Decimal | None = None
    # Tiered prices (docs/billing.md): each replaces its flat key (lift_price, kg_price,
    # opening_price); lifts per bin and by volume, kg and openings per household.
    lift_tiers: Mapping[int, Tiers] = field(default_factory=dict)
    kg_tiers: Tiers = ()
    opening_tiers: Tiers = ()


@dataclass(frozen=True)
class Tariff:
    """One territory's tariff for a span of dates (usually a year)."""

    territory: str
    name: str
    source: str
    illustrative: bool
    effective_from: date
    effective_to: date
    period: PeriodKind
    grid: Grid
    grids: Mapping[str, Grid] = field(default_factory=dict)  # by household kind
    streams: Mapping[str, Grid] = field(default_factory=dict)  # [streams.<stream>]
    timezone: str = "Europe/Paris"
    variable_in_arrears: bool = False
    prorate_counts: bool = True
    count_rounding: CountRounding = "half_up"
    duplicate_window: timedelta = timedelta(minutes=10)
    vat_rate: Decimal = Decimal(0)  # percent; 0 unless the territory opted in
    recovery_threshold: Decimal = Decimal("15.00")
    below_threshold: BelowThreshold = "carry_over"
    issuer: Issuer | None = None  # who issues the bills ([issuer]); needed to issue, not to compute

    def grid_for(self, category: str) -> Grid:
        return self.grids.get(category, self.grid)

    def bin_grid(self, category: str, stream: str) -> Grid | None:
        """The grid a bin of ``stream`` is priced by; None: its stream is not billed
        (many territories do not bill the yellow bin)."""
        return self.grid_for(category) if stream == RESIDUAL else self.streams.get(stream)

    def covers(self, period: Period) -> bool:
        return self.effective_from <= period.first_day and period.last_day <= self.effective_to


@dataclass(frozen=True)
class Occupancy:
    """A household living in a dwelling, first and last days included (None: still there)."""

    dwelling_id: str
    first_day: date
    last_day: date | None = None


@dataclass(frozen=True)
class Equipment:
    """A bin installed at a dwelling over [valid_from, valid_to], days included.

    A swap is two equipments: the old bin up to the day before, the new one from the
    swap day; bins stay with the dwelling whoever lives there.
    """

    bin_id: str
    dwelling_id: str
    volume_l: int
    valid_from: date
    valid_to: date | None = None
    stream: str = RESIDUAL  # waste stream: residual, recyclables (yellow bin), biowaste


@dataclass(frozen=True)
class Lift:
    """One emptying reported by a bin or a truck (PROTOCOL.md ``lift``, ``v`` in kg)."""

    at: datetime
    bin_id: str
    weight_kg: Decimal | None = None  # gross, as the truck weighed it
    refused: bool = False  # the crew refused to empty it: never billed
    chip_read: bool = True  # False: the bin's chip was not read, so never billed


@dataclass(frozen=True)
class Deposit:
    """A badge opening a collective container's hatch (PROTOCOL.md ``deposit``, ``vs``)."""

    at: datetime
    badge_id: str
    container_id: str


@dataclass(frozen=True)
class Correction:
    """A manual amount an operator adds (positive) or removes (negative), with a reason.

    The engine refuses one without an operator or a reason; the service records it
    in the audit log when it stores it.
    """

    amount: Decimal
    operator: str
    reason: str

    def __post_init__(self) -> None:
        if not self.operator.strip() or not self.reason.strip():
            raise BillingInputError("a manual correction needs an operator and a reason")


@dataclass(frozen=True)
class Account:
    """Everything the engine needs about one household (or one building's manager)."""

    household_id: str
    occupancies: tuple[Occupancy, ...]
    equipment: tuple[Equipment, ...] = ()
    lifts: tuple[Lift, ...] = ()
    deposits: tuple[Deposit, ...] = ()
    corrections: tuple[Correction, ...] = ()
    persons: int | None = None
    category: str = "primary"  # registry household kind: primary, secondary, professional


class LineKind(StrEnum):
    HOUSEHOLD_FIXED = "household_fixed"
    SIZE_FIXED = "size_fixed"
    BIN_FIXED = "bin_fixed"
    LIFTS = "lifts"
    WEIGHT = "weight"
    OPENINGS = "openings"
    CORRECTION = "correction"
    CARRIED_OVER = "carried_over"


@dataclass(frozen=True)
class FeeLine:
    """One line of a bill, with what is needed to explain it on the phone."""

    kind: LineKind
    period: Period
    quantity: Decimal  # days, lifts, kg or openings billed, as printed
    unit_price: Decimal
    amount: Decimal  # before VAT, rounded to the cent
    explanation: str
    bin_id: str | None = None
    volume_l: int | None = None
    days: int | None = None  # pro-rata numerator ...
    period_days: int | None = None  # ... and denominator
    counted: int | None = None  # events counted after hygiene
    vat_rate: Decimal = Decimal(0)
    vat: Decimal = Decimal("0.00")

    @property
    def total(self) -> Decimal:
        return self.amount + self.vat


@dataclass(frozen=True)
class Exclusion:
    """An event left out of the bill, and why (a billing run lists them)."""

    kind: Literal["lift", "deposit", "weight"]
    ref: str  # bin or badge id
    at: datetime
    reason: str  # unread_chip, refused, duplicate, outside_period, outside_occupancy, ...


class PricedLine(Protocol):
    """A line of a bill (``FeeLine``) or of its printed document: rounded amounts."""

    @property
    def amount(self) -> Decimal: ...
    @property
    def vat(self) -> Decimal: ...
    @property
    def total(self) -> Decimal: ...


class LineTotals:
    """The totals of a bill and of its printed document, computed one way over the lines."""

    lines: Sequence[PricedLine]

    @property
    def total_before_vat(self) -> Decimal:
        return sum((line.amount for line in self.lines), Decimal("0.00"))

    @property
    def total_vat(self) -> Decimal:
        return sum((line.vat for line in self.lines), Decimal("0.00"))

    @property
    def total(self) -> Decimal:
        """The sum of the rounded lines (docs/billing.md, "Money")."""
        return sum((line.total for line in self.lines), Decimal("0.00"))


@dataclass(frozen=True)
class Bill(LineTotals):
    household_id: str
    period: Period
    lines: tuple[FeeLine, ...]
    excluded: tuple[Exclusion, ...]
    disposition: Disposition
    threshold: Decimal
    language: str = "fr"

    @property
    def carried_forward(self) -> Decimal:
        """What the next bill must add (a total not issued and not cancelled)."""
        return self.total if self.disposition == "carry_over" else Decimal("0.00")


def bill_as_dict(bill: Bill, split: list[tuple[str, Decimal]] | None = None) -> dict[str, object]:
    """A JSON-ready view of a bill; amounts as strings so no float ever touches them."""
    out: dict[str, object] = {
        "household_id": bill.household_id,
        "period": bill.period.label,
        "language": bill.language,
        "lines": [_line_as_dict(line) for line in bill.lines],
        "total_before_vat": str(bill.total_before_vat),
        "total_vat": str(bill.total_vat),
        "total": str(bill.total),
        "disposition": bill.disposition,
        "recovery_threshold": str(bill.threshold),
        "carried_forward": str(bill.carried_forward),
        "excluded": [
            {"kind": e.kind, "ref": e.ref, "at": e.at.isoformat(), "reason": e.reason}
            for e in bill.excluded
        ],
    }
    if split is not None:
        out["split"] = [{"dwelling": name, "amount": str(amount)} for name, amount in split]
    return out


def _line_as_dict(line: FeeLine) -> dict[str, object]:
    return {
        "kind": line.kind.value,
        "period": line.period.label,
        "bin_id": line.bin_id,
        "volume_l": line.volume_l,
        "quantity": str(line.quantity),
        "unit_price": str(line.unit_price),
        "days": line.days,
        "period_days": line.period_days,
        "counted": line.counted,
        "amount": str(line.amount),
        "vat_rate": str(line.vat_rate),
        "vat": str(line.vat),
        "total": str(line.total),
        "explanation": line.explanation,
    }
