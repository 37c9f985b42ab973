"""Billing benchmark (issues 5, 6): a semester's or a year's run for a territory, PDF rates.

`make bench` runs it after the ingestion cases; alone:
`.venv/bin/python -m tests.bench_billing --households 35000`, and for a calendar year
(events across 2024, billed with the yearly grid tests/bench_tariff_year.toml):
`.venv/bin/python -m tests.bench_billing --households 100000 --period year`.

A territory of N households is built from device_sim's fleet (households, their bins,
collection days, trucks, collective containers and badges) into a real SQLite
registry migrated by Alembic, and a semester of lifts (weighed by the truck, or not
when the bin reports its own lift) and badge deposits is written through the
embedded store adapter. Some households move out during the semester and others move
into the dwellings they left, some bins are swapped for another volume, some are not
bound, trucks now and then cannot read a chip or read a bin twice, and a few deposits
carry a badge the registry does not know: the anomalies a real run shows.
Building all this is not measured. Measured: `BillingService.preview` (with a
progress line on stderr) and `issue`, then PDFs of a sample of the issued invoices,
one file per bill (`render`) and one merged file (`render_many`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Final, TextIO
from zoneinfo import ZoneInfo

from sqlalchemy import insert, select

from billing import pdf
from billing.model import Period
from billing.service import BillingService, read_tariff
from core.records import BIN_EVENT, FieldValue, Record
from core.registry import Registry
from core.registry.models import Binding, Device, Invoice
from core.registry.territory_import import import_csv
from core.store.embedded import EmbeddedStore
from device_sim import behaviour
from device_sim.fleet import Fleet, Household, build_fleet

HERE: Final = Path(__file__).resolve().parent
# A territory billing twice a year prices a semester by the semestrial grid; one billing
# once a year has its own yearly grid (fixed parts doubled, twice the lifts and openings
# included): one bill a year on a grid voted for the year, not two semestrial bills.
TARIFFS: Final = {"semester": HERE / "bench_tariff.toml", "year": HERE / "bench_tariff_year.toml"}
TARIFF: Final = TARIFFS["semester"]
PERIODS: Final = {"semester": Period.semester(2024, 1), "year": Period.year(2024)}
PERIOD: Final = PERIODS["semester"]
ZONE: Final = ZoneInfo("Europe/Paris")
ISSUED_AFTER: Final = timedelta(days=10)  # bills go out ten days after the period
ACTOR: Final = "bench"
SINCE: Final = datetime(2020, 1, 1, tzinfo=UTC)  # bins installed before the period
VOLUMES: Final = ((80, 0.15), (120, 0.5), (180, 0.15), (240, 0.2))  # litres, share
MOVE_OUT_SHARE: Final = 0.03  # bin households leaving during the semester
NEWCOMER_SHARE: Final = 0.02  # households moving into a dwelling left in the semester
SWAP_SHARE: Final = 0.01  # bins swapped for another volume during the semester
UNBOUND_SHARE: Final = 0.002  # bins never bound: their lifts are anomalies
UNREAD_SHARE: Final = 0.002  # truck lifts whose chip could not be read
REREAD_SHARE: Final = 0.005  # truck lifts read twice (a duplicate the hygiene drops)
UNKNOWN_BADGE_SHARE: Final = 0.001
WRITE_BATCH: Final = 50_000  # records per store write: one transaction each


# ---- the territory ----------------------------------------------------------------


@dataclass
class Territory:
    """What the simulated territory looks like, for the registry and the events."""

    fleet: Fleet
    period: Period = PERIOD
    volumes: dict[str, int] = field(default_factory=dict)  # bin -> litres
    bound: dict[str, str] = field(default_factory=dict)  # bin -> dwelling
    swaps: dict[str, tuple[str, datetime]] = field(default_factory=dict)  # old -> (new, at)
    moved_out: dict[str, date] = field(default_factory=dict)  # household -> move-out day
    newcomers: list[tuple[str, str, date]] = field(default_factory=list)  # hh, dwelling, in


def plan_territory(households: int, seed: int, period: Period = PERIOD) -> Territory:
    """device_sim's fleet, plus the registry's view of it: volumes, moves, swaps."""
    newcomers = round(households * NEWCOMER_SHARE) if households >= 10 else 0
    fleet = build_fleet(households - newcomers, seed)
    rng = random.Random(f"billing-bench/{seed}")
    t = Territory(fleet, period)
    for h in fleet.households:
        if h.bin_id is None:
            continue
        t.volumes[h.bin_id] = rng.choices([v for v, _ in VOLUMES], [w for _, w in VOLUMES])[0]
        if rng.random() >= UNBOUND_SHARE:
            t.bound[h.bin_id] = dwelling_of(h)
        if rng.random() < SWAP_SHARE:
            _plan_swap(t, h.bin_id, rng)
    movers = [h for h in fleet.households if h.bin_id in t.bound]
    wanted = max(newcomers, round(len(movers) * MOVE_OUT_SHARE))
    leaving = rng.sample(movers, min(len(movers), wanted))
    for h in leaving:
        t.moved_out[h.household_id] = _day_in(period, rng, 10, 12)
    for n, h in enumerate(leaving[:newcomers], start=len(fleet.households) + 1):
        arrival = t.moved_out[h.household_id] + timedelta(days=rng.randrange(0, 21))
        t.newcomers.append((f"h-{n}", dwelling_of(h), arrival))
    return t


def _plan_swap(t: Territory, bin_id: str, rng: random.Random) -> None:
    day = _day_in(t.period, rng, 20, 22)
    at = datetime(day.year, day.month, day.day, 10, tzinfo=ZONE).astimezone(UTC)
    new = f"{bin_id}-s"
    t.swaps[bin_id] = (new, at)
    t.volumes[new] = rng.choice([v for v, _ in VOLUMES if v != t.volumes[bin_id]])


def _day_in(period: Period, rng: random.Random, after: int, before_end: int) -> date:
    """A day of the period, ``after`` days from its start and ``before_end`` before its end."""
    return period.first_day + timedelta(days=rng.randrange(after, period.days - before_end))


def dwelling_of(h: Household) -> str:
    return f"d-{h.household_id.removeprefix('h-')}"


def _csv(header: str, rows: Iterator[str]) -> bytes:
    return (header + "\n" + "".join(f"{r}\n" for r in rows)).encode()


def fill_registry(registry: Registry, t: Territory, seed: int) -> None:
    """Dwellings, households and badges through the territory CSV import (the real
    path, all rows checked), then devices and bindings in bulk."""
    rng = random.Random(f"billing-bench-registry/{seed}")
    homes = t.fleet.households
    dwellings = (f"{dwelling_of(h)},{h.household_id[2:]} rue des Vignes,Commune {i % 40}"
                 for i, h in enumerate(homes))  # fmt: skip
    import_csv(registry, "dwellings", _csv("id,address,commune", dwellings),
               actor=ACTOR, filename="dwellings.csv")  # fmt: skip
    rows = [_household_row(h.household_id, dwelling_of(h), _move_in(t, h, rng),
                           t.moved_out.get(h.household_id), rng) for h in homes]  # fmt: skip
    rows += [_household_row(hid, d, arrival, None, rng) for hid, d, arrival in t.newcomers]
    import_csv(registry, "households",
               _csv("id,dwelling_id,move_in,move_out,name,size,kind", iter(rows)),
               actor=ACTOR, filename="households.csv")  # fmt: skip
    badges = (f"{h.badge_id},{h.household_id},2020-01-01," for h in homes if h.badge_id)
    import_csv(registry, "badges", _csv("id,household_id,valid_from,valid_to", badges),
               actor=ACTOR, filename="badges.csv")  # fmt: skip
    _insert_devices(registry, t)


def _move_in(t: Territory, h: Household, rng: random.Random) -> date:
    # A few households arrive during the semester in a dwelling whose bin was there
    # before them: its earlier lifts are "lift at a vacant dwelling".
    arrives = rng.random() < 0.005
    if arrives and h.bin_id is not None and h.household_id not in t.moved_out:
        return _day_in(t.period, rng, 10, 32)
    return date(2005, 1, 1) + timedelta(days=rng.randrange(0, 6900))


def _household_row(
    hid: str, dwelling: str, move_in: date, move_out: date | None, rng: random.Random
) -> str:
    kind = rng.choices(("primary", "secondary", "professional"), (0.93, 0.05, 0.02))[0]
    out = move_out.isoformat() if move_out else ""
    return f"{hid},{dwelling},{move_in},{out},Famille {hid[2:]},{rng.randint(1, 6)},{kind}"


def _insert_devices(registry: Registry, t: Territory) -> None:
    devices: list[dict[str, Any]] = [
        {"device_id": b, "kind": "bin", "volume_l": v, "status": "active", "created_at": SINCE}
        for b, v in t.volumes.items()
    ]
    devices += [{"device_id": c, "kind": "container", "volume_l": 3000, "status": "active",
                 "created_at": SINCE} for c in t.fleet.containers]  # fmt: skip
    devices += [{"device_id": k, "kind": "truck", "status": "active", "created_at": SINCE}
                for k in t.fleet.trucks]  # fmt: skip
    bindings = []
    for bin_id, dwelling in t.bound.items():
        new, at = t.swaps.get(bin_id, (None, None))
        bindings.append({"device_id": bin_id, "dwelling_id": dwelling, "valid_from": SINCE,
                         "valid_to": at})  # fmt: skip
        if new is not None:
            bindings.append({"device_id": new, "dwelling_id": dwelling, "valid_from": at,
                             "valid_to": None})  # fmt: skip
    with registry.transaction() as s:
        s.execute(insert(Device), devices)
        s.execute(insert(Binding), bindings)


# ---- the semester's events ----------------------------------------------------------


def _ns(t: float) -> int:
    return round(t * 1000) * 1_000_000  # SenML times carry milliseconds


def _lift(device: str, t: float, source: str, kg: float | None) -> Record:
    fields: tuple[tuple[str, FieldValue], ...] = (("source", source),)
    if kg is not None:
        fields += (("weight_kg", kg),)
    return Record(BIN_EVENT, device, _ns(t), fields, (("kind", "lift"),))


def _deposit(container: str, t: float, badge: str, litres: float | None) -> Record:
    fields: tuple[tuple[str, FieldValue], ...] = (("source", container), ("badge", badge))
    if litres is not None:
        fields += (("volume_l", litres),)
    return Record(BIN_EVENT, container, _ns(t), fields, (("kind", "deposit"),))


def _window(period: Period) -> tuple[float, float]:
    first, end = period.first_day, period.last_day + timedelta(days=1)
    start = datetime(first.year, first.month, first.day, tzinfo=ZONE).timestamp()
    return start, datetime(end.year, end.month, end.day, tzinfo=ZONE).timestamp()


def bin_lifts(t: Territory, h: Household, rng: random.Random) -> list[Record]:
    """device_sim's lifts of one household's bin: a sensor bin reports them without a
    weight, a truck reads the chip and weighs (now and then it misses or re-reads)."""
    assert h.bin_id is not None
    t0, t1 = _window(t.period)
    new, swap_at = t.swaps.get(h.bin_id, (None, None))
    out = []
    for at, kg in behaviour.lifts_in(h.bin_id, h.collection_day, t0, t1):
        device = new if new and swap_at and at >= swap_at.timestamp() else h.bin_id
        if h.bin_self_reports:
            out.append(_lift(device, at, device, None))
            continue
        truck = h.truck_id or "t-1"
        if rng.random() < UNREAD_SHARE:
            out.append(_lift(truck, at, truck, None))  # PROTOCOL.md: no chip, its own name
            continue
        out.append(_lift(device, at, truck, kg))
        if rng.random() < REREAD_SHARE:
            out.append(_lift(device, at + rng.uniform(20, 300), truck, kg))
    return out


def container_deposits(
    fleet: Fleet, container: str, badges: list[str], seed: int, period: Period = PERIOD
) -> list[Record]:
    t0, t1 = _window(period)
    rng = random.Random(f"billing-bench/{seed}/{container}")
    out = []
    for at, badge, litres in behaviour.deposits_in(badges, t0, t1, rng):
        if rng.random() < UNKNOWN_BADGE_SHARE:
            badge = f"badge-x{rng.randrange(10**6)}"  # a badge from another territory
        out.append(_deposit(container, at, badge, litres))
    return out


async def write_events(store: EmbeddedStore, t: Territory, seed: int) -> dict[str, int]:
    """The semester's lifts and deposits, written in big batches through the adapter."""
    rng = random.Random(f"billing-bench-events/{seed}")
    batch: list[Record] = []
    counts = {"lifts": 0, "deposits": 0}

    async def flush(final: bool = False) -> None:
        if batch and (final or len(batch) >= WRITE_BATCH):
            await store.write(batch)
            batch.clear()

    for h in t.fleet.households:
        if h.bin_id is not None:
            lifts = bin_lifts(t, h, rng)
            counts["lifts"] += len(lifts)
            batch += lifts
            await flush()
    badges: dict[str, list[str]] = {}
    for h in t.fleet.households:
        if h.container_id and h.badge_id:
            badges.setdefault(h.container_id, []).append(h.badge_id)
    for container, held in badges.items():
        deposits = container_deposits(t.fleet, container, held, seed, t.period)
        counts["deposits"] += len(deposits)
        batch += deposits
        await flush()
    await flush(final=True)
    return counts


# ---- measuring ------------------------------------------------------------------------


class ProgressLine:
    """`stage: done/total households, rate/s`, rewritten in place on one line.

    The rate counts from ``begin()``, so the preview's reading of the registry and
    the store is in it (the service reports only once the bills are being computed).
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._started = time.monotonic()

    def begin(self) -> None:
        self._started = time.monotonic()

    def __call__(self, stage: str, done: int, total: int) -> None:
        elapsed = time.monotonic() - self._started
        rate = done / elapsed if elapsed > 0 else 0.0
        end = "\n" if done >= total else ""
        self._stream.write(
            f"\r  {stage}: {done:,}/{total:,} households, {rate:,.0f}/s, {elapsed:.0f} s   {end}"
        )
        self._stream.flush()


def reset_peak_rss() -> bool:
    """Forget the peak so far (Linux >= 4.0: writing 5 to clear_refs resets VmHWM)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def peak_rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def count_lines(registry: Registry, run_id: int) -> int:
    stmt = select(Invoice.document).where(Invoice.run_id == run_id)
    with registry.reading() as s:
        return sum(len(json.loads(doc)["lines"]) for doc in s.scalars(stmt))


def pdf_rates(service: BillingService, numbers: Sequence[str]) -> dict[str, Any]:
    """`render` per bill and `render_many` into one file, over the same documents."""
    docs = [service.document(n) for n in numbers]
    pdf.fonts()  # registered once per process: not part of a bill's cost
    started = time.perf_counter()
    size = sum(len(pdf.render(d)) for d in docs)
    each_s = time.perf_counter() - started
    started = time.perf_counter()
    merged = len(pdf.render_many(docs))
    many_s = time.perf_counter() - started
    return {
        "pdf_sample": len(docs),
        "pdf_render_s": round(each_s, 2),
        "pdf_render_per_s": round(len(docs) / each_s, 1) if each_s else None,
        "pdf_render_kb_each": round(size / len(docs) / 1024, 1) if docs else None,
        "pdf_render_many_s": round(many_s, 2),
        "pdf_render_many_per_s": round(len(docs) / many_s, 1) if many_s else None,
        "pdf_render_many_mb": round(merged / 2**20, 2),
    }


async def run_billing_case(
    work: Path, households: int, *, sample: int = 1000, seed: int = 7,
    progress: TextIO = sys.stderr, period: str = "semester",
) -> dict[str, Any]:  # fmt: skip
    """Build the territory in ``work``, then time preview, issue and the PDFs."""
    started = time.perf_counter()
    billed = PERIODS[period]
    t = plan_territory(households, seed, billed)
    registry = Registry(f"sqlite:///{work / 'billing-registry.sqlite'}")
    store = EmbeddedStore(work / "billing-telemetry.sqlite")
    try:
        registry.upgrade()
        fill_registry(registry, t, seed)
        await store.open()
        events = await write_events(store, t, seed)
        build_s = time.perf_counter() - started
        service = BillingService(registry, store)
        line = ProgressLine(progress)
        reset_peak_rss()
        started = time.perf_counter()
        line.begin()
        tariff = read_tariff(str(TARIFFS[period]))
        run = await service.preview(tariff, billed, actor=ACTOR, progress=line)
        preview_s = time.perf_counter() - started
        started = time.perf_counter()
        line.begin()
        issued_on = billed.last_day + ISSUED_AFTER
        issued = await service.issue(run.run_id, actor=ACTOR, issued_on=issued_on, progress=line)
        issue_s = time.perf_counter() - started
        rss = peak_rss_mb()
        summary = run.summary
        result = {
            "case": "billing_run",
            "period": billed.label,
            "households": households,
            "households_billed": summary["households"],
            "lifts": events["lifts"],
            "deposits": events["deposits"],
            "build_s": round(build_s, 1),
            "preview_s": round(preview_s, 2),
            "issue_s": round(issue_s, 2),
            "households_per_s": round(summary["households"] / (preview_s + issue_s), 1),
            "bills_to_issue": summary["to_issue"]["count"],
            "invoices": len(issued.invoices),
            "carried": issued.carried,
            "cancelled": issued.cancelled,
            "cannot_price": summary["cannot_price"],
            "total_to_issue": summary["to_issue"]["total"],
            "lines": count_lines(registry, run.run_id),
            "anomalies": summary["anomalies"],
            "excluded": summary["excluded"],
            "peak_rss_mb": rss,
        }
        result |= pdf_rates(service, issued.invoices[:sample])
        return result
    finally:
        await store.close()
        registry.close()


def billing_case(
    work: Path, households: int, sample: int = 1000, period: str = "semester"
) -> dict[str, Any]:
    """For tests/bench.py's synchronous main."""
    return asyncio.run(run_billing_case(work, households, sample=sample, period=period))


def report(r: dict[str, Any], out: TextIO = sys.stdout) -> None:
    w = out.write
    w(f"\n{'case':<26}{'households':>11}{'invoices':>9}{'carried':>8}{'lines':>9}"
      f"{'preview s':>10}{'issue s':>8}{'hh/s':>8}{'peak RSS':>10}\n")  # fmt: skip
    w(f"{r['case']:<26}{r['households_billed']:>11}{r['invoices']:>9}{r['carried']:>8}"
      f"{r['lines']:>9}{r['preview_s']:>10}{r['issue_s']:>8}{r['households_per_s']:>8}"
      f"{r['peak_rss_mb']:>7} MB\n")  # fmt: skip
    w(f"{'':<26}events: {r['lifts']} lifts, {r['deposits']} deposits (built in {r['build_s']} s)"
      f"; cancelled {r['cancelled']}, cannot price {r['cannot_price']}\n")  # fmt: skip
    w(f"{'':<26}anomalies: {r['anomalies']}\n")
    w(f"{'':<26}excluded: {r['excluded']}\n")
    w(f"{'billing_pdf':<26}{r['pdf_sample']} bills: render {r['pdf_render_per_s']} bills/s"
      f" ({r['pdf_render_kb_each']} kB each), render_many {r['pdf_render_many_per_s']} bills/s"
      f" ({r['pdf_render_many_mb']} MB)\n")  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench_billing", description=__doc__)
    parser.add_argument("--households", type=int, default=35_000)
    parser.add_argument("--sample", type=int, default=1000, help="invoices rendered as PDF")
    parser.add_argument("--period", choices=sorted(PERIODS), default="semester",
                        help="2024-S1, or the calendar year 2024 (its yearly tariff)")  # fmt: skip
    parser.add_argument("--json", type=Path, help="also write the result to this file")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="foyer-billbench-") as tmp:
        result = billing_case(Path(tmp), args.households, args.sample, args.period)
    print(json.dumps(result))
    report(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
