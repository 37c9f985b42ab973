"""The registry service: synchronous SQLAlchemy over SQLite or PostgreSQL.

Each public method is one transaction; the module-level helpers take the open
session so that ``import_devices`` can compose them into a single all-or-nothing
transaction.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Final

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, make_url, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from core.registry.errors import (
    DuplicateDevice,
    InvalidDevice,
    RegistryError,
    UnknownDevice,
    UnknownHousehold,
)
from core.registry.models import (
    DEVICE_KINDS,
    Binding,
    Device,
    Dwelling,
    Household,
    Occupancy,
)

# PROTOCOL.md, "Devices": 3 to 64 characters of A-Z a-z 0-9 - _ .
DEVICE_ID_RE: Final = re.compile(r"[A-Za-z0-9._-]{3,64}")
MIGRATIONS_DIR: Final = Path(__file__).with_name("migrations")

Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets the API read while the ingest writes; SQLite leaves FKs off by default.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _postgresql_session(dbapi_connection: Any, _record: Any) -> None:
    # timestamptz comes back in the session's zone: UTC, as on SQLite, whatever the
    # server's default. Autocommit, or the pool's rollback on check-in would undo the SET
    # (SQLAlchemy's PostgreSQL dialect docs, "Setting Alternate Search Paths on Connect").
    autocommit = dbapi_connection.autocommit
    dbapi_connection.autocommit = True
    cursor = dbapi_connection.cursor()
    cursor.execute("SET TIME ZONE 'UTC'")
    cursor.close()
    dbapi_connection.autocommit = autocommit


def _create_engine(url: str) -> Engine:
    """An engine with each backend's session settings; connects on first use only."""
    if make_url(url).get_backend_name() == "postgresql":
        # A restarted server leaves dead pooled connections: test each on checkout.
        engine = create_engine(url, pool_pre_ping=True)
        event.listen(engine, "connect", _postgresql_session)
        return engine
    engine = create_engine(url)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def upsert_insert(session: Session) -> Any:
    """The dialect's INSERT, which alone has ON CONFLICT (PostgreSQL, SQLite 3.24+)."""
    dialect = session.get_bind().dialect.name
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


def check_device(device_id: str, kind: str) -> None:
    """Raise InvalidDevice unless the id and kind are allowed by PROTOCOL.md."""
    if not DEVICE_ID_RE.fullmatch(device_id):
        raise InvalidDevice(f"device_id {device_id!r}: need 3-64 of A-Z a-z 0-9 - _ .")
    if kind not in DEVICE_KINDS:
        raise InvalidDevice(f"kind {kind!r}: expected one of {', '.join(DEVICE_KINDS)}")


def _current_dwelling(session: Session, household_id: str, today: date) -> str | None:
    """The dwelling the household occupies today, latest move-in first."""
    stmt = (
        select(Occupancy.dwelling_id)
        .where(Occupancy.household_id == household_id, Occupancy.start <= today)
        .where((Occupancy.end.is_(None)) | (Occupancy.end > today))
        .order_by(Occupancy.start.desc(), Occupancy.id.desc())
        .limit(1)
    )
    return session.scalars(stmt).first()


def _create_household(
    session: Session, household_id: str, name: str | None, address: str | None, moved_in: date
) -> None:
    """Household, its own dwelling ``d-<id>`` (reused if present) and an open occupancy."""
    dwelling_id = f"d-{household_id}"
    if session.get(Dwelling, dwelling_id) is None:
        # address is NOT NULL; an empty one means "not yet known" to staff pages.
        session.add(Dwelling(id=dwelling_id, address=address or ""))
    session.add(Household(id=household_id, name=name))
    session.add(Occupancy(household_id=household_id, dwelling_id=dwelling_id, start=moved_in))


def _insert_device(
    session: Session, device: Device, household_id: str | None, now: datetime
) -> None:
    """Add a checked device, bound from ``now`` to the household's current dwelling."""
    if session.get(Device, device.device_id) is not None:
        raise DuplicateDevice(f"device {device.device_id!r} already registered")
    session.add(device)
    if household_id is None:
        return
    if session.get(Household, household_id) is None:
        raise UnknownHousehold(f"household {household_id!r} is not registered")
    dwelling_id = _current_dwelling(session, household_id, now.date())
    session.add(
        Binding(
            device_id=device.device_id,
            dwelling_id=dwelling_id,
            household_id=household_id,
            valid_from=now,
        )
    )


def _import_row(session: Session, row: tuple[str, str, str | None], now: datetime) -> None:
    device_id, kind, household_id = row
    check_device(device_id, kind)
    if household_id is not None and session.get(Household, household_id) is None:
        _create_household(session, household_id, None, None, now.date())
    device = Device(device_id=device_id, kind=kind, created_at=now)
    _insert_device(session, device, household_id, now)


def retire_in(session: Session, device_id: str, now: datetime) -> bool:
    """Retire within an open transaction; False if it was already retired."""
    device = session.get(Device, device_id)
    if device is None:
        raise UnknownDevice(f"device {device_id!r} is not registered")
    if device.status == "retired":
        return False  # keep the first retirement time: history is not rewritten
    device.status = "retired"
    device.retired_at = now
    session.execute(
        update(Binding)
        .where(Binding.device_id == device_id, Binding.valid_to.is_(None))
        .values(valid_to=now)
    )
    return True


class Registry:
    """Dwellings, households, occupancy, devices and their bindings."""

    def __init__(self, url: str, *, clock: Clock = _utcnow) -> None:
        # create_engine does not connect; the first query does.
        self._url = url
        self._clock = clock
        self._engine: Engine = _create_engine(url)
        self._sessions = sessionmaker(self._engine, expire_on_commit=False)

    @contextmanager
    def transaction(self, *, lock: bool = False) -> Iterator[Session]:
        """One all-or-nothing unit of work; the registry's sub-services compose on it.

        `lock`: the caller reads rows to decide what to write and another process may do
        the same (an alert's escalation). On PostgreSQL it locks those rows itself
        (SELECT ... FOR UPDATE); SQLite has no row locks, so the transaction takes the
        database's write lock first (BEGIN IMMEDIATE): a second one waits, then reads
        what the first wrote, instead of both reading the old state.
        """
        with self._sessions() as session, session.begin():
            if lock and session.get_bind().dialect.name == "sqlite":
                session.execute(text("BEGIN IMMEDIATE"))
            yield session

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """A session for queries only."""
        with self._sessions() as session:
            yield session

    def now(self) -> datetime:
        return self._clock()

    def upgrade(self) -> None:
        """Bring the schema to the latest Alembic revision (idempotent)."""
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        # ConfigParser interpolates '%', which URL-encoded passwords contain.
        cfg.set_main_option("sqlalchemy.url", self._url.replace("%", "%%"))
        with self._engine.begin() as connection:
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, "head")

    def add_household(
        self,
        household_id: str,
        name: str | None = None,
        address: str | None = None,
        moved_in: date | None = None,
    ) -> None:
        """Register a household living from ``moved_in`` (default today, UTC)."""
        start = moved_in or self._clock().date()
        with self.transaction() as session:
            if session.get(Household, household_id) is not None:
                raise RegistryError(f"household {household_id!r} already registered")
            _create_household(session, household_id, name, address, start)

    def add_device(
        self,
        device_id: str,
        kind: str,
        household_id: str | None = None,
        model: str | None = None,
        serial: str | None = None,
    ) -> None:
        """Commission a device as 'pending'; it turns 'active' when first seen."""
        check_device(device_id, kind)
        now = self._clock()
        device = Device(device_id=device_id, kind=kind, model=model, serial=serial, created_at=now)
        try:
            with self.transaction() as session:
                _insert_device(session, device, household_id, now)
        except IntegrityError as err:
            # A concurrent writer got there between our check and the commit.
            raise DuplicateDevice(f"device {device_id!r} already registered") from err

    def import_devices(self, rows: Iterable[tuple[str, str, str | None]]) -> int:
        """Import (device_id, kind, household_id) rows all-or-nothing; return the count.

        Unknown households are created with their own dwelling. Any bad row aborts
        the whole import with InvalidDevice naming the (1-based) row.
        """
        now = self._clock()
        count = 0
        with self.transaction() as session:
            for count, row in enumerate(rows, start=1):
                try:
                    _import_row(session, row, now)
                    session.flush()
                except (RegistryError, IntegrityError, ValueError) as err:
                    raise InvalidDevice(f"row {count}: {err}") from err
        return count

    def retire_device(self, device_id: str) -> None:
        """Retire the device and end its open bindings; earlier history is kept."""
        with self.transaction() as session:
            retire_in(session, device_id, self._clock())

    def usable_devices(self) -> dict[str, str]:
        """device_id -> kind of every device whose data is accepted (not retired)."""
        stmt = select(Device.device_id, Device.kind).where(Device.status != "retired")
        with self._sessions() as session:
            return {row.device_id: row.kind for row in session.execute(stmt)}

    def record_seen(self, seen: Mapping[str, datetime]) -> None:
        """Store last contact times; a first contact turns `pending` into `active`.

        Retired and unknown ids are left alone: a retired device's late message does
        not bring it back. Times only move forward (concurrent workers may flush late).
        """
        with self.transaction() as session:
            for device_id in sorted(seen):
                at = seen[device_id]
                session.execute(
                    update(Device)
                    .where(Device.device_id == device_id, Device.status != "retired")
                    .where(Device.last_seen_at.is_(None) | (Device.last_seen_at < at))
                    .values(last_seen_at=at)
                )
                session.execute(
                    update(Device)
                    .where(Device.device_id == device_id, Device.status == "pending")
                    .values(status="active")
                )

    def list_devices(self) -> list[dict[str, object]]:
        """Every device with its status and the household of its open binding."""
        stmt = (
            select(Device.device_id, Device.kind, Device.status, Binding.household_id)
            .outerjoin(
                Binding,
                (Binding.device_id == Device.device_id) & Binding.valid_to.is_(None),
            )
            .order_by(Device.device_id)
        )
        with self._sessions() as session:
            return [dict(row._mapping) for row in session.execute(stmt)]

    def close(self) -> None:
        """Release pooled connections."""
        self._engine.dispose()
