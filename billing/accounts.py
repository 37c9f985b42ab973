"""A period's accounts and anomalies from registry rows and bin events (pure).

The service (billing/service.py) reads the registry and the telemetry store once
per run and hands the rows here; this module groups them per household in one pass
(O(households + events)), so a 35,000-household run never queries per household.

Registry periods are half-open (occupancy ``end``, badge ``valid_to`` and binding
``valid_to`` are the first moment no longer covered); billing days are inclusive,
so the last day is the day before (billing/model.py).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import TypeVar
from zoneinfo import ZoneInfo

from billing.model import Account, Correction, Deposit, Equipment, Lift, Occupancy, Period

ONE_DAY = timedelta(days=1)
T = TypeVar("T")


@dataclass(frozen=True)
class HouseholdRow:
    id: str
    name: str | None
    persons: int | None
    kind: str


@dataclass(frozen=True)
class OccupancyRow:
    household_id: str
    dwelling_id: str
    start: date
    end: date | None  # exclusive


@dataclass(frozen=True)
class BindingRow:
    bin_id: str
    dwelling_id: str
    volume_l: int | None
    valid_from: datetime
    valid_to: datetime | None  # exclusive
    stream: str = "residual"  # the device's waste stream (migration 0006)


@dataclass(frozen=True)
class BadgeRow:
    id: str
    household_id: str
    valid_from: date
    valid_to: date | None  # exclusive


@dataclass(frozen=True)
class LiftEvent:
    device_id: str  # the bin, or the truck itself when it could not read a chip
    at: datetime
    weight_kg: Decimal | None = None


@dataclass(frozen=True)
class DepositEvent:
    container_id: str
    badge_id: str
    at: datetime


@dataclass(frozen=True)
class Anomaly:
    """Something a billing officer should look at before issuing."""

    reason: str
    ref: str  # bin, badge, dwelling or truck id
    household_id: str | None = None
    at: datetime | None = None
    detail: str = ""

    def as_dict(self) -> dict[str, str | None]:
        return {
            "reason": self.reason,
            "household": self.household_id,
            "ref": self.ref,
            "at": self.at.isoformat() if self.at else None,
            "detail": self.detail,
        }


@dataclass
class Snapshot:
    """What the registry holds for one run."""

    households: Mapping[str, HouseholdRow]
    occupancies: Sequence[OccupancyRow]
    bindings: Sequence[BindingRow]
    badges: Sequence[BadgeRow]
    trucks: frozenset[str] = frozenset()
    corrections: Mapping[str, Sequence[Correction]] = field(default_factory=dict)
    carried: Mapping[str, Decimal] = field(default_factory=dict)


@dataclass(frozen=True)
class Events:
    lifts: Sequence[LiftEvent]
    deposits: Sequence[DepositEvent]


def event_period(period: Period, in_arrears: bool) -> Period:
    """The period whose lifts and openings a bill of ``period`` counts."""
    return period.previous() if in_arrears else period


def occupancy(row: OccupancyRow) -> Occupancy:
    return Occupancy(row.dwelling_id, row.start, row.end - ONE_DAY if row.end else None)


def equipment(row: BindingRow, zone: ZoneInfo) -> Equipment:
    """A swap at 10:00 on day D: the old bin's last day is D - 1, the new one's first D."""
    last = row.valid_to.astimezone(zone).date() - ONE_DAY if row.valid_to else None
    return Equipment(
        row.bin_id,
        row.dwelling_id,
        row.volume_l or 0,
        row.valid_from.astimezone(zone).date(),
        last,
        row.stream,
    )


def billed_households(snapshot: Snapshot, period: Period) -> list[str]:
    """Households occupying a dwelling on at least one day of ``period``, by id."""
    ids = {o.household_id for o in snapshot.occupancies if _overlaps(o.start, o.end, period)} | {
        h for h, amount in snapshot.carried.items() if amount
    }
    return sorted(ids & set(snapshot.households))


def accounts(snapshot: Snapshot, events: Events, period: Period, zone: ZoneInfo) -> list[Account]:
    """One account per billed household, in household id order."""
    by_dwelling_bins = group(snapshot.bindings, lambda b: b.dwelling_id)
    lifts_by_bin = group(events.lifts, lambda e: e.device_id)
    deposits_by_badge = group(events.deposits, lambda e: e.badge_id)
    occ_by_household = group(snapshot.occupancies, lambda o: o.household_id)
    badges_by_household = group(snapshot.badges, lambda b: b.household_id)
    out = []
    for hid in billed_households(snapshot, period):
        hh = snapshot.households[hid]
        occs = occ_by_household.get(hid, [])
        bins = [b for o in occs for b in by_dwelling_bins.get(o.dwelling_id, [])]
        badges = badges_by_household.get(hid, [])
        out.append(
            Account(
                household_id=hid,
                occupancies=tuple(occupancy(o) for o in occs),
                equipment=tuple(equipment(b, zone) for b in bins),
                lifts=tuple(
                    Lift(e.at, e.device_id, e.weight_kg)
                    for bin_id in sorted({b.bin_id for b in bins})
                    for e in lifts_by_bin.get(bin_id, [])
                ),
                deposits=tuple(
                    Deposit(e.at, e.badge_id, e.container_id)
                    for badge in badges
                    for e in deposits_by_badge.get(badge.id, [])
                ),
                corrections=tuple(snapshot.corrections.get(hid, ())),
                persons=hh.persons,
                category=hh.kind,
            )
        )
    return out


# ---- anomalies (issue 5: what a run shows before it is issued) ---------------------


def anomalies(
    snapshot: Snapshot, events: Events, period: Period, zone: ZoneInfo, in_arrears: bool
) -> list[Anomaly]:
    """Bins without lifts, badges without deposits, occupied dwellings without
    equipment, unread chips, lifts after move-out, unknown badges and bins."""
    counted = event_period(period, in_arrears)
    found = _lift_anomalies(snapshot, events.lifts, zone)
    found += _silent_bins(snapshot, events.lifts, counted, zone)
    found += _silent_badges(snapshot, events.deposits, counted)
    found += _bare_dwellings(snapshot, period, zone)
    known = {b.id for b in snapshot.badges}
    found += [
        Anomaly("unknown_badge", e.badge_id, at=e.at, detail=f"container {e.container_id}")
        for e in events.deposits
        if e.badge_id not in known
    ]
    return sorted(found, key=lambda a: (a.reason, a.household_id or "", a.ref, _ts(a.at)))


def _lift_anomalies(
    snapshot: Snapshot, lifts: Iterable[LiftEvent], zone: ZoneInfo
) -> list[Anomaly]:
    bindings = group(snapshot.bindings, lambda b: b.bin_id)
    occ_by_dwelling = group(snapshot.occupancies, lambda o: o.dwelling_id)
    out = []
    for e in lifts:
        if e.device_id in snapshot.trucks:
            # PROTOCOL.md: a truck names the bin it read; a lift in its own name had no chip.
            out.append(Anomaly("unread_chip", e.device_id, at=e.at, detail="truck lift, no bin"))
            continue
        place = next((b for b in bindings.get(e.device_id, []) if bound_at(b, e.at)), None)
        if place is None:
            out.append(Anomaly("lift_of_unbound_bin", e.device_id, at=e.at))
            continue
        out += _vacant(e, place.dwelling_id, occ_by_dwelling.get(place.dwelling_id, []), zone)
    return out


def _vacant(
    e: LiftEvent, dwelling: str, occs: Sequence[OccupancyRow], zone: ZoneInfo
) -> list[Anomaly]:
    day = e.at.astimezone(zone).date()
    if any(o.start <= day and (o.end is None or day < o.end) for o in occs):
        return []
    left = [o for o in occs if o.end is not None and o.end <= day]
    if left:
        last = max(left, key=lambda o: o.end or date.min)
        detail = f"dwelling {dwelling}, moved out {last.end}"
        return [Anomaly("lift_after_move_out", e.device_id, last.household_id, e.at, detail)]
    return [Anomaly("lift_at_vacant_dwelling", e.device_id, at=e.at, detail=f"dwelling {dwelling}")]


def _silent_bins(
    snapshot: Snapshot, lifts: Iterable[LiftEvent], counted: Period, zone: ZoneInfo
) -> list[Anomaly]:
    """A household with a bin and no lift of it while it lived there."""
    days_by_bin: dict[str, set[date]] = defaultdict(set)
    for e in lifts:
        days_by_bin[e.device_id].add(e.at.astimezone(zone).date())
    bins = group(snapshot.bindings, lambda b: b.dwelling_id)
    out = []
    for o in snapshot.occupancies:
        if o.household_id not in snapshot.households:
            continue
        for b in bins.get(o.dwelling_id, []):
            span = _common(occupancy(o), equipment(b, zone), counted)
            if span and not any(span[0] <= d <= span[1] for d in days_by_bin.get(b.bin_id, ())):
                detail = f"no lift from {span[0]} to {span[1]}"
                out.append(Anomaly("bin_without_lifts", b.bin_id, o.household_id, None, detail))
    return out


def _silent_badges(
    snapshot: Snapshot, deposits: Iterable[DepositEvent], counted: Period
) -> list[Anomaly]:
    used = {e.badge_id for e in deposits}
    return [
        Anomaly("badge_without_deposit", b.id, b.household_id, detail=f"in {counted.label}")
        for b in snapshot.badges
        if b.id not in used
        and b.household_id in snapshot.households
        and _overlaps(b.valid_from, b.valid_to, counted)
    ]


def _bare_dwellings(snapshot: Snapshot, period: Period, zone: ZoneInfo) -> list[Anomaly]:
    """Occupied in the period, with no bin there and no badge for its household."""
    bins = group(snapshot.bindings, lambda b: b.dwelling_id)
    with_badge = {
        b.household_id for b in snapshot.badges if _overlaps(b.valid_from, b.valid_to, period)
    }
    out = []
    for o in snapshot.occupancies:
        if not _overlaps(o.start, o.end, period) or o.household_id in with_badge:
            continue
        if not any(
            _common(occupancy(o), equipment(b, zone), period) for b in bins.get(o.dwelling_id, [])
        ):
            out.append(Anomaly("dwelling_without_equipment", o.dwelling_id, o.household_id))
    return out


# ---- helpers -------------------------------------------------------------------------


def group(rows: Iterable[T], key: Callable[[T], str]) -> dict[str, list[T]]:
    """Rows by key, in their order (billing/collective.py groups with it too)."""
    out: dict[str, list[T]] = defaultdict(list)
    for row in rows:
        out[key(row)].append(row)
    return out


def _overlaps(start: date, end: date | None, period: Period) -> bool:
    """Half-open [start, end) meets the inclusive period."""
    return start <= period.last_day and (end is None or end > period.first_day)


def bound_at(b: BindingRow, at: datetime) -> bool:
    """The binding holds at ``at``: half-open [valid_from, valid_to)."""
    return b.valid_from <= at and (b.valid_to is None or at < b.valid_to)


def _common(occ: Occupancy, eq: Equipment, period: Period) -> tuple[date, date] | None:
    if occ.dwelling_id != eq.dwelling_id:
        return None
    lasts = [d for d in (occ.last_day, eq.valid_to) if d is not None]
    return period.clip(max(occ.first_day, eq.valid_from), min(lasts) if lasts else None)


def _ts(at: datetime | None) -> str:
    return at.isoformat() if at else ""
