"""Collective housing end to end: buildings, their dwellings and households imported
from CSV into a real SQLite registry migrated by Alembic, shared bins bound to the
building's common parts, lifts in the embedded store, the bundled illustrative
collective tariff (lifts in arrears: the 2024-S2 bill counts the lifts of 2024-S1).

Every building below has the same shared bins and lifts, so the manager's bill is
(no household part in [grids.collective]):
  fixed parts, full semester: 150.00 + 150.00 (660 L) + 175.00 (770 L) = 475.00
  lifts of S1: A 26 x 11.50 = 299.00; B 10 < minimum 13: 13 x 11.50 = 149.50;
               C 13 x 13.40 = 174.20
  total 1097.70
"""

from __future__ import annotations

import io
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pypdf
import pytest
from sqlalchemy import select

from billing import pdf
from billing.document import InvoiceDoc
from billing.model import Period
from billing.service import BillingService, TariffFile, read_tariff
from core.records import BIN_EVENT, Record
from core.registry import Registry
from core.registry.models import Binding, Device, Household, Occupancy
from core.registry.territory import Territory
from core.store.embedded import EmbeddedStore
from tests import billing_fixtures as shared
from tests.billing_fixtures import at
from tests.clock import Clock

# the shared fixtures, with this module's clock below
registry, store, billing = shared.registry, shared.store, shared.billing

S2 = Period.semester(2024, 2)
T0 = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)
SINCE = datetime(2020, 1, 1, tzinfo=UTC)
ISSUED = date(2025, 1, 10)
OPERATOR = "agent.facturation"
BUILDING_TOTAL = Decimal("1097.70")
SHARED = (("A", 660), ("B", 660), ("C", 770))


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def tariff() -> TariffFile:
    return read_tariff("illustrative-collective-2024")


def _import(registry: Registry, kind: str, text: str) -> None:
    Territory(registry).import_csv(kind, text.encode(), actor=OPERATOR, filename=f"{kind}.csv")


def building(
    registry: Registry,
    bid: str,
    key: str,
    sizes: tuple[int, ...] = (1, 2, 3, 4, 2, 1, 3),
    shares: tuple[int, ...] = (120, 95, 150, 80, 200, 175, 180),
    manager: str = 'Syndic Durand;"4 avenue Victor Hugo\n26000 Valence"',
) -> list[str]:
    """A building of 7 homes (one household each since 2023) and its common parts."""
    head = "id;name;split_key;manager_name;manager_address\n"
    _import(registry, "buildings", f"{head}{bid};Résidence {bid};{key};{manager}\n")
    homes = [f"{bid}-{n:02d}" for n in range(1, 8)]
    rows = [f"{bid}-cp;4 av. Victor Hugo, parties communes;{bid};;yes"] + [
        f"{h};{n} av. Victor Hugo;{bid};{s};no"
        for n, (h, s) in enumerate(zip(homes, shares, strict=True), 1)
    ]
    _import(registry, "dwellings", "\n".join(["id;address;building_id;shares;collective", *rows]))
    people = [f"h-{h};Famille {h};{n};{h};2023-01-01" for h, n in zip(homes, sizes, strict=True)]
    _import(registry, "households", "\n".join(["id;name;size;dwelling_id;move_in", *people]))
    with registry.transaction() as s:
        for name, volume in SHARED:
            s.add(Device(device_id=f"{bid}-{name}", kind="bin", volume_l=volume, created_at=SINCE))
        s.flush()
        for name, _ in SHARED:
            s.add(Binding(device_id=f"{bid}-{name}", dwelling_id=f"{bid}-cp", valid_from=SINCE))
    return homes


def lift(device_id: str, day: date) -> Record:
    when = at(day)
    fields = (("source", "truck-1"),)
    return Record(BIN_EVENT, device_id, int(when.timestamp()) * 10**9, fields, (("kind", "lift"),))


async def lifts_of_s1(store: EmbeddedStore, bid: str) -> None:
    """A: 26 weekly lifts, B: 10, C: 13 (fortnightly), all in 2024-S1."""
    counts = {"A": (26, 7), "B": (10, 7), "C": (13, 14)}
    await store.write(
        [
            lift(f"{bid}-{name}", date(2024, 1, 2) + timedelta(days=step * i))
            for name, (n, step) in counts.items()
            for i in range(n)
        ]
    )


async def issue(billing: BillingService, tf: TariffFile) -> tuple[list[InvoiceDoc], list[str]]:
    """Preview and issue 2024-S2; the issued documents and the anomalies' reasons."""
    run = await billing.preview(tf, S2, actor=OPERATOR)
    issued = await billing.issue(run.run_id, actor=OPERATOR, issued_on=ISSUED)
    return [billing.document(n) for n in issued.invoices], [a["reason"] for a in run.anomalies]


def of(docs: list[InvoiceDoc], debtor: str) -> list[InvoiceDoc]:
    return [d for d in docs if d.debtor.ref == debtor]


def assert_residents_pay_their_own_part_only(docs: list[InvoiceDoc], homes: list[str]) -> None:
    for home in homes:
        [doc] = of(docs, f"h-{home}")
        assert doc.debtor.kind == "person"
        assert [(line.kind, line.bin_id) for line in doc.lines] == [("household_fixed", None)]


async def test_a_building_split_by_persons_gets_one_invoice_to_its_manager_adding_up_exactly(
    registry: Registry, store: EmbeddedStore, billing: BillingService, tariff: TariffFile
) -> None:
    homes = building(registry, "bat-P", "persons", sizes=(1, 2, 3, 6, 2, 1, 3))
    # home 04: a household of 6 leaves on 1 October and one of 4 moves in; the key is
    # taken on the period's last day, so 4 persons there
    with registry.transaction() as s:
        stay = s.scalars(select(Occupancy).where(Occupancy.dwelling_id == "bat-P-04")).one()
        stay.end = date(2024, 10, 1)
    _import(registry, "households", "id;size;dwelling_id;move_in\nh-new;4;bat-P-04;2024-10-01\n")
    await lifts_of_s1(store, "bat-P")
    docs, anomalies = await issue(billing, tariff)
    [manager] = of(docs, "bat-P")
    assert (manager.debtor.kind, manager.debtor.name) == ("manager", "Syndic Durand")
    assert manager.debtor.address == ("4 avenue Victor Hugo", "26000 Valence")
    assert manager.total == BUILDING_TOTAL
    assert {line.bin_id for line in manager.lines} == {"bat-P-A", "bat-P-B", "bat-P-C"}
    # 109770 cents / 16 persons = 6860.625 a person; the 4 cents left go to the
    # largest remainders .875 (homes 03, 07), then .625 (01, 06)
    assert [amount for _, amount in manager.split] == [
        Decimal(x) for x in ("68.61", "137.21", "205.82", "274.42", "137.21", "68.61", "205.82")
    ]
    assert sum(amount for _, amount in manager.split) == manager.total
    assert manager.split[3][0] == "bat-P-04, 4 av. Victor Hugo (4 pers.)"
    text = _pdf_text(manager)
    assert "Répartition entre les logements" in text and "274,42" in text
    assert_residents_pay_their_own_part_only(docs, homes)
    # 40.00 x 92/184 days each side of the move
    assert [d.total for d in of(docs, "h-bat-P-04") + of(docs, "h-new")] == [Decimal("20.00")] * 2
    assert len(docs) == 1 + 7 + 1
    # the shared bins' lifts are the manager's: no lift at a vacant dwelling, no home
    # without equipment, no silent bin
    assert anomalies == []


async def test_a_building_split_by_shares_adds_up_to_the_cent(
    registry: Registry, store: EmbeddedStore, billing: BillingService, tariff: TariffFile
) -> None:
    homes = building(registry, "bat-S", "shares")
    await lifts_of_s1(store, "bat-S")
    docs, _ = await issue(billing, tariff)
    [manager] = of(docs, "bat-S")
    assert manager.total == BUILDING_TOTAL
    # 109770 cents x shares / 1000: 13172.4, 10428.15, 16465.5, 8781.6, 21954, 19209.75,
    # 19758.6; 3 cents left: .75 (home 06), then .6 (04 before 07)
    assert [amount for _, amount in manager.split] == [
        Decimal(x) for x in ("131.72", "104.28", "164.65", "87.82", "219.54", "192.10", "197.59")
    ]
    assert sum(amount for _, amount in manager.split) == manager.total
    assert manager.split[0][0] == "bat-S-01, 1 av. Victor Hugo (120 tantièmes)"
    assert_residents_pay_their_own_part_only(docs, homes)


async def test_a_building_without_a_key_gets_its_invoice_without_a_split(
    registry: Registry, store: EmbeddedStore, billing: BillingService, tariff: TariffFile
) -> None:
    building(registry, "bat-N", "none")
    await lifts_of_s1(store, "bat-N")
    docs, _ = await issue(billing, tariff)
    [manager] = of(docs, "bat-N")
    assert (manager.total, manager.split) == (BUILDING_TOTAL, ())
    assert "Répartition" not in _pdf_text(manager)


async def test_a_key_that_cannot_be_applied_is_an_anomaly_and_the_bill_is_not_split(
    registry: Registry, store: EmbeddedStore, billing: BillingService, tariff: TariffFile
) -> None:
    building(registry, "bat-K", "persons")
    with registry.transaction() as s:
        s.scalars(select(Household).where(Household.id == "h-bat-K-02")).one().size = None
    await lifts_of_s1(store, "bat-K")
    run = await billing.preview(tariff, S2, actor=OPERATOR)
    [missing] = [a for a in run.anomalies if a["reason"] == "split_key_missing"]
    assert missing["ref"] == "bat-K" and "bat-K-02" in missing["detail"]
    issued = await billing.issue(run.run_id, actor=OPERATOR, issued_on=ISSUED)
    docs = [billing.document(n) for n in issued.invoices]
    [manager] = of(docs, "bat-K")
    assert (manager.total, manager.split) == (BUILDING_TOTAL, ())


async def test_a_building_with_shared_bins_and_no_manager_is_an_anomaly_and_not_billed(
    registry: Registry, store: EmbeddedStore, billing: BillingService, tariff: TariffFile
) -> None:
    homes = building(registry, "bat-M", "persons", manager=";")
    await lifts_of_s1(store, "bat-M")
    run = await billing.preview(tariff, S2, actor=OPERATOR)
    [anomaly] = [a for a in run.anomalies if a["reason"] == "building_without_manager"]
    assert anomaly["ref"] == "bat-M" and "3 shared bin(s)" in anomaly["detail"]
    assert run.summary["buildings"] == 0
    assert "bat-M" not in {b["household"] for b in run.bills}
    issued = await billing.issue(run.run_id, actor=OPERATOR, issued_on=ISSUED)
    docs = [billing.document(n) for n in issued.invoices]
    assert of(docs, "bat-M") == []
    assert_residents_pay_their_own_part_only(docs, homes)


def _pdf_text(doc: InvoiceDoc) -> str:
    reader = pypdf.PdfReader(io.BytesIO(pdf.render(doc)))
    return " ".join(" ".join(p.extract_text().split()) for p in reader.pages)
