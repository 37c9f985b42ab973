"""Billing's registry reads and writes, each in the caller's open session.

billing/service.py owns the transactions (one per unit of work, audited) and the
order of the steps; this module only turns rows into the pure modules' values
(billing/accounts.py, billing/collective.py) and stores the issued documents.
docs/billing.md, "Billing runs and invoices", explains the numbering and storage.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from billing import accounts as acc
from billing import collective as coll
from billing import document
from billing.errors import BillingRunError, UnknownInvoice, UnknownRun
from billing.model import Correction, Period
from core.registry.models import (
    Badge,
    BillingCarry,
    BillingCorrection,
    BillingRun,
    Binding,
    Building,
    Device,
    Dwelling,
    Household,
    Invoice,
    InvoiceSeries,
    Occupancy,
)

_Dated = TypeVar("_Dated", Occupancy, Badge)

Addresses = dict[str, tuple[str, ...]]  # household id -> postal address lines
CarryIds = dict[str, list[int]]  # household id -> the billing_carry rows its bill settles


# ---- the period's rows, as the pure modules take them --------------------------------


def snapshot(
    s: Session, period: Period, counted: Period, run_id: int | None, only: str | None
) -> tuple[acc.Snapshot, Addresses, CarryIds]:
    """What a run's bills are computed from; ``only``: one household (a re-issue)."""
    first = min(period.first_day, counted.first_day)
    occs = _occupancies(s, first, period.last_day, only)
    wanted = {o.household_id for o in occs}
    carries = _carries(s, period, run_id, only)
    found = acc.Snapshot(
        households=_households(s, wanted | set(carries), only),
        occupancies=occs,
        bindings=_bindings(s, first, period.last_day),
        badges=_badges(s, first, period.last_day, only),
        trucks=frozenset(s.scalars(select(Device.device_id).where(Device.kind == "truck"))),
        corrections=_corrections(s, period.label, only),
        carried={h: sum((a for _, a in rows), Decimal(0)) for h, rows in carries.items()},
    )
    carry_ids = {h: [i for i, _ in rows] for h, rows in carries.items()}
    return found, _addresses(s, occs), carry_ids


def _in_force(
    s: Session,
    model: type[_Dated],
    since: InstrumentedAttribute[date],
    until: InstrumentedAttribute[date | None],
    span: tuple[date, date],
    only: str | None,
) -> Sequence[_Dated]:
    """Rows whose half-open [since, until) meets the days of ``span``, by id."""
    first, last = span
    stmt = select(model).where(since <= last, or_(until.is_(None), until > first))
    if only is not None:
        stmt = stmt.where(model.household_id == only)
    return s.scalars(stmt.order_by(model.id)).all()


def _occupancies(s: Session, first: date, last: date, only: str | None) -> list[acc.OccupancyRow]:
    rows = _in_force(s, Occupancy, Occupancy.start, Occupancy.end, (first, last), only)
    return [acc.OccupancyRow(o.household_id, o.dwelling_id, o.start, o.end) for o in rows]


def _badges(s: Session, first: date, last: date, only: str | None) -> list[acc.BadgeRow]:
    rows = _in_force(s, Badge, Badge.valid_from, Badge.valid_to, (first, last), only)
    return [acc.BadgeRow(b.id, b.household_id, b.valid_from, b.valid_to) for b in rows]


def _households(s: Session, ids: set[str], only: str | None) -> dict[str, acc.HouseholdRow]:
    stmt = select(Household)
    if only is not None:
        stmt = stmt.where(Household.id == only)
    return {
        h.id: acc.HouseholdRow(h.id, h.name, h.size, h.kind) for h in s.scalars(stmt) if h.id in ids
    }


def _bindings(s: Session, first: date, last: date) -> list[acc.BindingRow]:
    start = datetime.combine(first - timedelta(days=1), time(0), tzinfo=UTC)  # zone margin
    end = datetime.combine(last + timedelta(days=2), time(0), tzinfo=UTC)
    stmt = (
        select(Binding, Device.volume_l, Device.stream)
        .join(Device, Device.device_id == Binding.device_id)
        .where(Device.kind == "bin", Binding.dwelling_id.is_not(None))
        .where(Binding.valid_from < end, or_(Binding.valid_to.is_(None), Binding.valid_to > start))
        .order_by(Binding.id)
    )
    return [
        acc.BindingRow(b.device_id, b.dwelling_id or "", volume, b.valid_from, b.valid_to, stream)
        for b, volume, stream in s.execute(stmt)
    ]


def _corrections(s: Session, label: str, only: str | None) -> dict[str, list[Correction]]:
    stmt = select(BillingCorrection).where(BillingCorrection.period == label)
    if only is not None:
        stmt = stmt.where(BillingCorrection.household_id == only)
    out: dict[str, list[Correction]] = {}
    for c in s.scalars(stmt.order_by(BillingCorrection.id)):
        out.setdefault(c.household_id, []).append(Correction(c.amount, c.operator, c.reason))
    return out


def _carries(
    s: Session, period: Period, run_id: int | None, only: str | None
) -> dict[str, list[tuple[int, Decimal]]]:
    """Amounts carried from earlier periods into this bill.

    Unsettled ones, plus (when the run is being issued or re-issued) those this run
    settled already, so a resumed issue computes the very bills of its preview.
    """
    settled: ColumnElement[bool] = BillingCarry.settled_by_run.is_(None)
    if run_id is not None:
        settled = or_(settled, BillingCarry.settled_by_run == run_id)
    stmt = select(BillingCarry).where(settled)
    if run_id is not None:
        stmt = stmt.where(BillingCarry.from_run != run_id)
    if only is not None:
        stmt = stmt.where(BillingCarry.household_id == only)
    out: dict[str, list[tuple[int, Decimal]]] = {}
    for c in s.scalars(stmt.order_by(BillingCarry.id)):
        if Period.parse(c.period).first_day < period.first_day:
            out.setdefault(c.household_id, []).append((c.id, c.amount))
    return out


def _addresses(s: Session, occs: Sequence[acc.OccupancyRow]) -> Addresses:
    """Each household's postal address: its latest dwelling's."""
    latest: dict[str, acc.OccupancyRow] = {}
    for o in occs:
        if o.household_id not in latest or o.start >= latest[o.household_id].start:
            latest[o.household_id] = o
    # every dwelling in one read: an IN list of 35,000 ids passes SQLite's variable limit
    places = {d.id: d for d in s.scalars(select(Dwelling))} if latest else {}
    out: Addresses = {}
    for hid, o in latest.items():
        d = places.get(o.dwelling_id)
        out[hid] = tuple(x for x in (d.address, d.commune) if x) if d else ()
    return out


def buildings(s: Session) -> coll.Buildings:
    """Every building and the dwellings in one (a few per territory: read whole)."""
    found = {
        b.id: coll.BuildingRow(
            b.id,
            b.name,
            b.manager_name,
            tuple((b.manager_address or "").splitlines()),
            b.split_key,
        )
        for b in s.scalars(select(Building))
    }
    stmt = select(Dwelling).where(Dwelling.building_id.is_not(None)).order_by(Dwelling.id)
    dwellings = [
        coll.BuildingDwelling(d.id, d.building_id or "", d.address, d.shares, d.collective)
        for d in s.scalars(stmt)
    ]
    return coll.Buildings(found, dwellings)


# ---- runs ----------------------------------------------------------------------------


def get_run(s: Session, run_id: int) -> BillingRun:
    run = s.get(BillingRun, run_id)
    if run is None:
        raise UnknownRun(f"billing run {run_id} does not exist")
    return run


def issued_run(s: Session, territory: str, period: str) -> BillingRun | None:
    stmt = select(BillingRun).where(
        BillingRun.territory == territory,
        BillingRun.period == period,
        BillingRun.status == "issued",
    )
    return s.scalars(stmt).first()


def run_view(r: BillingRun) -> dict[str, Any]:
    """What a run is, its status and totals (no personal data)."""
    return {
        "run": r.id,
        "territory": r.territory,
        "period": r.period,
        "tariff": r.tariff_name,
        "status": r.status,
        "created_at": r.created_at.isoformat(),
        "created_by": r.created_by,
        "issued_at": r.issued_at.isoformat() if r.issued_at else None,
        "households": r.households,
        "to_issue": r.to_issue,
        "total": str(r.total),
    }


def settled_households(s: Session, run_id: int) -> set[str]:
    """Households a half-done issue already wrote (invoice or carry), to resume after."""
    invoiced = s.scalars(
        select(Invoice.debtor_ref).where(Invoice.run_id == run_id, Invoice.kind == "invoice")
    )
    carried = s.scalars(select(BillingCarry.household_id).where(BillingCarry.from_run == run_id))
    return set(invoiced) | set(carried)


# ---- invoices ------------------------------------------------------------------------


def next_seq(s: Session, budget: str, year: int, *, locked: bool = False) -> int:
    """The next number of a budget's yearly series, in the caller's transaction.

    The counter row is locked (FOR UPDATE on PostgreSQL; SQLite has one writer), so
    two issuers never get the same number, and a rollback gives the number back.
    ``locked``: the caller's transaction has already read the row FOR UPDATE (an
    issuing batch does it once), so the session's copy is used without a query.
    """
    row = s.get(InvoiceSeries, (budget, year), with_for_update=None if locked else True)
    if row is None:
        row = InvoiceSeries(budget=budget, year=year, last_seq=0)
        s.add(row)
    row.last_seq += 1
    return row.last_seq


def store_doc(
    s: Session,
    doc: document.InvoiceDoc,
    run_id: int | None,
    actor: str,
    now: datetime,
    *,
    flush: bool = True,
) -> None:
    text = document.to_json(doc)  # document.digest(doc) is the SHA-256 of this very text
    s.add(
        Invoice(
            number=doc.number,
            kind=doc.kind,
            budget=doc.budget,
            year=doc.year,
            seq=doc.seq,
            run_id=run_id,
            debtor_ref=doc.debtor.ref,
            period=doc.period,
            total=doc.total,
            issued_at=now,
            issued_by=actor,
            document=text,
            digest=hashlib.sha256(text.encode()).hexdigest(),
            cancels=doc.cancels,
        )
    )
    if flush:
        s.flush()  # the UNIQUE constraints speak now, before the caller goes on


def checked_document(row: Invoice) -> document.InvoiceDoc:
    """The stored document, refused if its digest does not match (tampering, corruption)."""
    doc = document.from_json(row.document)
    if document.digest(doc) != row.digest:
        raise BillingRunError(f"invoice {row.number}: stored document does not match its digest")
    return doc


def get_invoice(s: Session, number: str) -> Invoice:
    row = s.scalars(select(Invoice).where(Invoice.number == number)).first()
    if row is None:
        raise UnknownInvoice(f"invoice {number} does not exist")
    return row


def invoices_of(s: Session, household_id: str, period: str) -> list[Invoice]:
    """A household's invoices (not credit notes) for a period, oldest first."""
    stmt = select(Invoice).where(
        Invoice.debtor_ref == household_id,
        Invoice.period == period,
        Invoice.kind == "invoice",
    )
    return list(s.scalars(stmt.order_by(Invoice.id)))


def invoice_view(i: Invoice) -> dict[str, Any]:
    return {
        "number": i.number,
        "kind": i.kind,
        "budget": i.budget,
        "year": i.year,
        "seq": i.seq,
        "run": i.run_id,
        "debtor": i.debtor_ref,
        "period": i.period,
        "total": str(i.total),
        "issued_at": i.issued_at.isoformat(),
        "cancels": i.cancels,
        "cancelled_by": i.cancelled_by,
    }
