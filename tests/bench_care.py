"""Care scoring benchmark (issue 6): one `CareScoring.score_all` pass over a territory.

`.venv/bin/python -m tests.bench_care --households 100000` (writes ./bench-care.json).

Built, not measured: a registry (SQLite file, or a throw-away PostgreSQL with
``--postgres``) holding N monitored households -- dwelling, household, occupancy,
meter and its binding, an active care subscription with two contacts -- inserted in
bulk; the scoring window (alerts.scoring.SCORE_WINDOW) of meter indexes for every
meter, written to a real InfluxDB 1.x (tests/servers.py) in bulk line protocol; and a
trained rhythm model per household in the models directory.

The water use is device_sim's senior model (device_sim/senior.py): a pool of
``--personas`` healthy households (no incident, leak, outage or away period near the
scoring time) is simulated for 8 weeks and 3 days, each is trained on its 8 weeks
(alerts.scoring's own fit), and household i gets persona i % pool: its frames (every
15 min or every hour, as the persona's meter) under its own meter id and index
offset, and a copy of its model file. Training 100,000 households would take a
night of CPU, so training is timed on the pool and extrapolated (``train_*`` keys).

Measured: the first scoring pass after start (models read from disk) and a second
one (``--passes``); households/s, wall time against the scoring interval
(core.service.CARE_SCORE_S), peak RSS of this process and of influxd, and the alerts
the passes opened (healthy households: about none).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd
from sqlalchemy import func, insert, select

from alerts import detectors, scoring
from alerts.scoring import SCORE_WINDOW, TRAIN_WINDOW, CareScoring
from alerts.service import CareService
from alerts.sms import OutboxChannel
from core.records import METER_INDEX
from core.registry import Registry
from core.registry.models import (
    Alert,
    Binding,
    CareContact,
    CareSubscription,
    Device,
    Dwelling,
    Household,
    Occupancy,
)
from core.service import CARE_SCORE_S
from core.settings import Settings
from core.store.influx import InfluxStore
from device_sim import senior
from tests.bench import machine
from tests.bench_billing import peak_rss_mb, reset_peak_rss
from tests.servers import InfluxDB, PostgreSQL

DATABASE: Final = "foyer"
LOCAL: Final = scoring.LOCAL
# Scoring time: a Wednesday 10:00, 8 weeks and 2 days after the senior model's start
# (a Monday), so every persona has a full training window before it.
NOW_LOCAL: Final = senior.START + pd.Timedelta(days=58, hours=10)
SIM_DAYS: Final = 59
SINCE: Final = datetime(2020, 1, 1, tzinfo=UTC)
INSERT_BATCH: Final = 20_000  # registry rows per executemany
WRITE_LINES: Final = 100_000  # line-protocol lines per /write request (~5 MB)
QUIET_MARGIN: Final = timedelta(days=4)  # a healthy persona: nothing unusual this near


def now_utc() -> datetime:
    local: datetime = NOW_LOCAL.to_pydatetime()
    return local.replace(tzinfo=LOCAL).astimezone(UTC)


# ---- the persona pool ------------------------------------------------------------------


@dataclass(frozen=True)
class Persona:
    name: str
    interval_s: int
    frames_ns: np.ndarray  # UTC ns of the scoring window's frames
    index_l: np.ndarray  # int64 litres, from 0
    model_json: bytes
    train_s: float  # CPU time of one fit


def _utc_ns(local_s: np.ndarray) -> np.ndarray:
    """Senior-model seconds (local wall clock since START) to UTC nanoseconds."""
    local = senior.to_time(local_s).tz_localize(LOCAL, ambiguous="NaT", nonexistent="NaT")
    return np.asarray(local.tz_convert("UTC").as_unit("ns").asi8, dtype=np.int64)


def _healthy(hh: senior.Household, now_s: int) -> bool:
    lo, margin = now_s - int(QUIET_MARGIN.total_seconds()), 10 * senior.DAY
    quiet = [(a, b) for a, b, cause in hh.periods if cause.startswith("away_undeclared")]
    spans = [*hh.away, *quiet, *hh.outages, *((a, b) for a, b, _ in hh.leaks)]
    return not any(a < now_s and b > lo for a, b in spans) and not any(
        o > lo - margin for o, _ in hh.incidents
    )


def persona_pool(size: int, seed: int) -> list[Persona]:
    """``size`` healthy senior households, each trained on its 8 weeks."""
    now_s = int((NOW_LOCAL - senior.START).total_seconds())
    now = now_utc()
    pool: list[Persona] = []
    k = 0
    while len(pool) < size:
        hh = senior.simulate_household(f"P{k:05d}", days=SIM_DAYS, seed=seed)
        k += 1
        if not _healthy(hh, now_s):
            continue
        frames_ns = _utc_ns(hh.frames)
        ok = frames_ns > 0  # the NaT of a DST gap is dropped
        frames_ns, index = frames_ns[ok], hh.index_l[ok].astype(np.int64)
        index -= index[0]
        pool.append(_persona(hh.household, hh.interval_s, frames_ns, index, now))
    return pool


def _persona(name: str, interval_s: int, t_ns: np.ndarray, index: np.ndarray,
             now: datetime) -> Persona:  # fmt: skip
    now_ns = int(now.timestamp() * 1e9)
    train = (t_ns >= now_ns - int(TRAIN_WINDOW.total_seconds() * 1e9)) & (t_ns < now_ns)
    local = pd.to_datetime(t_ns[train], utc=True).tz_convert(LOCAL).tz_localize(None)
    data = detectors.HouseholdData(
        household_id=name,
        device_id=name,
        readings=pd.DataFrame({"time": local, "index_l": index[train].astype(float)}),
    )
    started = time.process_time()
    model = scoring._fit(data, now)
    train_s = time.process_time() - started
    window = (t_ns >= now_ns - int(SCORE_WINDOW.total_seconds() * 1e9)) & (t_ns <= now_ns)
    return Persona(name, interval_s, t_ns[window], index[window],
                   json.dumps(model.to_dict()).encode(), train_s)  # fmt: skip


# ---- the territory -----------------------------------------------------------------


def household_id(i: int) -> str:
    return f"h-{i:06d}"


def meter_id(i: int) -> str:
    return f"wm-{i:06d}"


def _chunks(
    rows: Iterator[dict[str, Any]], size: int = INSERT_BATCH
) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def fill_registry(registry: Registry, households: int, seed: int) -> None:
    """Every table the scoring job reads, in bulk (not N API calls)."""
    rng = random.Random(f"care-bench/{seed}")
    ids = range(1, households + 1)
    tables: list[tuple[Any, Iterator[dict[str, Any]]]] = [
        (
            Dwelling,
            (
                {
                    "id": f"d-{i:06d}",
                    "address": f"{i} rue des Tilleuls",
                    "commune": f"Commune {i % 40}",
                }
                for i in ids
            ),
        ),
        (
            Household,
            (
                {"id": household_id(i), "name": f"Famille {i}", "size": 1, "kind": "primary"}
                for i in ids
            ),
        ),
        (
            Occupancy,
            (
                {
                    "household_id": household_id(i),
                    "dwelling_id": f"d-{i:06d}",
                    "start": date(2015, 1, 1),
                    "end": None,
                }
                for i in ids
            ),
        ),
        (
            Device,
            (
                {"device_id": meter_id(i), "kind": "meter", "status": "active", "created_at": SINCE}
                for i in ids
            ),
        ),
        (
            Binding,
            (
                {
                    "device_id": meter_id(i),
                    "dwelling_id": f"d-{i:06d}",
                    "valid_from": SINCE,
                    "valid_to": None,
                }
                for i in ids
            ),
        ),
        (
            CareSubscription,
            (
                {
                    "id": i,
                    "household_id": household_id(i),
                    "person_label": f"Personne {i}",
                    "language": "fr",
                    "consent_at": SINCE,
                    "consent_by": "bench",
                    "status": "active",
                    "created_at": SINCE,
                }
                for i in ids
            ),
        ),
        (
            CareContact,
            (
                {
                    "subscription_id": i,
                    "position": p,
                    "name": f"Proche {p}",
                    "phone": f"+336{rng.randrange(10**8):08d}",
                    "language": "fr",
                }
                for i in ids
                for p in (1, 2)
            ),
        ),
    ]
    for table, rows in tables:
        for batch in _chunks(rows):
            with registry.transaction() as s:
                s.execute(insert(table), batch)


def _lines(i: int, p: Persona, offset: int) -> str:
    # the schema's line (docs/schema.md), as core.store.lineprotocol.to_line writes it
    head = f"{METER_INDEX},device_id={meter_id(i)} index_l="
    return "".join(
        f"{head}{v + offset}i {t}\n"
        for t, v in zip(p.frames_ns.tolist(), p.index_l.tolist(), strict=True)
    )


def write_telemetry(url: str, households: int, pool: Sequence[Persona], seed: int) -> int:
    """The scoring window of every meter, in bulk line protocol; returns the points."""
    rng = random.Random(f"care-bench-index/{seed}")
    body: list[str] = []
    lines = points = 0
    for i in range(1, households + 1):
        p = pool[i % len(pool)]
        body.append(_lines(i, p, rng.randrange(1000, 900_000)))
        lines += len(p.frames_ns)
        if lines >= WRITE_LINES or i == households:
            _post(url, "".join(body).encode())
            points += lines
            body, lines = [], 0
    return points


def _post(url: str, body: bytes) -> None:
    req = urllib.request.Request(f"{url}/write?db={DATABASE}&precision=ns", data=body)  # noqa: S310
    with urllib.request.urlopen(req, timeout=120) as resp:  # noqa: S310 - the bench's own server
        if resp.status != 204:
            raise RuntimeError(f"influxdb write answered {resp.status}")


def write_models(models: Path, households: int, pool: Sequence[Persona]) -> None:
    models.mkdir(parents=True, exist_ok=True)
    for i in range(1, households + 1):
        (models / f"{household_id(i)}.json").write_bytes(pool[i % len(pool)].model_json)


# ---- measuring -------------------------------------------------------------------------


def pid_peak_rss_mb(pid: int | None) -> float | None:
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def workers_peak_rss_mb() -> list[float]:
    """Peak RSS of each scoring process (care_score_workers > 1), since it started."""
    peaks = (pid_peak_rss_mb(p.pid) for p in multiprocessing.active_children())
    return sorted(p for p in peaks if p is not None)


def alerts_by_kind(registry: Registry) -> dict[str, int]:
    with registry.reading() as s:
        rows = s.execute(select(Alert.kind, func.count()).group_by(Alert.kind)).all()
    return {str(kind): int(n) for kind, n in rows}


def pid_cpu_s(pid: int | None) -> float | None:
    """User + system CPU seconds of a process (here: influxd), from /proc."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def time_passes(
    scoring_job: CareScoring, passes: int, influxd: int | None = None
) -> list[dict[str, Any]]:
    out = []
    for n in range(passes):
        reset_peak_rss()
        started = time.perf_counter()
        cpu = time.process_time()
        server_cpu = pid_cpu_s(influxd)
        scored = await scoring_job.score_all(now_utc())
        wall = time.perf_counter() - started
        server_after = pid_cpu_s(influxd)
        out.append({
            "pass": n + 1,
            "scored": scored,
            "wall_s": round(wall, 2),
            "cpu_s": round(time.process_time() - cpu, 2),
            "influxd_cpu_s": (
                round(server_after - server_cpu, 2)
                if server_cpu is not None and server_after is not None else None
            ),
            "households_per_s": round(scored / wall, 1) if wall else None,
            "share_of_interval": round(wall / CARE_SCORE_S, 3),
            "peak_rss_mb": peak_rss_mb(),
            "workers_peak_rss_mb": workers_peak_rss_mb(),
        })  # fmt: skip
        print(f"  care pass {n + 1}: {json.dumps(out[-1])}", file=sys.stderr, flush=True)
    return out


async def run_care_case(
    work: Path, households: int, *, personas: int = 200, passes: int = 2, seed: int = 1,
    registry_url: str | None = None, workers: int = 1,
) -> dict[str, Any]:  # fmt: skip
    started = time.perf_counter()
    pool = persona_pool(min(personas, households), seed)
    pool_s = time.perf_counter() - started
    (work / "influx").mkdir()
    influx = InfluxDB(work / "influx")
    influx.start()
    registry = Registry(registry_url or f"sqlite:///{work / 'care-registry.sqlite'}")
    store = InfluxStore(influx.url, DATABASE)
    try:
        influx.create_database(DATABASE)
        registry.upgrade()
        fill_registry(registry, households, seed)
        points = write_telemetry(influx.url, households, pool, seed)
        write_models(work / "care-models", households, pool)
        build_s = time.perf_counter() - started
        print(f"  care bench built in {build_s:.0f} s: {points} points", file=sys.stderr)
        await store.open()
        care = CareService(registry, OutboxChannel(work / "outbox.jsonl"))
        job = CareScoring(store, care, work / "care-models", workers=workers)
        try:
            timed = await time_passes(job, passes, influx.proc.pid if influx.proc else None)
        finally:
            await job.close()
        train_each = sum(p.train_s for p in pool) / len(pool)
        first = timed[0]
        return {
            "case": "care_scoring",
            "households": households,
            "workers": workers,
            "personas": len(pool),
            "frames_15min": sum(p.interval_s == 900 for p in pool),
            "points": points,
            "score_window_h": SCORE_WINDOW.total_seconds() / 3600,
            "interval_s": CARE_SCORE_S,
            "build_s": round(build_s, 1),
            "pool_s": round(pool_s, 1),
            "train_s_each": round(train_each, 4),
            "train_extrapolated_s": round(train_each * households, 1),
            "train_note": "fit CPU timed on the persona pool, times N (store reads not included)",
            "passes": timed,
            "wall_s": first["wall_s"],
            "households_per_s": first["households_per_s"],
            "share_of_interval": first["share_of_interval"],
            "peak_rss_mb": max(p["peak_rss_mb"] for p in timed),
            "influxd_peak_rss_mb": pid_peak_rss_mb(influx.proc.pid if influx.proc else None),
            "alerts": alerts_by_kind(registry),
            "machine": machine(),
        }
    finally:
        await store.close()
        registry.close()
        influx.stop()


def report(r: dict[str, Any], out: Any = sys.stdout) -> None:
    w = out.write
    w(f"\n{'case':<14}{'households':>11}{'pass':>5}{'wall s':>9}{'hh/s':>9}"
      f"{'of ' + str(r['interval_s']) + ' s':>9}{'peak RSS':>11}{'alerts':>8}\n")  # fmt: skip
    n_alerts = sum(r["alerts"].values())
    for p in r["passes"]:
        w(f"{r['case']:<14}{p['scored']:>11}{p['pass']:>5}{p['wall_s']:>9}"
          f"{p['households_per_s']:>9}{p['share_of_interval']:>9.0%}"
          f"{p['peak_rss_mb']:>8} MB{n_alerts:>8}\n")  # fmt: skip
    w(f"{'':<14}{r['points']} points from {r['personas']} personas "
      f"({r['frames_15min']} every 15 min), built in {r['build_s']} s; "
      f"influxd peak {r['influxd_peak_rss_mb']} MB\n")  # fmt: skip
    w(
        f"{'':<14}training {r['train_s_each'] * 1000:.1f} ms/household: "
        f"{r['train_extrapolated_s']} s for all (extrapolated); alerts {r['alerts']}\n"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.bench_care",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--households", type=int, default=100_000)
    parser.add_argument("--personas", type=int, default=200, help="simulated household pool")
    parser.add_argument("--passes", type=int, default=2, help="scoring passes timed")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--postgres", action="store_true", help="registry on PostgreSQL")
    parser.add_argument(
        "--workers", type=int, default=Settings().care_score_workers,
        help="scoring processes (care_score_workers; default: the service's, one per core)",
    )  # fmt: skip
    parser.add_argument("--json", type=Path, default=Path("bench-care.json"))
    args = parser.parse_args(argv)
    pg = PostgreSQL() if args.postgres else None
    try:
        url = None
        if pg is not None:
            pg.start()
            url = pg.url()
        with tempfile.TemporaryDirectory(prefix="foyer-carebench-") as tmp:
            result = asyncio.run(run_care_case(
                Path(tmp), args.households, personas=args.personas, passes=args.passes,
                seed=args.seed, registry_url=url, workers=args.workers))  # fmt: skip
    finally:
        if pg is not None:
            pg.stop()
            pg.remove()
    result["registry"] = "postgresql" if args.postgres else "sqlite"
    print(json.dumps(result))
    report(result)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
