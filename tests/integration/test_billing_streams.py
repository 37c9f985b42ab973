"""A yellow bin through the whole path: commissioned with its stream, read back by the
billing run from the registry (a real SQLite registry migrated by Alembic, the
embedded telemetry store) and billed by its stream's own grid, or left out."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import pytest

from billing.model import Period
from billing.service import BillingService, TariffFile
from core.records import BIN_EVENT, Record
from core.registry import Registry
from core.registry.devices import Devices
from core.registry.errors import InvalidCommissioning
from core.registry.models import Dwelling, Household, Occupancy
from core.store.embedded import EmbeddedStore
from tests import billing_fixtures as shared
from tests.billing_fixtures import PARIS
from tests.clock import Clock

S1 = Period.semester(2013, 1)
T0 = datetime(2012, 12, 1, 9, 0, tzinfo=UTC)  # bins commissioned then, before the period
OPERATOR = "agent.facturation"

TARIFF = """
[tariff]
territory = "t"
name = "Flux"
source = "illustrative"
illustrative = true
effective_from = 2013-01-01
effective_to = 2013-12-31
period = "semester"

[grid]
household_fixed = "43.50"
bin_fixed = { "120" = "20.00" }
minimum_lifts = 6
lift_price = { "120" = "2.80" }

[streams.recyclables]
bin_fixed = { "240" = "6.00" }
included_lifts = 4
lift_price = { "240" = "1.00" }

[issuer]
name = "Communauté de communes exemple (illustrative issuer)"
budget_code = "RC"
budget_name = "Budget annexe déchets (illustrative)"
siret = "00000000000000"
address = ["1 place de la Mairie", "26000 Valence"]
deliberation = "Délibération illustrative"
payment = ["Par virement auprès du comptable public (illustrative)"]
"""


# the shared fixtures (tests/billing_fixtures.py), with this module's clock
registry, store, billing = shared.registry, shared.store, shared.billing


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


def lifts(device_id: str, first: date, count: int, step_days: int) -> list[Record]:
    out = []
    for i in range(count):
        when = datetime.combine(first + timedelta(days=step_days * i), time(6), tzinfo=PARIS)
        ns = int(when.timestamp()) * 10**9
        out.append(Record(BIN_EVENT, device_id, ns, (("source", "truck-1"),), (("kind", "lift"),)))
    return out


async def household_with_two_bins(registry: Registry, store: EmbeddedStore) -> dict[str, object]:
    """H1 in D1 since 2012; a 120 L residual bin (9 lifts) and a 240 L yellow bin (7)."""
    with registry.transaction() as s:
        s.add(Dwelling(id="D1", address="1 rue du Tri", commune="Exemple"))
        s.add(Household(id="H1", name="Famille Tri", kind="primary"))
        s.flush()
        s.add(Occupancy(household_id="H1", dwelling_id="D1", start=date(2012, 5, 1)))
    devices = Devices(registry)
    devices.commission("bin-r1", "bin", actor="tech", dwelling_id="D1", volume_l=120)
    yellow = devices.commission(
        "bin-y1", "bin", actor="tech", dwelling_id="D1", volume_l=240, stream="recyclables"
    )
    await store.write(
        lifts("bin-r1", date(2013, 1, 7), 9, 7) + lifts("bin-y1", date(2013, 1, 8), 7, 14)
    )
    return yellow


async def test_a_bin_commissioned_as_recyclables_is_billed_by_its_streams_grid_in_a_run(
    registry: Registry, store: EmbeddedStore, billing: BillingService
) -> None:
    # household 43.50; residual 120 L: 20.00 + 9 x 2.80 = 25.20
    # yellow 240 L ([streams.recyclables]): 6.00 + (7 - 4 included) x 1.00 = 3.00 -> 97.70
    yellow = await household_with_two_bins(registry, store)
    assert yellow["stream"] == "recyclables"
    run = await billing.preview(TariffFile.parse(TARIFF, "flux.toml"), S1, actor=OPERATOR)
    assert run.bills == [{"household": "H1", "total": "97.70", "disposition": "issue"}]
    issued = await billing.issue(run.run_id, actor=OPERATOR, issued_on=date(2013, 7, 10))
    doc = billing.document(issued.invoices[0])
    found = [(line.kind, line.bin_id, line.amount) for line in doc.lines]
    assert found == [
        ("household_fixed", None, Decimal("43.50")),
        ("bin_fixed", "bin-r1", Decimal("20.00")),
        ("bin_fixed", "bin-y1", Decimal("6.00")),
        ("lifts", "bin-r1", Decimal("25.20")),
        ("lifts", "bin-y1", Decimal("3.00")),
    ]
    assert "bin-y1, recyclables" in doc.lines[4].explanation


async def test_a_territory_without_a_yellow_bin_grid_lists_its_lifts_as_not_billed(
    registry: Registry, store: EmbeddedStore, billing: BillingService
) -> None:
    # 43.50 + 20.00 + 25.20 = 88.70; the yellow bin's 7 lifts are left out, with a reason
    await household_with_two_bins(registry, store)
    text = TARIFF.replace('[streams.recyclables]\nbin_fixed = { "240" = "6.00" }\n', "")
    text = text.replace('included_lifts = 4\nlift_price = { "240" = "1.00" }\n', "")
    run = await billing.preview(TariffFile.parse(text, "flux.toml"), S1, actor=OPERATOR)
    assert run.bills == [{"household": "H1", "total": "88.70", "disposition": "issue"}]
    assert run.summary["excluded"] == {"stream_not_billed": 7}


def test_a_stream_is_refused_for_a_meter_and_unknown_streams_are_refused(
    registry: Registry,
) -> None:
    with registry.transaction() as s:
        s.add(Dwelling(id="D1", address="1 rue du Tri", commune="Exemple"))
    devices = Devices(registry)
    with pytest.raises(InvalidCommissioning, match="stream: bins and containers only"):
        devices.commission("wm-1", "meter", actor="tech", dwelling_id="D1", stream="recyclables")
    with pytest.raises(InvalidCommissioning, match="stream: one of residual"):
        devices.commission("bin-x", "bin", actor="tech", dwelling_id="D1", stream="yellow")
    assert (
        devices.commission("bin-r", "bin", actor="tech", dwelling_id="D1")["stream"] == "residual"
    )
