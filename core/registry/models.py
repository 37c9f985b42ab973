"""Declarative models of the registry (DESIGN.md, "Domain model").

The schema itself is owned by the Alembic migrations next to this module; these
classes must stay in step with ``migrations/versions``.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Final

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy import event as sa_event
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from core.registry.errors import RegistryError

DEVICE_KINDS: Final = ("meter", "bin", "container", "truck")
DEVICE_STATUSES: Final = ("pending", "active", "retired")  # "silent" is derived, not stored
HOUSEHOLD_KINDS: Final = ("primary", "secondary", "professional")
STAFF_ROLES: Final = ("technician", "care", "billing", "admin")
SPLIT_KEYS: Final = ("none", "persons", "shares")  # how a building's bill is split
# Waste streams of bins and containers (migration 0006); a tariff may price each apart.
BIN_STREAMS: Final = ("residual", "recyclables", "biowaste")

# Deterministic constraint names: Alembic batch mode on SQLite can only alter or
# drop constraints it can name.
NAMING_CONVENTION: Final = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend.

    SQLite has no timezone type and hands back naive values; storing UTC and
    re-attaching it on the way out keeps comparisons with aware datetimes valid.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the registry; use UTC")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None or value.tzinfo is not None:
            return value
        return value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Dwelling(Base):
    """An address where bins and meters are installed."""

    __tablename__ = "dwelling"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    address: Mapped[str] = mapped_column(String(255))
    commune: Mapped[str | None] = mapped_column(String(128))
    # Collective housing (migration 0005, ``Building`` below): the building it belongs
    # to, its shares (tantièmes) for a split by shares, and whether it is the building's
    # common parts, where the shared bins are bound and nobody lives.
    building_id: Mapped[str | None] = mapped_column(ForeignKey("building.id"), index=True)
    shares: Mapped[int | None] = mapped_column(Integer)
    collective: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")


class Household(Base):
    """The one who pays (foyer)."""

    __tablename__ = "household"

    __table_args__ = (CheckConstraint(f"kind IN {HOUSEHOLD_KINDS!r}", name="kind"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(255))
    # Persons in the household: some tariffs bill the fixed part by household size.
    size: Mapped[int | None] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16), default="primary", server_default="primary")


class Occupancy(Base):
    """A household living in a dwelling over [start, end); billing prorates by it."""

    __tablename__ = "occupancy"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    household_id: Mapped[str] = mapped_column(ForeignKey("household.id"), index=True)
    dwelling_id: Mapped[str] = mapped_column(ForeignKey("dwelling.id"), index=True)
    start: Mapped[date] = mapped_column(Date)
    end: Mapped[date | None] = mapped_column(Date)


class Device(Base):
    """A commissioned device; ``device_id`` follows PROTOCOL.md."""

    __tablename__ = "device"
    __table_args__ = (
        CheckConstraint(f"kind IN {DEVICE_KINDS!r}", name="kind"),
        CheckConstraint(f"status IN {DEVICE_STATUSES!r}", name="status"),
        CheckConstraint(f"stream IN {BIN_STREAMS!r}", name="stream"),
    )

    device_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    model: Mapped[str | None] = mapped_column(String(128))
    serial: Mapped[str | None] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16), default="pending", server_default="pending")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Bins and containers: nominal volume in litres (tariffs price a lift by volume).
    volume_l: Mapped[int | None] = mapped_column(Integer)
    # Bins and containers: the waste stream collected (yellow bin = recyclables); billing
    # prices each stream by its own grid or not at all (docs/billing.md, migration 0006).
    stream: Mapped[str] = mapped_column(String(16), default="residual", server_default="residual")
    # Expected reporting period: a device silent for SILENT_AFTER_PERIODS of them is "silent".
    report_interval_s: Mapped[int | None] = mapped_column(Integer)
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Only a hash of the MQTT password is kept (the broker keeps its own salted hash).
    credential_hash: Mapped[str | None] = mapped_column(String(255))
    credentials_issued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Binding(Base):
    """Where a device is installed over [valid_from, valid_to).

    History is never rewritten: a binding ends by setting ``valid_to``, so a reading
    can always be attributed to whoever held the device at its time.
    """

    __tablename__ = "binding"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("device.device_id"), index=True)
    # indexed: "the meters at these dwellings" (care scoring, roll-ups, billing) joins on it
    dwelling_id: Mapped[str | None] = mapped_column(ForeignKey("dwelling.id"), index=True)
    household_id: Mapped[str | None] = mapped_column(ForeignKey("household.id"))
    collection_point_id: Mapped[str | None] = mapped_column(ForeignKey("collection_point.id"))
    valid_from: Mapped[datetime] = mapped_column(UTCDateTime)
    valid_to: Mapped[datetime | None] = mapped_column(UTCDateTime)


class CollectionPoint(Base):
    """Where collective containers stand; households open them with badges."""

    __tablename__ = "collection_point"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    address: Mapped[str] = mapped_column(String(255))
    commune: Mapped[str | None] = mapped_column(String(128))


class Badge(Base):
    """A household's access badge for collective containers, valid over [valid_from, valid_to)."""

    __tablename__ = "badge"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    household_id: Mapped[str] = mapped_column(ForeignKey("household.id"), index=True)
    valid_from: Mapped[date] = mapped_column(Date)
    valid_to: Mapped[date | None] = mapped_column(Date)


class DeviceSwap(Base):
    """A device replaced by another at one place (DESIGN.md: consumption stays continuous).

    For meters the old device's final index and the new one's initial index are kept,
    so consumption across the swap is (final - last old reading) + (new reading - initial).
    """

    __tablename__ = "device_swap"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    old_device_id: Mapped[str] = mapped_column(ForeignKey("device.device_id"), index=True)
    new_device_id: Mapped[str] = mapped_column(ForeignKey("device.device_id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    old_final_index_l: Mapped[int | None] = mapped_column(Integer)
    new_initial_index_l: Mapped[int | None] = mapped_column(Integer)


class StaffUser(Base):
    """A member of staff; ``roles`` is a comma-separated subset of STAFF_ROLES."""

    __tablename__ = "staff_user"

    username: Mapped[str] = mapped_column(String(64), primary_key=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    roles: Mapped[str] = mapped_column(String(128))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ApiToken(Base):
    """A bearer token for scripts; only its SHA-256 is stored."""

    __tablename__ = "api_token"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    username: Mapped[str] = mapped_column(ForeignKey("staff_user.username"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class StaffSession(Base):
    """A page login; only the SHA-256 of the cookie value is stored."""

    __tablename__ = "staff_session"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    username: Mapped[str] = mapped_column(ForeignKey("staff_user.username"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class AuditEntry(Base):
    """Who changed what, when: written in the same transaction as the change."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(128))
    details: Mapped[str] = mapped_column(Text, default="{}", server_default="{}")


# --- care alerts (issue 4) ------------------------------------------------------------
CARE_STATUSES: Final = ("active", "paused", "ended")
ALERT_KINDS: Final = (
    "inactivity",
    "leak",
    "continuous_flow",
    "device_silent",
    "meter_alarm",
    "use_while_away",
)
ALERT_AUDIENCES: Final = ("family", "household", "technician")
ALERT_STATUSES: Final = ("open", "notified", "acknowledged", "resolved")


class CareSubscription(Base):
    """A monitored person living alone at a household, with the consent on record."""

    __tablename__ = "care_subscription"
    __table_args__ = (CheckConstraint(f"status IN {CARE_STATUSES!r}", name="status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    household_id: Mapped[str] = mapped_column(ForeignKey("household.id"), index=True)
    # How staff and contacts call the person (a first name or a pseudonym): personal data.
    person_label: Mapped[str] = mapped_column(String(128))
    language: Mapped[str] = mapped_column(String(8), default="fr", server_default="fr")
    consent_at: Mapped[datetime] = mapped_column(UTCDateTime)
    consent_by: Mapped[str] = mapped_column(String(64))  # staff who recorded it
    consent_note: Mapped[str | None] = mapped_column(String(255))  # e.g. "signed form 2026-114"
    care_service_phone: Mapped[str | None] = mapped_column(String(20))  # E.164
    # Usual sleep window, local time "HH:MM" (optional: the model learns it anyway).
    sleep_from: Mapped[str | None] = mapped_column(String(5))
    sleep_to: Mapped[str | None] = mapped_column(String(5))
    status: Mapped[str] = mapped_column(String(16), default="active", server_default="active")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class CareContact(Base):
    """An ordered contact of a subscription (position 1 is called first)."""

    __tablename__ = "care_contact"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    subscription_id: Mapped[int] = mapped_column(ForeignKey("care_subscription.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(128))
    phone: Mapped[str] = mapped_column(String(20), index=True)  # E.164
    language: Mapped[str] = mapped_column(String(8), default="fr", server_default="fr")
    opted_out_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # replied STOP


class AwayPeriod(Base):
    """The resident is away (holiday, hospital): no inactivity alert; water use is news."""

    __tablename__ = "away_period"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    subscription_id: Mapped[int] = mapped_column(ForeignKey("care_subscription.id"), index=True)
    start: Mapped[datetime] = mapped_column(UTCDateTime)
    end: Mapped[datetime | None] = mapped_column(UTCDateTime)
    source: Mapped[str] = mapped_column(String(16))  # sms, staff
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Alert(Base):
    """One alert through its lifecycle; ``dedupe_key`` is unique among unresolved alerts."""

    __tablename__ = "alert"
    __table_args__ = (
        CheckConstraint(f"kind IN {ALERT_KINDS!r}", name="kind"),
        CheckConstraint(f"audience IN {ALERT_AUDIENCES!r}", name="audience"),
        CheckConstraint(f"status IN {ALERT_STATUSES!r}", name="status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(24))
    audience: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="open", server_default="open")
    dedupe_key: Mapped[str] = mapped_column(String(128), index=True)
    household_id: Mapped[str | None] = mapped_column(ForeignKey("household.id"), index=True)
    subscription_id: Mapped[int | None] = mapped_column(ForeignKey("care_subscription.id"))
    device_id: Mapped[str | None] = mapped_column(String(64))
    explanation: Mapped[str] = mapped_column(Text)
    score: Mapped[float | None] = mapped_column(Float)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    acknowledged_by: Mapped[str | None] = mapped_column(String(64))
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolution: Mapped[str | None] = mapped_column(String(32))
    escalation_level: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_escalation_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AlertEvent(Base):
    """The alert's history: opened, notified contact n, acknowledged, escalated, resolved."""

    __tablename__ = "alert_event"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alert.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    action: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(64))
    details: Mapped[str] = mapped_column(Text, default="{}", server_default="{}")


class SmsMessage(Base):
    """Every SMS sent or received, with the provider's id and delivery status."""

    __tablename__ = "sms_message"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    direction: Mapped[str] = mapped_column(String(4))  # out, in
    phone: Mapped[str] = mapped_column(String(20), index=True)  # the contact's E.164 number
    body: Mapped[str] = mapped_column(Text)
    provider_sid: Mapped[str | None] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(16))  # queued, sent, delivered, failed, received
    alert_id: Mapped[int | None] = mapped_column(ForeignKey("alert.id"), index=True)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("care_contact.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


# --- billing runs and invoices (issue 5) ------------------------------------------------


class InvoiceImmutable(RegistryError):
    """An attempt to change or delete an issued invoice (a credit note cancels it)."""


RUN_STATUSES: Final = ("preview", "issued")
INVOICE_KINDS: Final = ("invoice", "credit_note")
# Columns of an issued invoice that nothing may change (docs/billing.md, "Immutability");
# only ``cancelled_by`` is written once, when a credit note cancels the invoice.
INVOICE_FROZEN: Final = (
    "number",
    "kind",
    "budget",
    "year",
    "seq",
    "run_id",
    "debtor_ref",
    "period",
    "total",
    "issued_at",
    "issued_by",
    "document",
    "digest",
    "cancels",
)


class Money(TypeDecorator[Decimal]):
    """An exact amount stored as its decimal string ("55.41").

    SQLite has no decimal type (NUMERIC there is a binary float); a string keeps the
    cents exact on every backend, and amounts are never summed in SQL.
    """

    impl = String(24)
    cache_ok = True

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        if not isinstance(value, Decimal):
            raise TypeError(f"money must be a Decimal, not {type(value).__name__}")
        return str(value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> Decimal | None:
        return None if value is None else Decimal(value)


class BillingRun(Base):
    """One computation of a territory's bills for a period: a preview, then issued."""

    __tablename__ = "billing_run"
    __table_args__ = (CheckConstraint(f"status IN {RUN_STATUSES!r}", name="status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    territory: Mapped[str] = mapped_column(String(64), index=True)
    period: Mapped[str] = mapped_column(String(16))
    tariff_name: Mapped[str] = mapped_column(String(128))
    # The tariff file itself and its SHA-256: the run's legal basis, re-read at issue.
    tariff_digest: Mapped[str] = mapped_column(String(64))
    tariff_text: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="preview", server_default="preview")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[str] = mapped_column(String(64))
    issued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    issued_by: Mapped[str | None] = mapped_column(String(64))
    households: Mapped[int] = mapped_column(Integer)
    to_issue: Mapped[int] = mapped_column(Integer)
    total: Mapped[Decimal] = mapped_column(Money)  # of the bills to issue
    carried: Mapped[Decimal] = mapped_column(Money)  # under the threshold, carried over
    cancelled: Mapped[Decimal] = mapped_column(Money)  # under the threshold, cancelled
    # SHA-256 of every bill of the preview: issue recomputes and refuses on a mismatch.
    bills_digest: Mapped[str] = mapped_column(String(64))
    summary: Mapped[str] = mapped_column(Text, default="{}", server_default="{}")
    anomalies: Mapped[str] = mapped_column(Text, default="[]", server_default="[]")


class InvoiceSeries(Base):
    """The gapless counter of one budget's yearly series; bumped with each insert."""

    __tablename__ = "invoice_series"

    budget: Mapped[str] = mapped_column(String(32), primary_key=True)
    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_seq: Mapped[int] = mapped_column(Integer)


class Invoice(Base):
    """An issued invoice or credit note: its document is stored once, never rewritten."""

    __tablename__ = "invoice"
    __table_args__ = (
        CheckConstraint(f"kind IN {INVOICE_KINDS!r}", name="kind"),
        UniqueConstraint("budget", "year", "seq", name="uq_invoice_budget_year_seq"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    number: Mapped[str] = mapped_column(String(48), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    budget: Mapped[str] = mapped_column(String(32))
    year: Mapped[int] = mapped_column(Integer)
    seq: Mapped[int] = mapped_column(Integer)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("billing_run.id"), index=True)
    debtor_ref: Mapped[str] = mapped_column(String(64), index=True)  # household id
    period: Mapped[str] = mapped_column(String(16))
    total: Mapped[Decimal] = mapped_column(Money)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime)
    issued_by: Mapped[str] = mapped_column(String(64))
    document: Mapped[str] = mapped_column(Text)  # billing.document.to_json
    digest: Mapped[str] = mapped_column(String(64))  # its SHA-256
    cancels: Mapped[str | None] = mapped_column(String(48))  # credit note: the invoice
    cancelled_by: Mapped[str | None] = mapped_column(String(48))  # the credit note


class BillingCorrection(Base):
    """A manual amount for a household's period, with its operator and reason (audited)."""

    __tablename__ = "billing_correction"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    household_id: Mapped[str] = mapped_column(ForeignKey("household.id"), index=True)
    period: Mapped[str] = mapped_column(String(16))
    amount: Mapped[Decimal] = mapped_column(Money)
    operator: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class BillingCarry(Base):
    """A bill under the recovery threshold, carried to the household's next bill."""

    __tablename__ = "billing_carry"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    household_id: Mapped[str] = mapped_column(ForeignKey("household.id"), index=True)
    period: Mapped[str] = mapped_column(String(16))  # the period it was computed for
    amount: Mapped[Decimal] = mapped_column(Money)
    from_run: Mapped[int] = mapped_column(ForeignKey("billing_run.id"))
    settled_by_run: Mapped[int | None] = mapped_column(ForeignKey("billing_run.id"))


def _refuse_invoice_update(_mapper: object, _conn: object, target: Invoice) -> None:
    state = sa_inspect(target)
    changed = [c for c in INVOICE_FROZEN if state.attrs[c].history.has_changes()]
    if changed:
        raise InvoiceImmutable(f"invoice {target.number}: {', '.join(changed)} cannot change")
    if any(old is not None for old in state.attrs["cancelled_by"].history.deleted):
        raise InvoiceImmutable(f"invoice {target.number} is already cancelled")


def _refuse_invoice_delete(_mapper: object, _conn: object, target: Invoice) -> None:
    raise InvoiceImmutable(f"invoice {target.number}: an issued invoice is never deleted")


sa_event.listen(Invoice, "before_update", _refuse_invoice_update)
sa_event.listen(Invoice, "before_delete", _refuse_invoice_delete)


# --- collective housing (issue 5) -------------------------------------------------------


class Building(Base):
    """A collective building: one bill for its shared bins goes to its manager (syndic,
    landlord), split between its dwellings by ``split_key`` (docs/billing.md)."""

    __tablename__ = "building"
    __table_args__ = (CheckConstraint(f"split_key IN {SPLIT_KEYS!r}", name="split_key"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    manager_name: Mapped[str | None] = mapped_column(String(255))
    # The manager's postal address, one printed line per text line.
    manager_address: Mapped[str | None] = mapped_column(Text)
    split_key: Mapped[str] = mapped_column(String(16), default="none", server_default="none")


# --- scheduler leadership (issue 6) -----------------------------------------------------


class Lease(Base):
    """A named lease (migration 0008): who holds it, until when. ``core/leader.py``
    writes it; one of several schedulers leads while it holds ``scheduler``, and each
    ingest worker holds ``mqtt/<group>/<client id>`` while it runs (core/ingest/adoption.py)."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(255), primary_key=True)  # 0010: was 64
    holder: Mapped[str] = mapped_column(String(255))
    acquired_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


# --- water roll-up (issue 6) --------------------------------------------------------------


class RollupBacklog(Base):
    """A Paris day whose roll-up is stale (migration 0011): an ingest worker stored
    readings of it after the `water-rollup` job's window had passed it (a meter's
    backlog after an outage, a spool replay); the job recomputes it and deletes the row."""

    __tablename__ = "rollup_backlog"

    day: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)  # Paris midnight
    marked_at: Mapped[datetime] = mapped_column(UTCDateTime)  # the latest late reading's storage
