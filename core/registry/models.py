"""Declarative models of the registry (DESIGN.md, "Domain model").

The schema itself is owned by the Alembic migrations next to this module; these
classes must stay in step with ``migrations/versions``.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Final

from sqlalchemy import (
    CheckConstraint,
    Date,
    DateTime,
    Dialect,
    ForeignKey,
    Integer,
    MetaData,
    String,
    TypeDecorator,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

DEVICE_KINDS: Final = ("meter", "bin", "container", "truck")
DEVICE_STATUSES: Final = ("pending", "active", "retired")

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


class Household(Base):
    """The one who pays (foyer)."""

    __tablename__ = "household"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(255))


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
    )

    device_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    model: Mapped[str | None] = mapped_column(String(128))
    serial: Mapped[str | None] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16), default="pending", server_default="pending")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Binding(Base):
    """Where a device is installed over [valid_from, valid_to).

    History is never rewritten: a binding ends by setting ``valid_to``, so a reading
    can always be attributed to whoever held the device at its time.
    """

    __tablename__ = "binding"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("device.device_id"), index=True)
    dwelling_id: Mapped[str | None] = mapped_column(ForeignKey("dwelling.id"))
    household_id: Mapped[str | None] = mapped_column(ForeignKey("household.id"))
    valid_from: Mapped[datetime] = mapped_column(UTCDateTime)
    valid_to: Mapped[datetime | None] = mapped_column(UTCDateTime)
