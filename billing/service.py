"""Billing runs and invoices: preview a period, issue it, credit notes, corrections.

Thin over two ports: the registry (one transaction per unit of work, audited) and
the telemetry store (a period's lifts and deposits read once, ``query_range``).
The bills are computed by billing/computation.py (over the pure modules), the rows
read and written by billing/registry_io.py; billing/document.py fixes the issued
document. docs/billing.md, "Billing runs and invoices", explains the choices:
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
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from billing import document
from billing import registry_io as rio
from billing import tariff as tariff_mod
from billing.computation import Computed, Progress, compute
from billing.errors import BillingInputError, BillingRunError
from billing.model import Bill, Correction, Period, Tariff
from core.registry import audit
from core.registry.errors import UnknownHousehold
from core.registry.models import (
    BillingCarry,
    BillingCorrection,
    BillingRun,
    Household,
    Invoice,
    InvoiceSeries,
)
from core.registry.service import Registry
from core.store.port import TelemetryStore

# Households per issuing transaction: small enough that a crash loses little work and
# the write lock is held briefly, large enough that 35,000 households are 70 commits.
ISSUE_BATCH: Final = 500
DUE_DAYS: Final = 30  # payment due this many days after issue (printed on the bill)


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
class _Issuing:
    """What every household's outcome in one issue (or re-issue) shares."""

    run_id: int
    tf: TariffFile
    computed: Computed
    actor: str
    issued_on: date


@dataclass(frozen=True)
class Issued:
    run_id: int
    invoices: list[str]  # numbers, in order
    carried: int
    cancelled: int
    already: bool = False  # the run was issued before: nothing was written


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
        computed = await compute(
            self._registry, self._store, tf.tariff, period, run_id=None, progress=progress
        )
        summary = computed.summary(tf.tariff, tf.digest, period)
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
        with self._registry.reading() as s:
            return rio.issued_run(s, territory, period)

    def run(self, run_id: int) -> Preview:
        with self._registry.reading() as s:
            return _preview_of(rio.get_run(s, run_id))

    def runs(self, limit: int = 100) -> list[dict[str, Any]]:
        """The latest runs first: what each is, its status and totals (no personal data)."""
        stmt = select(BillingRun).order_by(BillingRun.id.desc()).limit(limit)
        with self._registry.reading() as s:
            return [rio.run_view(r) for r in s.scalars(stmt)]

    # ---- issue -----------------------------------------------------------------------

    async def issue(
        self, run_id: int, *, actor: str, issued_on: date, progress: Progress | None = None
    ) -> Issued:
        """Number and store the run's invoices, carry or cancel the small amounts.

        Idempotent: an issued run returns its invoices and writes nothing. A run
        interrupted half-way is finished by calling this again (no gap, no duplicate).
        """
        with self._registry.reading() as s:
            run = rio.get_run(s, run_id)
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
        computed = await compute(
            self._registry, self._store, tf.tariff, period, run_id=run_id, progress=None
        )
        if computed.digest() != run.bills_digest:
            raise BillingRunError(
                f"run {run_id}: the registry or the events changed since the preview; "
                "preview the period again"
            )
        job = _Issuing(run_id, tf, computed, actor, issued_on)
        await asyncio.to_thread(self._issue_batches, job, progress)
        with self._registry.transaction() as s:
            stored = rio.get_run(s, run_id)
            stored.status, stored.issued_by = "issued", actor
            stored.issued_at = self._registry.now()
            audit.record(
                s, actor, "billing.issue", f"run:{run_id}", stored.issued_at, {"period": run.period}
            )
            return _issued_of(s, stored)

    def _issue_batches(self, job: _Issuing, progress: Progress | None) -> None:
        with self._registry.reading() as s:
            done = rio.settled_households(s, job.run_id)
        pending = [(a, b) for a, b in job.computed.bills if a.household_id not in done]
        issuer = job.tf.tariff.issuer
        assert issuer is not None  # checked before issuing
        series = (issuer.budget_code, job.issued_on.year)
        for start in range(0, len(pending), ISSUE_BATCH):
            with self._registry.transaction() as s:
                # The series row is locked once per batch (held until the commit), so
                # each invoice of the batch takes its number without another query.
                s.get(InvoiceSeries, series, with_for_update=True)
                for _, bill in pending[start : start + ISSUE_BATCH]:
                    self._settle(s, job, bill)
            if progress is not None:
                progress("issue", min(start + ISSUE_BATCH, len(pending)), len(pending))

    def _settle(self, s: Session, job: _Issuing, bill: Bill) -> None:
        """One household's outcome: an invoice, a carry, or nothing (cancelled)."""
        hid, run_id = bill.household_id, job.run_id
        for carry_id in job.computed.carry_ids.get(hid, ()):
            carry = s.get(BillingCarry, carry_id)
            if carry is not None:
                carry.settled_by_run = run_id
        if bill.disposition == "issue":
            self._add_invoice(s, job, bill)
        elif bill.disposition == "carry_over" and hid not in job.computed.collective.debtors:
            # a building's bill is never carried (billing_carry is per household): the
            # run lists it as building_bill_not_carried
            s.add(
                BillingCarry(
                    household_id=hid, period=bill.period.label, amount=bill.total, from_run=run_id
                )
            )

    def _add_invoice(self, s: Session, job: _Issuing, bill: Bill) -> str:
        computed, issued_on = job.computed, job.issued_on
        issuer = job.tf.tariff.issuer
        assert issuer is not None  # checked before issuing
        seq = rio.next_seq(s, issuer.budget_code, issued_on.year, locked=True)
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
            tariff_name=job.tf.tariff.name,
            issuer=issuer,
            debtor=debtor,
            run_id=job.run_id,
            split=computed.collective.splits.get(bill.household_id, ()),
        )
        # Not flushed one by one: the batch's invoices go in as one multi-row INSERT at
        # its commit, where a UNIQUE violation still rolls the whole batch back.
        rio.store_doc(s, doc, job.run_id, job.actor, self._registry.now(), flush=False)
        return doc.number

    # ---- credit notes, re-issue, corrections -----------------------------------------

    def credit_note(self, number: str, *, reason: str, actor: str, issued_on: date) -> str:
        """Cancel an issued invoice in full with a credit note; return its number."""
        if not reason.strip():
            raise BillingInputError("a credit note needs a reason")
        with self._registry.transaction() as s:
            original = rio.get_invoice(s, number)
            if original.kind != "invoice":
                raise BillingRunError(f"{number} is a credit note; only an invoice is cancelled")
            if original.cancelled_by is not None:
                raise BillingRunError(f"{number} is already cancelled by {original.cancelled_by}")
            doc = rio.checked_document(original)
            seq = rio.next_seq(s, doc.budget, issued_on.year)
            note = document.credit_note(
                doc,
                seq=seq,
                issued_on=issued_on,
                due_on=issued_on + timedelta(days=DUE_DAYS),
                reason=reason,
            )
            now = self._registry.now()
            rio.store_doc(s, note, original.run_id, actor, now)
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
            previous = rio.invoices_of(s, household_id, period)
            if not previous:
                raise BillingRunError(f"{household_id} has no invoice for {period} to re-issue")
            live = [i.number for i in previous if i.cancelled_by is None]
            if live:
                raise BillingRunError(
                    f"{live[0]} is still valid: cancel it with a credit note first"
                )
            run = rio.get_run(s, previous[-1].run_id or 0)  # issued invoices always have a run
        tf = TariffFile.parse(run.tariff_text, f"run {run.id} tariff")
        if tf.tariff.issuer is None:
            raise BillingInputError(f"{tf.tariff.name}: no [issuer] table; cannot issue bills")
        computed = await compute(
            self._registry,
            self._store,
            tf.tariff,
            Period.parse(period),
            run_id=run.id,
            only=household_id,
        )
        if not computed.bills:
            raise BillingRunError(f"{household_id}: nothing to bill for {period}")
        _, bill = computed.bills[0]
        job = _Issuing(run.id, tf, computed, actor, issued_on)
        with self._registry.transaction() as s:
            if bill.disposition != "issue":
                self._settle(s, job, bill)
                return None
            number = self._add_invoice(s, job, bill)
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
            return [rio.invoice_view(i) for i in s.scalars(stmt)]

    def document(self, number: str) -> document.InvoiceDoc:
        with self._registry.reading() as s:
            return rio.checked_document(rio.get_invoice(s, number))


def _preview_of(run: BillingRun, reused: bool = False) -> Preview:
    summary = json.loads(run.summary)
    summary["run"] = run.id
    summary["status"] = run.status
    return Preview(run.id, run.status, summary, json.loads(run.anomalies), reused=reused)


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
