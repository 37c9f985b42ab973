"""What the billing tests share: the test issuer, local times, and the integration
tests' real registry (SQLite, or PostgreSQL where a module parametrizes it; migrated by
Alembic) and embedded telemetry store.

A test module takes the fixtures by binding them to its own names (pytest finds a
fixture by the module attribute; an import would trip ruff's F811 on each test's
argument) and defines ``clock``, the registry's clock (its own T0):

    registry, store, billing = shared.registry, shared.store, shared.billing
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import date, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from billing import document
from billing.service import BillingService
from core.registry import Registry
from core.store.embedded import EmbeddedStore
from tests.clock import Clock
from tests.conftest import registry_url_for

PARIS = ZoneInfo("Europe/Paris")

ISSUER = document.Issuer(
    name="Communauté de communes d'exemple",
    budget_code="01",
    budget_name="Budget annexe déchets",
    siret="20001234500017",
    address=("1 place de la Mairie", "67170 Exemple"),
    deliberation="Délibération n° 2012-45 du 10 décembre 2012",
    payment=("PayFiP : www.payfip.gouv.fr", "Virement : FR76 0000 0000 0000 0000"),
    treasury="Service de gestion comptable de Haguenau",
    collectivity_code="123",
    post_code="067012",
)


def at(day: date, hour: int = 6, minute: int = 0) -> datetime:
    """A local time in Paris (6:00: the morning round)."""
    return datetime.combine(day, time(hour, minute), tzinfo=PARIS)


@pytest.fixture
def registry(request: pytest.FixtureRequest, tmp_path: Path, clock: Clock) -> Iterator[Registry]:
    """SQLite unless a module parametrizes it indirectly with REGISTRY_BACKENDS."""
    backend = str(getattr(request, "param", "sqlite"))
    reg = Registry(registry_url_for(request, backend, tmp_path), clock=clock)
    reg.upgrade()
    yield reg
    reg.close()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[EmbeddedStore]:
    s = EmbeddedStore(tmp_path / "telemetry.sqlite")
    await s.open()
    yield s
    await s.close()


@pytest.fixture
def billing(registry: Registry, store: EmbeddedStore) -> BillingService:
    return BillingService(registry, store)
