"""The registry's contract on every backend: a SQLite file and a real PostgreSQL database.

The same Alembic migrations build both schemas; each test runs once per backend
(``registry_url`` in tests/conftest.py; PostgreSQL is started once per session).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.registry import (
    DuplicateDevice,
    InvalidDevice,
    Registry,
    UnknownDevice,
    UnknownHousehold,
)
from core.registry.models import Base, Binding, Device, Household, Occupancy
from tests.clock import Clock
from tests.servers import PostgreSQL

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def db_url(registry_url: str) -> str:
    return registry_url


@pytest.fixture
def registry(db_url: str, clock: Clock) -> Iterator[Registry]:
    reg = Registry(db_url, clock=clock)
    reg.upgrade()
    yield reg
    reg.close()


def _bindings(registry: Registry, device_id: str) -> list[Binding]:
    with registry.reading() as session:
        stmt = select(Binding).where(Binding.device_id == device_id).order_by(Binding.id)
        return list(session.scalars(stmt))


def test_upgrade_creates_schema_and_a_second_run_is_a_no_op(db_url: str) -> None:
    reg = Registry(db_url)
    reg.upgrade()
    reg.upgrade()
    reg.close()
    engine = create_engine(db_url)
    tables = set(inspect(engine).get_table_names())
    engine.dispose()
    assert {"dwelling", "household", "occupancy", "device", "binding"} <= tables
    assert "alembic_version" in tables


def test_migrations_match_the_models(registry: Registry, db_url: str) -> None:
    # The hand-written migration owns the schema; the ORM must describe the same one.
    engine = create_engine(db_url)
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    engine.dispose()
    assert diff == []


def test_added_devices_are_listed_pending_with_their_household(registry: Registry) -> None:
    registry.add_household("h1", name="Martin", address="1 rue Haute", moved_in=date(2024, 1, 1))
    registry.add_device("meter-001", "meter", household_id="h1", model="M1", serial="S1")
    registry.add_device("truck.7", "truck")
    assert registry.list_devices() == [
        {"device_id": "meter-001", "kind": "meter", "status": "pending", "household_id": "h1"},
        {"device_id": "truck.7", "kind": "truck", "status": "pending", "household_id": None},
    ]
    assert registry.usable_devices() == {"meter-001": "meter", "truck.7": "truck"}


def test_binding_points_at_the_household_current_dwelling(registry: Registry, db_url: str) -> None:
    registry.add_household("h1", address="1 rue Haute", moved_in=date(2024, 1, 1))
    registry.add_device("bin-01", "bin", household_id="h1")
    [binding] = _bindings(registry, "bin-01")
    assert (binding.dwelling_id, binding.household_id) == ("d-h1", "h1")
    # the same instant and the same UTC rendering on every backend, whatever the server's zone
    assert binding.valid_from.isoformat() == T0.isoformat()
    assert binding.valid_to is None


@pytest.mark.parametrize("device_id", ["ab", "x" * 65, "has space", "émile", "a/b", ""])
def test_bad_device_id_is_refused(registry: Registry, device_id: str) -> None:
    with pytest.raises(InvalidDevice, match="device_id"):
        registry.add_device(device_id, "meter")
    assert registry.list_devices() == []


def test_bad_kind_is_refused(registry: Registry) -> None:
    with pytest.raises(InvalidDevice, match="kind"):
        registry.add_device("gadget-1", "toaster")


def test_duplicate_device_is_refused(registry: Registry) -> None:
    registry.add_device("meter-001", "meter")
    with pytest.raises(DuplicateDevice):
        registry.add_device("meter-001", "bin")
    assert registry.usable_devices() == {"meter-001": "meter"}


def test_unknown_household_is_refused_and_nothing_is_stored(registry: Registry) -> None:
    with pytest.raises(UnknownHousehold):
        registry.add_device("meter-001", "meter", household_id="nobody")
    assert registry.list_devices() == []


def test_import_creates_missing_households_and_counts_rows(registry: Registry, db_url: str) -> None:
    rows = [("m-1", "meter", "h9"), ("b-1", "bin", "h9"), ("c-1", "container", None)]
    assert registry.import_devices(rows) == 3
    engine = create_engine(db_url)
    with Session(engine) as session:
        assert session.get(Household, "h9") is not None
        occupancy = session.scalars(select(Occupancy)).one()
    engine.dispose()
    assert (occupancy.dwelling_id, occupancy.start, occupancy.end) == ("d-h9", T0.date(), None)
    assert {d["household_id"] for d in registry.list_devices()} == {"h9", None}


@pytest.mark.parametrize(
    ("bad_row", "reason"),
    [
        (("no", "meter", None), "device_id"),
        (("m-3", "toaster", None), "kind"),
        (("m-1", "meter", None), "already registered"),
    ],
)
def test_import_is_all_or_nothing_and_names_the_bad_row(
    registry: Registry, db_url: str, bad_row: tuple[str, str, str | None], reason: str
) -> None:
    rows = [("m-1", "meter", "h9"), ("m-2", "meter", None), bad_row]
    with pytest.raises(InvalidDevice, match=f"row 3: .*{reason}"):
        registry.import_devices(rows)
    assert registry.list_devices() == []
    engine = create_engine(db_url)
    with Session(engine) as session:
        assert session.get(Household, "h9") is None
    engine.dispose()


def test_retired_device_is_unusable_and_its_binding_ends_but_stays(
    registry: Registry, db_url: str, clock: Clock
) -> None:
    registry.add_household("h1", address="1 rue Haute")
    registry.add_device("meter-001", "meter", household_id="h1")
    clock.now = T0 + timedelta(days=30)
    registry.retire_device("meter-001")
    assert registry.usable_devices() == {}
    assert registry.list_devices() == [
        {"device_id": "meter-001", "kind": "meter", "status": "retired", "household_id": None}
    ]
    [binding] = _bindings(registry, "meter-001")
    assert (binding.household_id, binding.valid_from, binding.valid_to) == ("h1", T0, clock.now)


def test_retiring_twice_keeps_the_first_retirement_time(
    registry: Registry, db_url: str, clock: Clock
) -> None:
    registry.add_device("meter-001", "meter")
    registry.retire_device("meter-001")
    clock.now = T0 + timedelta(days=1)
    registry.retire_device("meter-001")
    engine = create_engine(db_url)
    with Session(engine) as session:
        device = session.get(Device, "meter-001")
        assert device is not None
        assert device.retired_at == T0
    engine.dispose()


def test_retiring_an_unknown_device_is_refused(registry: Registry) -> None:
    with pytest.raises(UnknownDevice):
        registry.retire_device("ghost-1")


def test_first_contact_turns_pending_into_active_only(registry: Registry) -> None:
    registry.add_device("meter-001", "meter")
    registry.add_device("meter-002", "meter")
    registry.add_device("meter-003", "meter")
    registry.retire_device("meter-003")
    at = datetime(2026, 1, 1, tzinfo=UTC)
    registry.record_seen({"meter-001": at, "meter-003": at, "ghost-1": at})
    status = {d["device_id"]: d["status"] for d in registry.list_devices()}
    assert status == {"meter-001": "active", "meter-002": "pending", "meter-003": "retired"}


# --- PostgreSQL only: what SQLite has no equivalent for ----------------------------------


@pytest.mark.servers
def test_a_restarted_postgresql_server_costs_no_failed_call(
    postgresql: PostgreSQL, postgres_url: str
) -> None:
    reg = Registry(postgres_url, clock=Clock(T0))
    try:
        reg.upgrade()
        reg.add_device("meter-001", "meter")  # leaves a pooled connection behind
        postgresql.restart()  # ... which the restart kills
        assert reg.usable_devices() == {"meter-001": "meter"}
    finally:
        reg.close()


@pytest.mark.servers
def test_postgresql_refuses_to_truncate_invoices(postgres_url: str) -> None:
    # TRUNCATE skips row triggers; migration 0007 adds a statement trigger for it.
    reg = Registry(postgres_url)
    try:
        reg.upgrade()
        with pytest.raises(IntegrityError, match="never deleted"), reg.transaction() as s:
            s.connection().exec_driver_sql("TRUNCATE invoice")
    finally:
        reg.close()
