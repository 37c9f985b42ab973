"""A run's bills, computed identically at preview, at issue and at re-issue.

Reads the registry (billing/registry_io.py) and the period's lifts and deposits from
the telemetry store (``query_range``, once), then runs the pure modules: accounts
and anomalies (billing/accounts.py), the buildings' shared bins
(billing/collective.py), each bill (billing/rules.py). billing/service.py compares
the ``Computed.digest`` of the issue with the preview's.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Final
from zoneinfo import ZoneInfo

from billing import accounts as acc
from billing import collective as coll
from billing import registry_io as rio
from billing import rules
from billing.errors import BillingInputError
from billing.model import Account, Bill, Period, Tariff, bill_as_dict
from core.records import BIN_EVENT, Record
from core.registry.service import Registry
from core.store.port import TelemetryStore

PROGRESS_EVERY: Final = 1000  # households between two progress reports
LIFT_TAGS: Final = (("kind", "lift"),)
DEPOSIT_TAGS: Final = (("kind", "deposit"),)

Progress = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass
class Computed:
    """A run's bills, recomputed identically at preview and at issue."""

    snapshot: acc.Snapshot
    dwellings: rio.Addresses
    carry_ids: rio.CarryIds
    bills: list[tuple[Account, Bill]]
    failures: list[acc.Anomaly]
    anomalies: list[acc.Anomaly]
    collective: coll.Collective = field(default_factory=coll.Collective)  # buildings' debtors

    def digest(self) -> str:
        h = hashlib.sha256()
        for _, bill in self.bills:
            split = self.collective.splits.get(bill.household_id)
            as_dict = bill_as_dict(bill, list(split) if split is not None else None)
            h.update(json.dumps(as_dict, sort_keys=True).encode())
        for f in self.failures:
            h.update(json.dumps(f.as_dict(), sort_keys=True).encode())
        return h.hexdigest()

    def summary(self, tariff: Tariff, digest: str, period: Period) -> dict[str, Any]:
        """The run's counts and totals by disposition, exclusions and anomalies by reason."""
        out: dict[str, Any] = {
            "territory": tariff.territory,
            "tariff": tariff.name,
            "tariff_digest": digest,
            "period": period.label,
            "households": len(self.bills) + len(self.failures),
            "cannot_price": len(self.failures),
            "buildings": len(self.collective.bills),
        }
        for disposition in ("issue", "carry_over", "cancel"):
            chosen = [b for _, b in self.bills if b.disposition == disposition]
            total = sum((b.total for b in chosen), Decimal("0.00"))
            key = "to_issue" if disposition == "issue" else disposition
            out[key] = {"count": len(chosen), "total": str(total)}
        out["excluded"] = dict(
            sorted(Counter(e.reason for _, b in self.bills for e in b.excluded).items())
        )
        everything = self.failures + self.anomalies
        out["anomalies"] = dict(sorted(Counter(a.reason for a in everything).items()))
        return out


async def compute(
    registry: Registry,
    store: TelemetryStore,
    tariff: Tariff,
    period: Period,
    *,
    run_id: int | None,
    progress: Progress | None = None,
    only: str | None = None,
) -> Computed:
    """Every bill of ``period`` (``only``: one household's, for a re-issue)."""
    zone = ZoneInfo(tariff.timezone)
    counted = acc.event_period(period, tariff.variable_in_arrears)

    def read() -> tuple[acc.Snapshot, rio.Addresses, rio.CarryIds]:
        with registry.reading() as s:
            return rio.snapshot(s, period, counted, run_id, only)

    # Registry reads and the computation run in a worker thread: a 35,000-household
    # run must not stall the event loop that serves ingestion and HTTP meanwhile.
    snapshot, dwellings, carry_ids = await asyncio.to_thread(read)
    events = await _events(store, counted, zone)
    # A re-issue (``only``) is one household's: buildings are billed by runs only.
    buildings = coll.Buildings() if only else await asyncio.to_thread(_buildings, registry)

    def pure() -> tuple[list[tuple[Account, Bill]], list[acc.Anomaly], list[acc.Anomaly]]:
        # households without the buildings' shared bins (billed to the managers)
        homes, home_events = coll.without_shared(snapshot, events, buildings)
        accounts = acc.accounts(homes, home_events, period, zone)
        bills, failures = _bills(tariff, accounts, period, snapshot, progress)
        found = (
            []
            if only
            else acc.anomalies(homes, home_events, period, zone, tariff.variable_in_arrears)
        )
        return bills, failures, coll.tidy(found, snapshot, buildings)

    bills, failures, found = await asyncio.to_thread(pure)
    shared = coll.bill_buildings(tariff, snapshot, events, buildings, period, zone)
    return Computed(
        snapshot,
        dwellings,
        carry_ids,
        bills + shared.bills,
        failures + shared.failures,
        found + shared.anomalies,
        shared,
    )


def _buildings(registry: Registry) -> coll.Buildings:
    with registry.reading() as s:
        return rio.buildings(s)


async def _events(store: TelemetryStore, counted: Period, zone: ZoneInfo) -> acc.Events:
    start = _ns(datetime.combine(counted.first_day, time(0), tzinfo=zone))
    end = _ns(datetime.combine(counted.last_day + timedelta(days=1), time(0), tzinfo=zone))
    lifts = await store.query_range(BIN_EVENT, LIFT_TAGS, start, end)
    deposits = await store.query_range(BIN_EVENT, DEPOSIT_TAGS, start, end)
    return acc.Events(
        lifts=[_lift(r) for r in lifts],
        deposits=[d for r in deposits if (d := _deposit(r)) is not None],
    )


def _bills(
    tariff: Tariff,
    accounts: Sequence[Account],
    period: Period,
    snapshot: acc.Snapshot,
    progress: Progress | None,
) -> tuple[list[tuple[Account, Bill]], list[acc.Anomaly]]:
    """Every account's bill; one the tariff cannot price is listed, not fatal."""
    bills: list[tuple[Account, Bill]] = []
    failures: list[acc.Anomaly] = []
    for n, account in enumerate(accounts, start=1):
        carried = snapshot.carried.get(account.household_id, Decimal(0))
        try:
            bills.append((account, rules.compute(tariff, account, period, carried_over=carried)))
        except BillingInputError as err:
            failures.append(
                acc.Anomaly(
                    "cannot_price", account.household_id, account.household_id, detail=str(err)
                )
            )
        if progress is not None and (n % PROGRESS_EVERY == 0 or n == len(accounts)):
            progress("compute", n, len(accounts))
    return bills, failures


def _lift(r: Record) -> acc.LiftEvent:
    weight = r.field("weight_kg")
    # a float from the store: its shortest repr is the value the device sent
    kg = Decimal(str(weight)) if isinstance(weight, int | float) else None
    return acc.LiftEvent(r.device_id, _at(r.time_ns), kg)


def _deposit(r: Record) -> acc.DepositEvent | None:
    badge = r.field("badge")
    return acc.DepositEvent(r.device_id, badge, _at(r.time_ns)) if isinstance(badge, str) else None


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _at(ns: int) -> datetime:
    return _EPOCH + timedelta(microseconds=ns // 1000)


def _ns(at: datetime) -> int:
    return (at - _EPOCH) // timedelta(microseconds=1) * 1000
