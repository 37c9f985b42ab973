from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import InfluxDB, Mosquitto, SecureMosquitto

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
