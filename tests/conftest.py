from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.registry import Registry
from tests.servers import InfluxDB, Mosquitto, PostgreSQL, SecureMosquitto

_db_counter = itertools.count()


@pytest.fixture(scope="session")
def influxdb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxDB]:
    server = InfluxDB(tmp_path_factory.mktemp("influxdb"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def influx_db(influxdb: InfluxDB) -> str:
    """A fresh database per test, so tests do not see each other's points."""
    name = f"t{next(_db_counter)}"
    influxdb.create_database(name)
    return name


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A broker per test: fault tests restart it."""
    workdir = tmp_path / "mosquitto"
    workdir.mkdir()
    server = Mosquitto(workdir)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def secure_mosquitto(tmp_path: Path) -> Iterator[SecureMosquitto]:
    """A broker with the dynamic security plugin: only the dynsec admin exists at first."""
    workdir = tmp_path / "mosquitto-dynsec"
    workdir.mkdir()
    server = SecureMosquitto(workdir)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgresql() -> Iterator[PostgreSQL]:
    """One PostgreSQL cluster per session: initdb and start-up cost about a second."""
    server = PostgreSQL()
    try:
        server.start()
        yield server
    finally:
        server.stop()
        server.remove()


@pytest.fixture
def postgres_url(postgresql: PostgreSQL) -> Iterator[str]:
    """A fresh, empty database per test (SQLAlchemy URL); dropped afterwards."""
    name = f"foyer_t{next(_db_counter)}"
    postgresql.create_database(name)
    yield postgresql.url(name)
    postgresql.drop_database(name)


# The registry's backends (DESIGN.md habit 9: one contract, every adapter). PostgreSQL
# needs the session's server, hence the `servers` mark on its parameter.
REGISTRY_BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.servers),
]


def registry_url_for(request: pytest.FixtureRequest, backend: str, tmp_path: Path) -> str:
    """A fresh registry database on ``backend``: a SQLite file or a PostgreSQL database."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'registry.sqlite'}"
    if backend == "postgresql":
        return str(request.getfixturevalue("postgres_url"))
    raise ValueError(f"unknown registry backend {backend!r}")


@pytest.fixture(params=REGISTRY_BACKENDS)
def registry_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty registry database, once per backend (SQLite file, PostgreSQL database)."""
    return registry_url_for(request, str(request.param), tmp_path)


@pytest.fixture
def registry(registry_url: str) -> Iterator[Registry]:
    """A migrated, empty registry, once per backend; a module adds its rows by
    overriding it (``def registry(registry: Registry)``)."""
    reg = Registry(registry_url)
    reg.upgrade()
    yield reg
    reg.close()
