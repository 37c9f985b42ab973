"""Collective housing: a building's shared bins billed once to its manager (pure).

Issue 5: "one bill to the building's manager (syndic, landlord), with an optional
split between dwellings by a key (persons, shares) whose cents add up exactly to the
total (largest remainder)". DESIGN.md: bins are installed at a dwelling, so a
building's shared bins are bound to its common parts, a dwelling flagged
``collective`` that nobody occupies (docs/schema.md, migration 0005). From the run's
registry snapshot and events this module:

- takes the shared bins and their lifts out of what the households are billed and
  checked for (``without_shared``), so no resident pays them and their lifts are not
  reported as lifts at a vacant dwelling;
- builds one ``Account`` per building (category ``collective``: the tariff's
  ``[grids.collective]``) whose "occupancy" of its common parts covers the bill's
  period and the period whose lifts it counts (lifts may be billed in arrears);
- computes the bill with ``rules.compute`` and, when the building has a key, its
  split between the building's other dwellings with ``rules.split``: persons of the
  household living there on the period's last day (a vacant dwelling weighs 0), or
  the dwelling's shares (tantièmes);
- lists what a billing officer must fix: a building with shared bins and no manager
  (not billed), a key it cannot apply (billed without a split), a shared bin without
  lifts, a bill under the threshold that cannot be carried.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Final
from zoneinfo import ZoneInfo

from billing import accounts as acc
from billing import rules
from billing.document import Debtor
from billing.errors import BillingInputError
from billing.model import Account, Bill, Lift, Occupancy, Period, Tariff

CATEGORY: Final = "collective"  # the tariff's [grids.collective] (billing/tariff.py)
# How the weight of a dwelling is printed after its name in the split (French bills).
KEY_UNITS: Final[Mapping[str, str]] = {"persons": "pers.", "shares": "tantièmes"}


@dataclass(frozen=True)
class BuildingRow:
    id: str
    name: str
    manager_name: str | None
    manager_address: tuple[str, ...]  # printed lines
    split_key: str = "none"  # none, persons or shares (core/registry/models.py)


@dataclass(frozen=True)
class BuildingDwelling:
    """A dwelling of a building: a home, or its common parts (``collective``)."""

    id: str
    building_id: str
    address: str
    shares: int | None = None
    collective: bool = False


@dataclass(frozen=True)
class Buildings:
    """The registry's buildings and the dwellings that belong to one."""

    buildings: Mapping[str, BuildingRow] = field(default_factory=dict)
    dwellings: Sequence[BuildingDwelling] = ()

    def common_parts(self) -> dict[str, str]:
        """Common-parts dwelling id -> building id."""
        return {d.id: d.building_id for d in self.dwellings if d.collective}


@dataclass
class Collective:
    """What a run bills to the buildings' managers."""

    bills: list[tuple[Account, Bill]] = field(default_factory=list)
    debtors: dict[str, Debtor] = field(default_factory=dict)  # by building id
    splits: dict[str, tuple[tuple[str, Decimal], ...]] = field(default_factory=dict)
    failures: list[acc.Anomaly] = field(default_factory=list)  # cannot_price
    anomalies: list[acc.Anomaly] = field(default_factory=list)


# ---- what the households see ---------------------------------------------------------


def shared_bindings(snapshot: acc.Snapshot, buildings: Buildings) -> list[acc.BindingRow]:
    """Bindings of bins to a building's common parts."""
    common = buildings.common_parts()
    return [b for b in snapshot.bindings if b.dwelling_id in common]


def without_shared(
    snapshot: acc.Snapshot, events: acc.Events, buildings: Buildings
) -> tuple[acc.Snapshot, acc.Events]:
    """The snapshot and events the households are billed and checked on: without the
    shared bins' bindings, nor their lifts while they were bound there."""
    shared = shared_bindings(snapshot, buildings)
    if not shared:
        return snapshot, events
    by_bin, gone = acc.group(shared, lambda b: b.bin_id), set(shared)
    kept = [b for b in snapshot.bindings if b not in gone]
    lifts = [
        e
        for e in events.lifts
        if not any(acc.bound_at(b, e.at) for b in by_bin.get(e.device_id, ()))
    ]
    households = acc.Snapshot(
        households=snapshot.households,
        occupancies=snapshot.occupancies,
        bindings=kept,
        badges=snapshot.badges,
        trucks=snapshot.trucks,
        corrections=snapshot.corrections,
        carried=snapshot.carried,
    )
    return households, acc.Events(lifts=lifts, deposits=events.deposits)


def tidy(
    found: Iterable[acc.Anomaly], snapshot: acc.Snapshot, buildings: Buildings
) -> list[acc.Anomaly]:
    """Drop ``dwelling_without_equipment`` for homes of a building with shared bins:
    their household's waste goes into those bins."""
    served = {buildings.common_parts()[b.dwelling_id] for b in shared_bindings(snapshot, buildings)}
    homes = {d.id for d in buildings.dwellings if d.building_id in served}
    return [a for a in found if not (a.reason == "dwelling_without_equipment" and a.ref in homes)]


# ---- the managers' bills ---------------------------------------------------------------


def bill_buildings(
    tariff: Tariff,
    snapshot: acc.Snapshot,
    events: acc.Events,
    buildings: Buildings,
    period: Period,
    zone: ZoneInfo,
) -> Collective:
    """One bill per building with shared bins in the run's window, by building id."""
    counted = acc.event_period(period, tariff.variable_in_arrears)
    since = min(period.first_day, counted.first_day)
    shared = acc.group(shared_bindings(snapshot, buildings), lambda b: b.dwelling_id)
    common = buildings.common_parts()
    by_building: dict[str, list[acc.BindingRow]] = defaultdict(list)
    for dwelling_id, rows in shared.items():
        by_building[common[dwelling_id]] += rows
    lifts = acc.group(events.lifts, lambda e: e.device_id)
    out = Collective()
    for bid in sorted(by_building):
        building, rows = buildings.buildings[bid], by_building[bid]
        out.anomalies += _silent(rows, lifts, counted, zone)
        if not (building.manager_name and building.manager_address):
            detail = f"{len(rows)} shared bin(s), no manager name or address: not billed"
            out.anomalies.append(acc.Anomaly("building_without_manager", bid, detail=detail))
            continue
        account = _account(bid, rows, lifts, since, zone)
        try:
            bill = rules.compute(tariff, account, period)
        except BillingInputError as err:
            out.failures.append(acc.Anomaly("cannot_price", bid, detail=str(err)))
            continue
        out.bills.append((account, bill))
        out.debtors[bid] = Debtor(bid, building.manager_name, building.manager_address, "manager")
        keys, problems = split_keys(building, buildings.dwellings, snapshot, period)
        out.anomalies += problems
        if keys:
            out.splits[bid] = tuple(rules.split(bill, keys))
        if bill.disposition == "carry_over":
            detail = f"total {bill.total} under the threshold: a building's bill is not carried"
            out.anomalies.append(acc.Anomaly("building_bill_not_carried", bid, detail=detail))
    return out


def _account(
    bid: str,
    rows: Sequence[acc.BindingRow],
    lifts: Mapping[str, Sequence[acc.LiftEvent]],
    since: date,
    zone: ZoneInfo,
) -> Account:
    """The building's account: its common parts "occupied" from ``since`` on, so that
    its bins' fixed parts and (possibly earlier) lifts all fall in it."""
    places = sorted({b.dwelling_id for b in rows})
    bins = sorted({b.bin_id for b in rows})
    return Account(
        household_id=bid,
        occupancies=tuple(Occupancy(place, since) for place in places),
        equipment=tuple(acc.equipment(b, zone) for b in rows),
        lifts=tuple(Lift(e.at, e.device_id, e.weight_kg) for b in bins for e in lifts.get(b, ())),
        category=CATEGORY,
    )


def split_keys(
    building: BuildingRow,
    dwellings: Iterable[BuildingDwelling],
    snapshot: acc.Snapshot,
    period: Period,
) -> tuple[list[tuple[str, Decimal]], list[acc.Anomaly]]:
    """The building's key per home, by dwelling id; none when the building has no key
    or the key cannot be applied (the anomaly says why, the bill is issued unsplit)."""
    if building.split_key == "none":
        return [], []
    homes = sorted(
        (d for d in dwellings if d.building_id == building.id and not d.collective),
        key=lambda d: d.id,
    )
    weights = (
        _persons(homes, snapshot, period.last_day)
        if building.split_key == "persons"
        else {d.id: d.shares for d in homes}
    )
    missing = [d for d, w in weights.items() if w is None]
    if missing:
        what = "household size" if building.split_key == "persons" else "shares"
        detail = f"no {what} for {', '.join(missing)}: the bill is not split"
        return [], [acc.Anomaly("split_key_missing", building.id, detail=detail)]
    if not any(weights.values()):
        detail = f"every {building.split_key} weight is 0 on {period.last_day}: not split"
        return [], [acc.Anomaly("split_key_missing", building.id, detail=detail)]
    unit = KEY_UNITS[building.split_key]
    return [
        (f"{d.id}, {d.address} ({weights[d.id]} {unit})", Decimal(weights[d.id] or 0))
        for d in homes
    ], []


def _persons(
    homes: Sequence[BuildingDwelling], snapshot: acc.Snapshot, day: date
) -> dict[str, int | None]:
    """Persons of the household living in each home on ``day``; 0 if vacant."""
    living = {
        o.dwelling_id: o.household_id
        for o in snapshot.occupancies
        if o.start <= day and (o.end is None or day < o.end)
    }
    out: dict[str, int | None] = {}
    for d in homes:
        hid = living.get(d.id)
        row = snapshot.households.get(hid) if hid else None
        out[d.id] = 0 if hid is None else (row.persons if row else None)
    return out


def _silent(
    rows: Sequence[acc.BindingRow],
    lifts: Mapping[str, Sequence[acc.LiftEvent]],
    counted: Period,
    zone: ZoneInfo,
) -> list[acc.Anomaly]:
    """A shared bin bound in the counted period without a lift there."""
    out = []
    for b in rows:
        eq = acc.equipment(b, zone)
        span = counted.clip(eq.valid_from, eq.valid_to)
        if span is None:
            continue
        days = {e.at.astimezone(zone).date() for e in lifts.get(b.bin_id, ())}
        if not any(span[0] <= d <= span[1] for d in days):
            detail = f"shared bin, no lift from {span[0]} to {span[1]}"
            out.append(acc.Anomaly("bin_without_lifts", b.bin_id, detail=detail))
    return out
