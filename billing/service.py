"""Billing runs and invoices: preview a period, issue it, credit notes, corrections.

Thin over two ports: the registry (one transaction per unit of work, audited) and
the telemetry store (a period's lifts and deposits read once, ``query_range``).
The rules are the pure modules': billing/accounts.py builds the accounts and finds
the anomalies, billing/rules.py computes each bill, billing/document.py fixes the
issued document. docs/billing.md, "Billing runs and invoices", explains the choices:
- numbers come from ``invoice_series`` bumped in the transaction that inserts the
  invoice, so a rolled-back batch leaves no gap;
- issuing commits a batch of households at a time; a crash is resumed by issuing the
  run again, which skips the households that already have their invoice or carry;
- issuing recomputes every bill and refuses if anything differs from the preview;
- an issued run, or an issued period, is returned as it is: nothing is written.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import tomllib
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import Session

from billing import accounts as acc
from billing import collective as coll
from billing import document, rules
from billing import tariff as tariff_mod
from billing.errors import BillingError, BillingInputError
from billing.model import Account, Bill, Correction, Period, Tariff, bill_as_dict
from core.records import BIN_EVENT, Record
from core.registry import audit
from core.registry.errors import UnknownHousehold
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
from core.registry.service import Registry
from core.store.port import TelemetryStore

# Households per issuing transaction: small enough that a crash loses little work and
# the write lock is held briefly, large enough that 35,000 households are 70 commits.
ISSUE_BATCH: Final = 500
PROGRESS_EVERY: Final = 1000  # households between two progress reports
DUE_DAYS: Final = 30  # payment due this many days after issue (printed on the bill)
LIFT_TAGS: Final = (("kind", "lift"),)
DEPOSIT_TAGS: Final = (("kind", "deposit"),)

Progress = Callable[[str, int, int], None]  # (stage, done, total)


class BillingRunError(BillingError):
    """A billing run or invoice action the registry's state does not allow."""


class UnknownRun(BillingRunError):
    """A run id the registry does not hold."""


class UnknownInvoice(BillingRunError):
    """An invoice number the registry does not hold."""


@dataclass(frozen=True)
class TariffFile:
    """A tariff with the exact text it was read from (kept with the run)."""

    tariff: Tariff
    text: str
    source: str

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()

    @classmethod
    def parse(cls, text: str, source: str) -> TariffFile:
        return cls(tariff_mod.parse(tomllib.loads(text), source), text, source)


def read_tariff(ref: str) -> TariffFile:
    """A ``.toml`` file, or the name of a bundled tariff."""
    if ref.endswith(".toml"):
        return TariffFile.parse(Path(ref).read_text(encoding="utf-8"), ref)
    res = resources.files("billing") / "tariffs" / f"{ref}.toml"
    if not res.is_file():
        tariff_mod.bundled(ref)  # raises the error naming the known tariffs
    return TariffFile.parse(res.read_text(encoding="utf-8"), f"{ref}.toml")


@dataclass(frozen=True)
class Preview:
    run_id: int
    status: str
    summary: dict[str, Any]
    anomalies: list[dict[str, Any]]
    bills: list[dict[str, str]] = field(default_factory=list)  # household, total, disposition
    reused: bool = False  # an issued run of this period, returned as it is


@dataclass(frozen=True)
class Issued:
    run_id: int
    invoices: list[str]  # numbers, in order
    carried: int
    cancelled: int
    already: bool = False  # the run was issued before: nothing was written


@dataclass
class _Computed:
    """A run's bills, recomputed identically at preview and at issue."""

    snapshot: acc.Snapshot
    dwellings: dict[str, tuple[str, ...]]
    carry_ids: dict[str, list[int]]
    bills: list[tuple[Account, Bill]]
    failures: list[acc.Anomaly]
    anomalies: list[acc.Anomaly]
    collective: coll.Collective = field(default_factory=coll.Collective)  # buildings' debtors

    def digest(self) -> str:
        h = hashlib.sha256()
        for _, bill in self.bills:
            split = self.collective.splits.get(bill.household_id)
            as_dict = bill_as_dict(bill, list(split) if split is not None else None)
            h.update(json.dumps(as_dict, sort_keys=True).encode())
        for f in self.failures:
            h.update(json.dumps(f.as_dict(), sort_keys=True).encode())
        return h.hexdigest()


class BillingService:
    def __init__(self, registry: Registry, store: TelemetryStore) -> None:
        self._registry = registry
        self._store = store

    # ---- preview ---------------------------------------------------------------------

    async def preview(
        self,
        tf: TariffFile,
        period: Period,
        *,
        actor: str,
        progress: Progress | None = None,
    ) -> Preview:
        """Compute every bill of ``period`` and store the run as a preview.

        A period already issued for the territory is returned as it is (nothing written).
        """
        issued = self._issued_run(tf.tariff.territory, period.label)
        if issued is not None:
            return _preview_of(issued, reused=True)
        computed = await self._compute(tf, period, run_id=None, progress=progress)
        summary = _summary(tf, period, computed)
        found = [a.as_dict() for a in computed.failures + computed.anomalies]
        with self._registry.transaction() as s:
            run = BillingRun(
                territory=tf.tariff.territory,
                period=period.label,
                tariff_name=tf.tariff.name,
                tariff_digest=tf.digest,
                tariff_text=tf.text,
                status="preview",
                created_at=self._registry.now(),
                created_by=actor,
                households=len(computed.bills),
                to_issue=summary["to_issue"]["count"],
                total=Decimal(summary["to_issue"]["total"]),
                carried=Decimal(summary["carry_over"]["total"]),
                cancelled=Decimal(summary["cancel"]["total"]),
                bills_digest=computed.digest(),
                summary=json.dumps(summary, sort_keys=True),
                anomalies=json.dumps(found, sort_keys=True),
            )
            s.add(run)
            s.flush()
            audit.record(
                s,
                actor,
                "billing.preview",
                f"run:{run.id}",
                run.created_at,
                {"period": period.label},
            )
            summary["run"] = run.id
        bills = [
            {"household": b.household_id, "total": str(b.total), "disposition": b.disposition}
            for _, b in computed.bills
        ]
        return Preview(run.id, "preview", summary, found, bills)

    def _issued_run(self, territory: str, period: str) -> BillingRun | None:
        stmt = select(BillingRun).where(
            BillingRun.territory == territory,
            BillingRun.period == period,
            BillingRun.status == "issued",
        )
        with self._registry.reading() as s:
            return s.scalars(stmt).first()

    def run(self, run_id: int) -> Preview:
        with self._registry.reading() as s:
            return _preview_of(_run(s, run_id))

    def runs(self, limit: int = 100) -> list[dict[str, Any]]:
        """The latest runs first: what each is, its status and totals (no personal data)."""
        stmt = select(BillingRun).order_by(BillingRun.id.desc()).limit(limit)
        with self._registry.reading() as s:
            return [
                {
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
                for r in s.scalars(stmt)
            ]

    # ---- issue -----------------------------------------------------------------------

    async def issue(
        self, run_id: int, *, actor: str, issued_on: date, progress: Progress | None = None
    ) -> Issued:
        """Number and store the run's invoices, carry or cancel the small amounts.

        Idempotent: an issued run returns its invoices and writes nothing. A run
        interrupted half-way is finished by calling this again (no gap, no duplicate).
        """
        with self._registry.reading() as s:
            run = _run(s, run_id)
            if run.status == "issued":
                return _issued_of(s, run, already=True)
        other = self._issued_run(run.territory, run.period)
        if other is not None:
            raise BillingRunError(f"{run.period} is already issued by run {other.id}")
        tf = TariffFile.parse(run.tariff_text, f"run {run_id} tariff")
        if tf.tariff.issuer is None:
            raise BillingInputError(
                f"{tf.tariff.name}: the tariff file has no [issuer] table; cannot issue bills"
            )
        period = Period.parse(run.period)
        computed = await self._compute(tf, period, run_id=run_id, progress=None)
        if computed.digest() != run.bills_digest:
            raise BillingRunError(
                f"run {run_id}: the registry or the events changed since the preview; "
                "preview the period again"
            )
        await asyncio.to_thread(self._issue_batches, run, tf, computed, actor, issued_on, progress)
        with self._registry.transaction() as s:
            stored = _run(s, run_id)
            stored.status, stored.issued_by = "issued", actor
            stored.issued_at = self._registry.now()
            audit.record(
                s, actor, "billing.issue", f"run:{run_id}", stored.issued_at, {"period": run.period}
            )
            return _issued_of(s, stored)

    def _issue_batches(
        self,
        run: BillingRun,
        tf: TariffFile,
        computed: _Computed,
        actor: str,
        issued_on: date,
        progress: Progress | None,
    ) -> None:
        with self._registry.reading() as s:
            done = _settled_households(s, run.id)
        pending = [(a, b) for a, b in computed.bills if a.household_id not in done]
        issuer = tf.tariff.issuer
        assert issuer is not None  # checked before issuing
        for start in range(0, len(pending), ISSUE_BATCH):
            with self._registry.transaction() as s:
                # The series row is locked once per batch (held until the commit), so
                # each invoice of the batch takes its number without another query.
                s.get(InvoiceSeries, (issuer.budget_code, issued_on.year), with_for_update=True)
                for _, bill in pending[start : start + ISSUE_BATCH]:
                    self._settle(s, run.id, tf, computed, bill, actor, issued_on)
            if progress is not None:
                progress("issue", min(start + ISSUE_BATCH, len(pending)), len(pending))

    def _settle(
        self,
        s: Session,
        run_id: int,
        tf: TariffFile,
        computed: _Computed,
        bill: Bill,
        actor: str,
        issued_on: date,
    ) -> None:
        """One household's outcome: an invoice, a carry, or nothing (cancelled)."""
        hid = bill.household_id
        for carry_id in computed.carry_ids.get(hid, ()):
            carry = s.get(BillingCarry, carry_id)
            if carry is not None:
                carry.settled_by_run = run_id
        if bill.disposition == "issue":
            self._add_invoice(s, run_id, tf, computed, bill, actor, issued_on)
        elif bill.disposition == "carry_over" and hid not in computed.collective.debtors:
            # a building's bill is never carried (billing_carry is per household): the
            # run lists it as building_bill_not_carried
            s.add(
                BillingCarry(
                    household_id=hid, period=bill.period.label, amount=bill.total, from_run=run_id
                )
            )

    def _add_invoice(
        self,
        s: Session,
        run_id: int,
        tf: TariffFile,
        computed: _Computed,
        bill: Bill,
        actor: str,
        issued_on: date,
    ) -> str:
        issuer = tf.tariff.issuer
        assert issuer is not None  # checked before issuing
        seq = next_seq(s, issuer.budget_code, issued_on.year, locked=True)
        debtor = computed.collective.debtors.get(bill.household_id)
        if debtor is None:
            hh = computed.snapshot.households[bill.household_id]
            debtor = document.Debtor(
                bill.household_id, hh.name or bill.household_id, computed.dwellings.get(hh.id, ())
            )
        doc = document.doc_for(
            bill,
            seq=seq,
            issued_on=issued_on,
            due_on=issued_on + timedelta(days=DUE_DAYS),
            tariff_name=tf.tariff.name,
            issuer=issuer,
            debtor=debtor,
            run_id=run_id,
            split=computed.collective.splits.get(bill.household_id, ()),
        )
        # Not flushed one by one: the batch's invoices go in as one multi-row INSERT at
        # its commit, where a UNIQUE violation still rolls the whole batch back.
        _store_doc(s, doc, run_id, actor, self._registry.now(), flush=False)
        return doc.number

    # ---- credit notes, re-issue, corrections -----------------------------------------

    def credit_note(self, number: str, *, reason: str, actor: str, issued_on: date) -> str:
        """Cancel an issued invoice in full with a credit note; return its number."""
        if not reason.strip():
            raise BillingInputError("a credit note needs a reason")
        with self._registry.transaction() as s:
            original = _invoice(s, number)
            if original.kind != "invoice":
                raise BillingRunError(f"{number} is a credit note; only an invoice is cancelled")
            if original.cancelled_by is not None:
                raise BillingRunError(f"{number} is already cancelled by {original.cancelled_by}")
            doc = checked_document(original)
            seq = next_seq(s, doc.budget, issued_on.year)
            note = document.credit_note(
                doc,
                seq=seq,
                issued_on=issued_on,
                due_on=issued_on + timedelta(days=DUE_DAYS),
                reason=reason,
            )
            now = self._registry.now()
            _store_doc(s, note, original.run_id, actor, now)
            original.cancelled_by = note.number
            audit.record(
                s,
                actor,
                "billing.credit_note",
                f"invoice:{number}",
                now,
                {"credit_note": note.number, "reason": reason},
            )
            return note.number

    async def reissue(
        self,
        household_id: str,
        period: str,
        *,
        actor: str,
        issued_on: date,
        reason: str | None = None,
    ) -> str | None:
        """A new invoice for a period whose invoice a credit note cancelled.

        Computed afresh (with the corrections added since); None when the new amount
        is under the recovery threshold (carried over or cancelled as the tariff says).
        """
        with self._registry.reading() as s:
            stmt = select(Invoice).where(
                Invoice.debtor_ref == household_id,
                Invoice.period == period,
                Invoice.kind == "invoice",
            )
            previous = list(s.scalars(stmt.order_by(Invoice.id)))
            if not previous:
                raise BillingRunError(f"{household_id} has no invoice for {period} to re-issue")
            live = [i.number for i in previous if i.cancelled_by is None]
            if live:
                raise BillingRunError(
                    f"{live[0]} is still valid: cancel it with a credit note first"
                )
            run = _run(s, previous[-1].run_id or 0)  # issued invoices always have a run
        tf = TariffFile.parse(run.tariff_text, f"run {run.id} tariff")
        if tf.tariff.issuer is None:
            raise BillingInputError(f"{tf.tariff.name}: no [issuer] table; cannot issue bills")
        computed = await self._compute(tf, Period.parse(period), run_id=run.id, only=household_id)
        if not computed.bills:
            raise BillingRunError(f"{household_id}: nothing to bill for {period}")
        _, bill = computed.bills[0]
        with self._registry.transaction() as s:
            if bill.disposition != "issue":
                self._settle(s, run.id, tf, computed, bill, actor, issued_on)
                return None
            number = self._add_invoice(s, run.id, tf, computed, bill, actor, issued_on)
            audit.record(
                s,
                actor,
                "billing.reissue",
                f"invoice:{number}",
                self._registry.now(),
                {"household": household_id, "period": period, "reason": reason or ""},
            )
            return number

    def add_correction(
        self, household_id: str, period: str, amount: Decimal, *, operator: str, reason: str
    ) -> int:
        """Store a manual amount for a household's period, audited; return its id.

        It enters the next computation of that period: an issued invoice is not
        changed, it is cancelled by a credit note and re-issued.
        """
        Correction(amount, operator, reason)  # refuses a missing operator or reason
        label = Period.parse(period).label
        if amount != amount.quantize(Decimal("0.01")):
            raise BillingInputError(f"correction {amount}: at most 2 decimals (cents)")
        with self._registry.transaction() as s:
            if s.get(Household, household_id) is None:
                raise UnknownHousehold(f"household {household_id!r} is not registered")
            now = self._registry.now()
            row = BillingCorrection(
                household_id=household_id,
                period=label,
                amount=amount,
                operator=operator,
                reason=reason,
                created_at=now,
            )
            s.add(row)
            s.flush()
            audit.record(
                s,
                operator,
                "billing.correction",
                f"household:{household_id}",
                now,
                {"period": label, "amount": str(amount), "reason": reason, "correction": row.id},
            )
            return row.id

    # ---- reading ---------------------------------------------------------------------

    def invoices(self, run_id: int | None = None) -> list[dict[str, Any]]:
        stmt = select(Invoice).order_by(Invoice.budget, Invoice.year, Invoice.seq)
        if run_id is not None:
            stmt = stmt.where(Invoice.run_id == run_id)
        with self._registry.reading() as s:
            return [_invoice_view(i) for i in s.scalars(stmt)]

    def document(self, number: str) -> document.InvoiceDoc:
        with self._registry.reading() as s:
            return checked_document(_invoice(s, number))

    # ---- the computation (shared by preview, issue, re-issue) -------------------------

    async def _compute(
        self,
        tf: TariffFile,
        period: Period,
        *,
        run_id: int | None,
        progress: Progress | None = None,
        only: str | None = None,
    ) -> _Computed:
        tariff = tf.tariff
        zone = ZoneInfo(tariff.timezone)
        counted = acc.event_period(period, tariff.variable_in_arrears)
        # Registry reads and the computation run in a worker thread: a 35,000-household
        # run must not stall the event loop that serves ingestion and HTTP meanwhile.
        snapshot, dwellings, carry_ids = await asyncio.to_thread(
            self._snapshot, period, counted, run_id, only
        )
        events = await self._events(counted, zone)
        # A re-issue (``only``) is one household's: buildings are billed by runs only.
        buildings = coll.Buildings() if only else await asyncio.to_thread(self._buildings)

        def pure() -> tuple[list[tuple[Account, Bill]], list[acc.Anomaly], list[acc.Anomaly]]:
            # households without the buildings' shared bins (billed to the managers)
            homes, home_events = coll.without_shared(snapshot, events, buildings)
            accounts = acc.accounts(homes, home_events, period, zone)
            bills, failures = _bills(tariff, accounts, period, snapshot, progress)
            found = (
                []
                if only
                else acc.anomalies(homes, home_events, period, zone, tariff.variable_in_arrears)
            )
            return bills, failures, coll.tidy(found, snapshot, buildings)

        bills, failures, found = await asyncio.to_thread(pure)
        shared = coll.bill_buildings(tariff, snapshot, events, buildings, period, zone)
        return _Computed(
            snapshot,
            dwellings,
            carry_ids,
            bills + shared.bills,
            failures + shared.failures,
            found + shared.anomalies,
            shared,
        )

    def _buildings(self) -> coll.Buildings:
        with self._registry.reading() as s:
            return _buildings(s)

    def _snapshot(
        self, period: Period, counted: Period, run_id: int | None, only: str | None
    ) -> tuple[acc.Snapshot, dict[str, tuple[str, ...]], dict[str, list[int]]]:
        first = min(period.first_day, counted.first_day)
        with self._registry.reading() as s:
            occs = _occupancies(s, first, period.last_day, only)
            wanted = {o.household_id for o in occs}
            carries = _carries(s, period, run_id, only)
            households = _households(s, wanted | set(carries), only)
            snapshot = acc.Snapshot(
                households=households,
                occupancies=occs,
                bindings=_bindings(s, first, period.last_day),
                badges=_badges(s, first, period.last_day, only),
                trucks=frozenset(s.scalars(select(Device.device_id).where(Device.kind == "truck"))),
                corrections=_corrections(s, period.label, only),
                carried={h: sum((a for _, a in rows), Decimal(0)) for h, rows in carries.items()},
            )
            addresses = _addresses(s, occs)
        carry_ids = {h: [i for i, _ in rows] for h, rows in carries.items()}
        return snapshot, addresses, carry_ids

    async def _events(self, counted: Period, zone: ZoneInfo) -> acc.Events:
        start = _ns(datetime.combine(counted.first_day, time(0), tzinfo=zone))
        end = _ns(datetime.combine(counted.last_day + timedelta(days=1), time(0), tzinfo=zone))
        lifts = await self._store.query_range(BIN_EVENT, LIFT_TAGS, start, end)
        deposits = await self._store.query_range(BIN_EVENT, DEPOSIT_TAGS, start, end)
        return acc.Events(
            lifts=[_lift(r) for r in lifts],
            deposits=[d for r in deposits if (d := _deposit(r)) is not None],
        )


# ---- pure helpers of the service ----------------------------------------------------


def _bills(
    tariff: Tariff,
    accounts: Sequence[Account],
    period: Period,
    snapshot: acc.Snapshot,
    progress: Progress | None,
) -> tuple[list[tuple[Account, Bill]], list[acc.Anomaly]]:
    """Every account's bill; one the tariff cannot price is listed, not fatal."""
    bills: list[tuple[Account, Bill]] = []
    failures: list[acc.Anomaly] = []
    for n, account in enumerate(accounts, start=1):
        carried = snapshot.carried.get(account.household_id, Decimal(0))
        try:
            bills.append((account, rules.compute(tariff, account, period, carried_over=carried)))
        except BillingInputError as err:
            failures.append(
                acc.Anomaly(
                    "cannot_price", account.household_id, account.household_id, detail=str(err)
                )
            )
        if progress is not None and (n % PROGRESS_EVERY == 0 or n == len(accounts)):
            progress("compute", n, len(accounts))
    return bills, failures


def _summary(tf: TariffFile, period: Period, computed: _Computed) -> dict[str, Any]:
    out: dict[str, Any] = {
        "territory": tf.tariff.territory,
        "tariff": tf.tariff.name,
        "tariff_digest": tf.digest,
        "period": period.label,
        "households": len(computed.bills) + len(computed.failures),
        "cannot_price": len(computed.failures),
        "buildings": len(computed.collective.bills),
    }
    for disposition in ("issue", "carry_over", "cancel"):
        chosen = [b for _, b in computed.bills if b.disposition == disposition]
        total = sum((b.total for b in chosen), Decimal("0.00"))
        key = "to_issue" if disposition == "issue" else disposition
        out[key] = {"count": len(chosen), "total": str(total)}
    out["excluded"] = dict(
        sorted(Counter(e.reason for _, b in computed.bills for e in b.excluded).items())
    )
    everything = computed.failures + computed.anomalies
    out["anomalies"] = dict(sorted(Counter(a.reason for a in everything).items()))
    return out


def _preview_of(run: BillingRun, reused: bool = False) -> Preview:
    summary = json.loads(run.summary)
    summary["run"] = run.id
    summary["status"] = run.status
    return Preview(run.id, run.status, summary, json.loads(run.anomalies), reused=reused)


def _lift(r: Record) -> acc.LiftEvent:
    weight = r.field("weight_kg")
    # a float from the store: its shortest repr is the value the device sent
    kg = Decimal(str(weight)) if isinstance(weight, int | float) else None
    return acc.LiftEvent(r.device_id, _at(r.time_ns), kg)


def _deposit(r: Record) -> acc.DepositEvent | None:
    badge = r.field("badge")
    return acc.DepositEvent(r.device_id, badge, _at(r.time_ns)) if isinstance(badge, str) else None


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _at(ns: int) -> datetime:
    return _EPOCH + timedelta(microseconds=ns // 1000)


def _ns(at: datetime) -> int:
    return (at - _EPOCH) // timedelta(microseconds=1) * 1000


# ---- registry reads and writes (open session) --------------------------------------


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


def _store_doc(
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


def _run(s: Session, run_id: int) -> BillingRun:
    run = s.get(BillingRun, run_id)
    if run is None:
        raise UnknownRun(f"billing run {run_id} does not exist")
    return run


def _invoice(s: Session, number: str) -> Invoice:
    row = s.scalars(select(Invoice).where(Invoice.number == number)).first()
    if row is None:
        raise UnknownInvoice(f"invoice {number} does not exist")
    return row


def _invoice_view(i: Invoice) -> dict[str, Any]:
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


def _issued_of(s: Session, run: BillingRun, already: bool = False) -> Issued:
    numbers = list(
        s.scalars(
            select(Invoice.number)
            .where(Invoice.run_id == run.id, Invoice.kind == "invoice")
            .order_by(Invoice.id)
        )
    )
    carried = s.scalars(select(BillingCarry.id).where(BillingCarry.from_run == run.id)).all()
    summary = json.loads(run.summary)
    return Issued(run.id, numbers, len(carried), int(summary["cancel"]["count"]), already)


def _settled_households(s: Session, run_id: int) -> set[str]:
    """Households a half-done issue already wrote (invoice or carry), to resume after."""
    invoiced = s.scalars(
        select(Invoice.debtor_ref).where(Invoice.run_id == run_id, Invoice.kind == "invoice")
    )
    carried = s.scalars(select(BillingCarry.household_id).where(BillingCarry.from_run == run_id))
    return set(invoiced) | set(carried)


def _occupancies(s: Session, first: date, last: date, only: str | None) -> list[acc.OccupancyRow]:
    stmt = select(Occupancy).where(
        Occupancy.start <= last, or_(Occupancy.end.is_(None), Occupancy.end > first)
    )
    if only is not None:
        stmt = stmt.where(Occupancy.household_id == only)
    return [
        acc.OccupancyRow(o.household_id, o.dwelling_id, o.start, o.end)
        for o in s.scalars(stmt.order_by(Occupancy.id))
    ]


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
        select(Binding, Device.volume_l)
        .join(Device, Device.device_id == Binding.device_id)
        .where(Device.kind == "bin", Binding.dwelling_id.is_not(None))
        .where(Binding.valid_from < end, or_(Binding.valid_to.is_(None), Binding.valid_to > start))
        .order_by(Binding.id)
    )
    return [
        acc.BindingRow(b.device_id, b.dwelling_id or "", volume, b.valid_from, b.valid_to)
        for b, volume in s.execute(stmt)
    ]


def _badges(s: Session, first: date, last: date, only: str | None) -> list[acc.BadgeRow]:
    stmt = select(Badge).where(
        Badge.valid_from <= last, or_(Badge.valid_to.is_(None), Badge.valid_to > first)
    )
    if only is not None:
        stmt = stmt.where(Badge.household_id == only)
    return [
        acc.BadgeRow(b.id, b.household_id, b.valid_from, b.valid_to)
        for b in s.scalars(stmt.order_by(Badge.id))
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


def _addresses(s: Session, occs: Sequence[acc.OccupancyRow]) -> dict[str, tuple[str, ...]]:
    """Each household's postal address: its latest dwelling's."""
    latest: dict[str, acc.OccupancyRow] = {}
    for o in occs:
        if o.household_id not in latest or o.start >= latest[o.household_id].start:
            latest[o.household_id] = o
    # every dwelling in one read: an IN list of 35,000 ids passes SQLite's variable limit
    places = {d.id: d for d in s.scalars(select(Dwelling))} if latest else {}
    out: dict[str, tuple[str, ...]] = {}
    for hid, o in latest.items():
        d = places.get(o.dwelling_id)
        out[hid] = tuple(x for x in (d.address, d.commune) if x) if d else ()
    return out


def _buildings(s: Session) -> coll.Buildings:
    """Every building and the dwellings in one (a few per territory: read whole)."""
    buildings = {
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
    return coll.Buildings(buildings, dwellings)
