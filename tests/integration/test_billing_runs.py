"""Billing runs end to end: a real registry migrated by Alembic (SQLite and PostgreSQL),
the embedded telemetry store with events written through its adapter, the bundled
Batzendorf tariff."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from billing import service as service_mod
from billing.errors import BillingInputError, BillingRunError
from billing.model import Period
from billing.service import BillingService, TariffFile, read_tariff
from core.records import BIN_EVENT, Record
from core.registry import Registry
from core.registry.models import (
    AuditEntry,
    Badge,
    BillingCarry,
    BillingRun,
    Binding,
    Device,
    Dwelling,
    Household,
    Invoice,
    InvoiceImmutable,
    Occupancy,
)
from core.store.embedded import EmbeddedStore
from tests import billing_fixtures as shared
from tests.billing_fixtures import at
from tests.clock import Clock
from tests.conftest import REGISTRY_BACKENDS

# the shared fixtures, with this module's clock below
registry, store, billing = shared.registry, shared.store, shared.billing
# every test on both registry backends
pytestmark = pytest.mark.parametrize("registry", REGISTRY_BACKENDS, indirect=True)

S1 = Period.semester(2013, 1)
S2 = Period.semester(2013, 2)
T0 = datetime(2013, 7, 2, 9, 0, tzinfo=UTC)
SINCE = datetime(2010, 1, 1, tzinfo=UTC)
ISSUED_S1 = date(2013, 7, 10)
ISSUED_S2 = date(2013, 12, 28)
OPERATOR = "agent.facturation"


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def batz() -> TariffFile:
    return read_tariff("batzendorf-2013")


def ns(when: datetime) -> int:
    return int(when.timestamp()) * 10**9


def lift(device_id: str, day: date, source: str = "truck-1") -> Record:
    return Record(BIN_EVENT, device_id, ns(at(day)), (("source", source),), (("kind", "lift"),))


def deposit(container: str, badge: str, day: date) -> Record:
    fields = (("badge", badge), ("source", container))
    return Record(BIN_EVENT, container, ns(at(day, 18)), fields, (("kind", "deposit"),))


def weekly(device_id: str, first: date, count: int) -> list[Record]:
    return [lift(device_id, first + timedelta(days=7 * i)) for i in range(count)]


def settle(
    registry: Registry,
    hid: str,
    dwelling: str,
    start: date,
    end: date | None = None,
    bin_id: str | None = None,
) -> None:
    """A household living in ``dwelling`` over [start, end), with its 120 L bin there."""
    with registry.transaction() as s:
        if s.get(Dwelling, dwelling) is None:
            s.add(Dwelling(id=dwelling, address=f"1 rue {dwelling}", commune="Batzendorf"))
        s.add(Household(id=hid, name=f"Famille {hid}", kind="primary"))
        s.flush()  # no relationships declared: parents first for the foreign keys
        s.add(Occupancy(household_id=hid, dwelling_id=dwelling, start=start, end=end))
        if bin_id is not None:
            s.add(Device(device_id=bin_id, kind="bin", volume_l=120, created_at=SINCE))
            s.flush()
            s.add(Binding(device_id=bin_id, dwelling_id=dwelling, valid_from=SINCE))


def count(registry: Registry, model: type[object]) -> int:
    with registry.reading() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


async def preview_and_issue(
    billing: BillingService, tf: TariffFile, period: Period, issued_on: date
) -> list[str]:
    run = await billing.preview(tf, period, actor=OPERATOR)
    return (await billing.issue(run.run_id, actor=OPERATOR, issued_on=issued_on)).invoices


async def test_batzendorf_move_in_on_15_march_is_invoiced_55_41_through_the_whole_path(
    registry: Registry, store: EmbeddedStore, billing: BillingService, batz: TariffFile
) -> None:
    settle(registry, "H1", "D1", date(2013, 3, 15), bin_id="B1")
    await store.write(weekly("B1", date(2013, 3, 18), 7))
    seen: list[tuple[str, int, int]] = []
    run = await billing.preview(batz, S1, actor=OPERATOR, progress=lambda *p: seen.append(p))
    assert run.bills == [{"household": "H1", "total": "55.41", "disposition": "issue"}]
    assert run.summary["to_issue"] == {"count": 1, "total": "55.41"}
    assert seen[-1] == ("compute", 1, 1)
    issued = await billing.issue(run.run_id, actor=OPERATOR, issued_on=ISSUED_S1)
    assert issued.invoices == ["2013-OM-000001"]
    doc = billing.document("2013-OM-000001")
    assert [line.amount for line in doc.lines] == [Decimal(x) for x in ("25.96", "9.85", "19.60")]
    assert doc.total == Decimal("55.41")
    assert (doc.debtor.ref, doc.debtor.address) == ("H1", ("1 rue D1", "Batzendorf"))
    assert doc.issuer.deliberation and "tribunal judiciaire" in doc.issuer.appeal
    assert doc.due_on == ISSUED_S1 + timedelta(days=30)
    assert billing.invoices(run.run_id)[0]["total"] == "55.41"


async def test_numbers_are_gapless_across_two_runs_of_a_year_and_restart_per_budget_and_year(
    registry: Registry, billing: BillingService, batz: TariffFile
) -> None:
    for n in (1, 2, 3):
        settle(registry, f"H{n}", f"D{n}", date(2012, 1, 1), bin_id=f"B{n}")
    first = await preview_and_issue(billing, batz, S1, ISSUED_S1)
    second = await preview_and_issue(billing, batz, S2, ISSUED_S2)
    assert first + second == [f"2013-OM-{n:06d}" for n in range(1, 7)]
    other_budget = TariffFile.parse(
        batz.text.replace('budget_code = "OM"', 'budget_code = "RI"').replace(
            'territory = "batzendorf"', 'territory = "batzendorf-annexe"'
        ),
        "annexe.toml",
    )
    assert await preview_and_issue(billing, other_budget, S2, date(2014, 1, 6)) == [
        f"2014-RI-{n:06d}" for n in range(1, 4)
    ]
    note = billing.credit_note(
        "2013-OM-000006", reason="erreur", actor=OPERATOR, issued_on=date(2014, 1, 7)
    )
    assert note == "2014-OM-000001"


async def test_an_issued_invoice_is_refused_any_change_by_the_service_and_by_the_trigger(
    registry: Registry, billing: BillingService, batz: TariffFile
) -> None:
    settle(registry, "H1", "D1", date(2012, 1, 1), bin_id="B1")
    [number] = await preview_and_issue(billing, batz, S1, ISSUED_S1)
    with pytest.raises(InvoiceImmutable, match="total cannot change"), registry.transaction() as s:
        s.scalars(select(Invoice)).one().total = Decimal("1.00")
    with pytest.raises(InvoiceImmutable, match="never deleted"), registry.transaction() as s:
        s.delete(s.scalars(select(Invoice)).one())
    # Raw SQL skips the ORM's guard: the database's own triggers must refuse it
    # (0004 on SQLite, 0007 on PostgreSQL), each statement in its own transaction.
    for raw_sql, refusal in (
        ("UPDATE invoice SET total = '0.00'", "cannot change"),
        ("UPDATE invoice SET document = '{}', digest = 'x'", "cannot change"),
        ("UPDATE invoice SET cancelled_by = 'X'", None),
        ("UPDATE invoice SET cancelled_by = 'Y'", "already cancelled"),
        ("DELETE FROM invoice", "never deleted"),
    ):
        with registry.transaction() as s:
            if refusal is None:  # the one write allowed: cancelled_by, once
                s.connection().exec_driver_sql(raw_sql)
                continue
            with pytest.raises(IntegrityError, match=refusal):
                s.connection().exec_driver_sql(raw_sql)
            s.rollback()
    # no lift: 43.50 + 16.50 + minimum 6 x 2.80 = 76.80, and the digest still checks
    assert billing.document(number).total == Decimal("76.80")


async def test_rerunning_an_issued_period_returns_the_issued_run_and_writes_nothing(
    registry: Registry, billing: BillingService, batz: TariffFile
) -> None:
    settle(registry, "H1", "D1", date(2012, 1, 1), bin_id="B1")
    run = await billing.preview(batz, S1, actor=OPERATOR)
    await billing.issue(run.run_id, actor=OPERATOR, issued_on=ISSUED_S1)
    before = [count(registry, m) for m in (BillingRun, Invoice, AuditEntry, BillingCarry)]
    again = await billing.preview(batz, S1, actor=OPERATOR)
    reissued = await billing.issue(run.run_id, actor=OPERATOR, issued_on=date(2013, 8, 1))
    assert (again.reused, again.run_id, again.status) == (True, run.run_id, "issued")
    assert reissued.already and reissued.invoices == ["2013-OM-000001"]
    assert [count(registry, m) for m in (BillingRun, Invoice, AuditEntry, BillingCarry)] == before


async def test_a_credit_note_cancels_and_a_reissue_takes_a_new_number_with_the_correction(
    registry: Registry, billing: BillingService, batz: TariffFile
) -> None:
    settle(registry, "H1", "D1", date(2012, 1, 1), bin_id="B1")
    [number] = await preview_and_issue(billing, batz, S1, ISSUED_S1)
    billing.add_correction("H1", "2013-S1", Decimal("-5.00"), operator=OPERATOR, reason="bac volé")
    with pytest.raises(BillingRunError, match="cancel it with a credit note first"):
        await billing.reissue("H1", "2013-S1", actor=OPERATOR, issued_on=date(2013, 8, 1))
    note = billing.credit_note(
        number, reason="bac volé en mai", actor=OPERATOR, issued_on=date(2013, 8, 1)
    )
    with pytest.raises(BillingRunError, match="already cancelled"):
        billing.credit_note(number, reason="twice", actor=OPERATOR, issued_on=date(2013, 8, 1))
    new = await billing.reissue("H1", "2013-S1", actor=OPERATOR, issued_on=date(2013, 8, 1))
    assert (note, new) == ("2013-OM-000002", "2013-OM-000003")
    rows = {i["number"]: i for i in billing.invoices()}
    assert rows[number]["cancelled_by"] == note
    assert (rows[note]["kind"], rows[note]["total"], rows[note]["cancels"]) == (
        "credit_note",
        "-76.80",
        number,
    )
    assert rows[new]["total"] == "71.80"  # 76.80 - 5.00


async def test_anomalies_list_silent_bins_unread_chips_lifts_after_move_out_bare_places_idle_badges(
    registry: Registry, store: EmbeddedStore, billing: BillingService, batz: TariffFile
) -> None:
    settle(registry, "H-ok", "D-ok", date(2012, 1, 1), bin_id="B-ok")
    settle(registry, "H-silent", "D-silent", date(2012, 1, 1), bin_id="B-silent")
    settle(registry, "H-gone", "D-gone", date(2012, 1, 1), end=date(2013, 4, 1), bin_id="B-gone")
    settle(registry, "H-bare", "D-bare", date(2012, 1, 1))
    settle(registry, "H-badge", "D-badge", date(2012, 1, 1))
    with registry.transaction() as s:
        s.add(Device(device_id="truck-1", kind="truck", created_at=SINCE))
        s.flush()
        s.add(Badge(id="BG-1", household_id="H-badge", valid_from=date(2012, 1, 1)))
    await store.write(
        [
            *weekly("B-ok", date(2013, 1, 7), 6),
            lift("B-gone", date(2013, 3, 4)),
            lift("B-gone", date(2013, 5, 2)),  # after the move-out, nobody lives there
            lift("truck-1", date(2013, 2, 11)),  # the truck could not read the chip
        ]
    )
    run = await billing.preview(batz, S1, actor=OPERATOR)
    found = {(a["reason"], a["household"], a["ref"]) for a in run.anomalies}
    assert found == {
        ("bin_without_lifts", "H-silent", "B-silent"),
        ("unread_chip", None, "truck-1"),
        ("lift_after_move_out", "H-gone", "B-gone"),
        ("dwelling_without_equipment", "H-bare", "D-bare"),
        ("badge_without_deposit", "H-badge", "BG-1"),
    }
    assert run.summary["excluded"] == {"outside_occupancy": 1}
    assert run.summary["anomalies"]["unread_chip"] == 1


async def test_a_bill_under_the_threshold_is_carried_into_the_next_period_invoice(
    registry: Registry, billing: BillingService, batz: TariffFile
) -> None:
    # 25 to 30 June: 6 of 181 days; 43.50 x 6/181 = 1.44, 16.50 x 6/181 = 0.55, minimum
    # 6 x 6/181 = 0.2 -> 0 lifts: 1.99 < 15.00 is carried over (CGCT D1611-1)
    settle(registry, "H1", "D1", date(2013, 6, 25), bin_id="B1")
    assert await preview_and_issue(billing, batz, S1, ISSUED_S1) == []
    with registry.reading() as s:
        carry = s.scalars(select(BillingCarry)).one()
    assert (carry.amount, carry.settled_by_run) == (Decimal("1.99"), None)
    [number] = await preview_and_issue(billing, batz, S2, ISSUED_S2)
    doc = billing.document(number)
    assert [line.kind for line in doc.lines][-1] == "carried_over"
    assert doc.lines[-1].amount == Decimal("1.99")
    assert doc.total == Decimal("78.79")  # 43.50 + 16.50 + 6 x 2.80 + 1.99
    with registry.reading() as s:
        assert s.scalars(select(BillingCarry)).one().settled_by_run is not None


async def test_a_correction_needs_a_reason_and_is_written_to_the_audit_log(
    registry: Registry, billing: BillingService
) -> None:
    settle(registry, "H1", "D1", date(2012, 1, 1))
    with pytest.raises(BillingInputError, match="operator and a reason"):
        billing.add_correction("H1", "2013-S1", Decimal("10.00"), operator=OPERATOR, reason=" ")
    billing.add_correction("H1", "2013-S1", Decimal("10.00"), operator=OPERATOR, reason="geste")
    with registry.reading() as s:
        [entry] = s.scalars(select(AuditEntry).where(AuditEntry.action == "billing.correction"))
    assert (entry.actor, entry.target) == (OPERATOR, "household:H1")
    assert '"reason": "geste"' in entry.details and '"amount": "10.00"' in entry.details


async def test_an_interrupted_issue_resumes_without_gap_or_duplicate(
    registry: Registry, billing: BillingService, batz: TariffFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    for n in range(1, 6):
        settle(registry, f"H{n}", f"D{n}", date(2012, 1, 1), bin_id=f"B{n}")
    monkeypatch.setattr(service_mod, "ISSUE_BATCH", 2)
    run = await billing.preview(batz, S1, actor=OPERATOR)

    def crash(stage: str, done: int, total: int) -> None:
        raise RuntimeError("power cut after the first batch")

    with pytest.raises(RuntimeError):
        await billing.issue(run.run_id, actor=OPERATOR, issued_on=ISSUED_S1, progress=crash)
    assert count(registry, Invoice) == 2
    issued = await billing.issue(run.run_id, actor=OPERATOR, issued_on=ISSUED_S1)
    assert issued.invoices == [f"2013-OM-{n:06d}" for n in range(1, 6)]
    assert [i["debtor"] for i in billing.invoices()] == ["H1", "H2", "H3", "H4", "H5"]


async def test_issue_refuses_a_run_whose_inputs_changed_since_the_preview(
    registry: Registry, store: EmbeddedStore, billing: BillingService, batz: TariffFile
) -> None:
    settle(registry, "H1", "D1", date(2012, 1, 1), bin_id="B1")
    run = await billing.preview(batz, S1, actor=OPERATOR)
    await store.write(weekly("B1", date(2013, 1, 7), 8))
    with pytest.raises(BillingRunError, match="changed since the preview"):
        await billing.issue(run.run_id, actor=OPERATOR, issued_on=ISSUED_S1)
    assert count(registry, Invoice) == 0


async def test_issuing_without_an_issuer_in_the_tariff_is_a_clear_error(
    billing: BillingService, batz: TariffFile
) -> None:
    bare = TariffFile.parse(batz.text.split("[issuer]")[0], "no-issuer.toml")
    run = await billing.preview(bare, S1, actor=OPERATOR)
    with pytest.raises(BillingInputError, match=r"no \[issuer\] table"):
        await billing.issue(run.run_id, actor=OPERATOR, issued_on=ISSUED_S1)
