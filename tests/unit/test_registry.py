"""Registry behaviour that needs no database server; the contract itself, on SQLite and
PostgreSQL, is tests/integration/test_registry_contract.py."""

from __future__ import annotations

from pathlib import Path

from core.registry import Registry


def test_constructor_does_no_io(tmp_path: Path) -> None:
    Registry(f"sqlite:///{tmp_path / 'never.db'}").close()
    assert not (tmp_path / "never.db").exists()


def test_a_postgresql_registry_is_built_without_connecting() -> None:
    # Port 1 on loopback refuses connections: any I/O here would raise.
    Registry("postgresql+psycopg://foyer@127.0.0.1:1/foyer").close()
