"""Ingestion scale report (issue 6, "Load and soak"): `make bench-scale`.

    python -m tests.bench_scale [--only workers|soak|adoption|catchup ...] [--all] [--json PATH]

Real InfluxDB 1.x and Mosquitto on loopback (tests/servers.py), `foyer serve --role
ingest` workers in their own processes, load generators in their own processes. Four
cases, each printed as a table row and written with the machine's figures to
./bench-scale.json:

1. workers: MQTT QoS 1 into InfluxDB through 1, 2 and 4 ingest workers on one shared
   subscription (distinct client ids, one group). Throughput, ack latency p50/p99 from
   every worker's histogram merged, zero loss by counting the points in InfluxDB, CPU
   seconds of each process (workers, mosquitto, influxd, publishers).
2. soak: a steady rate through one worker for BENCH_SOAK_S; every BENCH_SOAK_SAMPLE_S
   the worker's RSS, write-queue depth, spool depth and ack latency. "flat" when the RSS
   slope over the second half is under BENCH_SOAK_FLAT_MB (MB per 10 minutes) and the
   queue never held more than one second of arrivals and nothing was spooled.
3. adoption: two workers on a steady stream (BENCH_ADOPT_RATE records/s for
   BENCH_ADOPT_S), one SIGKILLed a quarter of the way in and never restarted; the
   other adopts its MQTT session (FOYER_MQTT_ADOPT_AFTER_S = BENCH_ADOPT_AFTER_S,
   core/ingest/adoption.py). Timed: from the kill until InfluxDB holds every reading the
   broker acknowledged to the publishers; zero loss by counting.
4. catchup: InfluxDB stopped, BENCH_CATCHUP_READINGS readings published and acknowledged
   into the worker's spool; InfluxDB started again on the same data dir; the replay timed
   until every reading is counted in InfluxDB.

`--all` (what `make bench` runs after tests.bench) also runs the care and billing scale
cases of tests.bench_care and tests.bench_billing (100,000 households, a year).

Sizes (environment, or the matching option): BENCH_WORKERS ("1,2,4"),
BENCH_WORKERS_MSGS (10000 packs per worker count), BENCH_PACK_RECORDS (24),
BENCH_DEVICES (1000), BENCH_SCALE_PUBLISHERS (2), BENCH_SOAK_RATE (records/s; default
half of the one-worker throughput measured in this run, else 6000), BENCH_SOAK_S (600),
BENCH_SOAK_SAMPLE_S (10), BENCH_SOAK_FLAT_MB (5), BENCH_ADOPT_RATE (4000),
BENCH_ADOPT_S (60), BENCH_ADOPT_AFTER_S (10; production: 120), BENCH_CATCHUP_READINGS
(1000000).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tests.bench import (
    CHILDREN,
    PY,
    ROOT,
    Scrape,
    Worker,
    collect,
    cpu_seconds,
    http_get,
    influx_count,
    load,
    machine,
    quantile,
    stop_process,
)
from tests.bench_billing import main as billing_main
from tests.bench_care import main as care_main
from tests.bench_publisher import CONTENT_TYPE, mqtt_times, pack
from tests.servers import InfluxDB, Mosquitto

CASES = ("workers", "soak", "adoption", "catchup")
DAY = 86400
POLL_S = 0.2
READY_S = 180.0  # after a flat-out case the broker and disk are still busy for a while
SPOOL_DRAIN_S = 300.0  # a spool replays after a back-off of up to 30 s, then in order
SCRAPE_TIMEOUT_S = 60.0
SOAK_DEFAULT_RATE = 6000  # records/s: about half of one worker's 24-record-pack maximum
SOAK_SHARE_OF_MAX = 0.5  # the soak runs at this share of the one-worker throughput


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, str(default)))


def _env_float(name: str, default: float) -> float:
    return float(os.environ.get(name, str(default)))


@dataclass
class Params:
    """Every size of the report; defaults from the environment (module docstring)."""

    workers: list[int] = field(
        default_factory=lambda: [
            int(n) for n in os.environ.get("BENCH_WORKERS", "1,2,4").split(",")
        ]
    )
    workers_msgs: int = field(default_factory=lambda: _env_int("BENCH_WORKERS_MSGS", 10000))
    pack_records: int = field(default_factory=lambda: _env_int("BENCH_PACK_RECORDS", 24))
    devices: int = field(default_factory=lambda: _env_int("BENCH_DEVICES", 1000))
    publishers: int = field(default_factory=lambda: _env_int("BENCH_SCALE_PUBLISHERS", 2))
    soak_rate: int = field(default_factory=lambda: _env_int("BENCH_SOAK_RATE", 0))  # 0: derived
    soak_s: float = field(default_factory=lambda: _env_float("BENCH_SOAK_S", 600))
    soak_sample_s: float = field(default_factory=lambda: _env_float("BENCH_SOAK_SAMPLE_S", 10))
    soak_flat_mb: float = field(default_factory=lambda: _env_float("BENCH_SOAK_FLAT_MB", 5))
    catchup_readings: int = field(
        default_factory=lambda: _env_int("BENCH_CATCHUP_READINGS", 1_000_000)
    )
    adopt_rate: int = field(default_factory=lambda: _env_int("BENCH_ADOPT_RATE", 4000))
    adopt_s: float = field(default_factory=lambda: _env_float("BENCH_ADOPT_S", 60))
    adopt_after_s: float = field(default_factory=lambda: _env_float("BENCH_ADOPT_AFTER_S", 10))


# --- machine -----------------------------------------------------------------------------
def machine_info() -> dict[str, Any]:
    """tests.bench's machine() plus RAM and the load average."""
    info = machine()
    info["ram_mb"] = _meminfo_mb("MemTotal")
    info["load_avg"] = load_avg()
    return info


def load_avg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _meminfo_mb(key: str) -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def rss_mb(pid: int | None) -> float | None:
    """Resident set size of a live process (VmRSS), in MB."""
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


# --- workers -----------------------------------------------------------------------------
class IngestWorker(Worker):
    """`foyer serve --role ingest`: probes on its own port, a registry shared with others."""

    def __init__(self, workdir: Path, name: str, env: dict[str, str], registry_url: str) -> None:
        super().__init__(
            workdir, name, {"FOYER_ROLE": "ingest", "FOYER_REGISTRY_URL": registry_url, **env}
        )
        # The ingest role serves /healthz, /readyz and /metrics on probe_bind, not http_bind.
        self.env["FOYER_PROBE_BIND"] = f"127.0.0.1:{self.http_port}"
        self._registry_url = registry_url
        self.slowest_scrape_s = 0.0

    def scrape(self) -> Scrape:
        """/metrics, waiting out a busy worker: under a burst its event loop stalls for
        seconds (measured and reported as slowest_metrics_scrape_s)."""
        started = time.monotonic()
        text = http_get(f"http://127.0.0.1:{self.http_port}/metrics", timeout=SCRAPE_TIMEOUT_S)
        self.slowest_scrape_s = max(self.slowest_scrape_s, time.monotonic() - started)
        return Scrape(text)

    @property
    def registry_url(self) -> str:
        return self._registry_url

    def ready(self) -> bool:
        """/readyz 200: connected to the broker and the shared subscription granted."""
        try:
            http_get(f"http://127.0.0.1:{self.http_port}/readyz", timeout=2)
        except OSError:  # HTTPError (503) is an OSError too
            return False
        return True

    def spool_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.data_dir.glob("spool-*.sqlite*"))


def merged(scrapes: Sequence[Scrape]) -> Scrape:
    """The sum of several workers' scrapes: counters and histogram buckets add up."""
    out = Scrape("")
    for scrape in scrapes:
        for key, value in scrape.samples.items():
            out.samples[key] = out.samples.get(key, 0.0) + value
    return out


def wait_until(check: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {within:.0f} s: {what}")
        time.sleep(POLL_S)


@dataclass
class Bench:
    """The servers of one report run and where each case keeps its files."""

    work: Path
    influx: InfluxDB
    mosq: Mosquitto
    params: Params

    def case_dir(self, name: str) -> Path:
        path = self.work / name
        path.mkdir()
        return path

    def start_workers(
        self, name: str, db: str, count: int, extra_env: dict[str, str] | None = None
    ) -> list[IngestWorker]:
        """`count` ingest workers of one group on database `db`, ready, warmed up."""
        casedir = self.case_dir(name)
        self.influx.create_database(db)
        registry_url = f"sqlite:///{casedir / 'registry.sqlite'}"
        env = {
            "FOYER_INFLUX_URL": self.influx.url,
            "FOYER_INFLUX_DB": db,
            "FOYER_MQTT_URL": self.mosq.url,
            "FOYER_MQTT_GROUP": f"bench-{name}",
            **(extra_env or {}),
        }
        # A client id per case: a persistent session keeps its subscriptions, so a "w0"
        # reused with another group would also still receive the previous case's group.
        workers = [
            IngestWorker(
                casedir,
                f"w{k}",
                {**env, "FOYER_MQTT_CLIENT_ID": f"bench-{name}-w{k}"},
                registry_url,
            )
            for k in range(count)
        ]
        workers[0].register_meters(self.params.devices)
        try:
            for w in workers:
                w.start(wait_for="MQTT connected")
            wait_until(lambda: all(w.ready() for w in workers), READY_S, "workers ready")
            self.warm_up(workers, int(time.time()) - 30 * DAY)
        except BaseException:
            for w in workers:
                w.stop()
            raise
        return workers

    def warm_up(self, workers: Sequence[IngestWorker], base_s: int) -> None:
        """Until every worker's share of the subscription is in place, probe with messages."""
        before = sum(w.stored() for w in workers)
        n = 100 * len(workers)
        collect(load(["mqtt", self.mosq.url, "0", str(n), "1", str(base_s),
                      str(self.params.devices)]), 60)  # fmt: skip
        wait_until(lambda: sum(w.stored() for w in workers) >= before + n, 30, "warm-up stored")

    def pids(self, workers: Sequence[IngestWorker]) -> dict[str, int | None]:
        out: dict[str, int | None] = {f"worker{k}": w.pid for k, w in enumerate(workers)}
        out["mosquitto"] = self.mosq.proc.pid if self.mosq.proc else None
        out["influxd"] = self.influx.proc.pid if self.influx.proc else None
        return out


def cpu_of(pids: dict[str, int | None]) -> dict[str, float]:
    return {k: cpu_seconds(p) for k, p in pids.items()}


def cpu_delta(c0: dict[str, float], c1: dict[str, float]) -> dict[str, float]:
    return {k: round(c1[k] - c0[k], 2) for k in c0 if k in c1}


def cores(cpu: dict[str, float], wall: float) -> dict[str, float]:
    out = {k: round(v / wall, 2) for k, v in cpu.items()} if wall > 0 else {}
    out["total"] = round(sum(cpu.values()) / wall, 2) if wall > 0 else 0.0
    return out


def span_s(messages: int, params: Params) -> int:
    """Times used by `messages` packs on each device, from the base (bench_publisher)."""
    return (messages // params.devices + 1) * params.pack_records


def _round(x: float | None, digits: int = 4) -> float | None:
    return None if x is None else round(x, digits)


# --- 1. workers --------------------------------------------------------------------------
def workers_case(bench: Bench, n: int) -> dict[str, Any]:
    name, db = f"workers_{n}", f"bench_workers_{n}"
    load_before = load_avg()
    workers = bench.start_workers(name, db, n)
    try:
        return _drive_workers(bench, workers, name, db, load_before)
    finally:
        for w in workers:
            w.stop()


def _drive_workers(
    bench: Bench, workers: list[IngestWorker], name: str, db: str, load_before: list[float]
) -> dict[str, Any]:
    p = bench.params
    messages, records = p.workers_msgs, p.pack_records
    total = messages * records
    base_s = int(time.time()) - 3 * DAY
    before = [w.scrape() for w in workers]
    stored0 = sum(s.total("foyer_records_stored_total") for s in before)
    pids = bench.pids(workers)
    cpu0, wall0 = cpu_of(pids), time.time()
    per = -(-messages // p.publishers)
    pubs = [
        load(["mqtt", bench.mosq.url, str(k * per), str(min(per, messages - k * per)),
              str(records), str(base_s), str(p.devices)])
        for k in range(p.publishers) if messages - k * per > 0
    ]  # fmt: skip
    deadline = time.monotonic() + max(120.0, total / 2000)
    t_done, peak_queue, stored = None, 0.0, stored0
    while time.monotonic() < deadline:
        scrapes = [w.scrape() for w in workers]
        stored = sum(s.total("foyer_records_stored_total") for s in scrapes)
        peak_queue = max(peak_queue, sum(s.total("foyer_write_queue_depth") for s in scrapes))
        if stored >= stored0 + total:
            t_done = time.time()
            break
        if any(w.proc and w.proc.poll() is not None for w in workers):
            raise RuntimeError(f"a worker died during {name}")
        time.sleep(POLL_S / 2)
    cpu1 = cpu_of(pids)
    # "Stored" counts records durably stored *or spooled*: a write that timed out under
    # the flat-out load went to a worker's spool and is replayed. Count InfluxDB's points
    # once every spool is empty, and report how much took that path.
    t_drain = time.monotonic()
    wait_until(
        lambda: sum(w.scrape().total("foyer_spool_batches") for w in workers) == 0,
        SPOOL_DRAIN_S, "spools drained",
    )  # fmt: skip
    drain_s = time.monotonic() - t_drain
    pub_results = [collect(proc, 120) for proc in pubs]
    after = [w.scrape() for w in workers]
    t_first = min(r["t_first_publish"] for r in pub_results)
    elapsed = (t_done - t_first) if t_done else None
    # Cores used over first publish -> all stored: before it every process idles, and the
    # publishers count their CPU from their first publish too.
    wall = elapsed or (time.time() - wall0)
    in_influx = influx_count(bench.influx, db, base_s, base_s + span_s(messages, p))
    cpu = cpu_delta(cpu0, cpu1)
    cpu["publishers"] = round(sum(r["cpu_s"] for r in pub_results), 2)
    b, a = merged(before), merged(after)
    return {
        "case": name,
        "workers": len(workers),
        "load_avg_before": load_before,
        "messages": messages,
        "records_per_message": records,
        "records": total,
        "publishers": len(pubs),
        "completed": t_done is not None,
        "elapsed_s": _round(elapsed, 3),
        "messages_per_s": round(messages / elapsed) if elapsed else None,
        "records_per_s": round(total / elapsed) if elapsed else None,
        "records_per_worker": [
            int(y.total("foyer_records_stored_total") - x.total("foyer_records_stored_total"))
            for x, y in zip(before, after, strict=True)
        ],
        "points_in_influxdb": in_influx,
        "lost": total - in_influx,
        "spooled_batches": int(
            a.total("foyer_spool_spooled_batches_total")
            - b.total("foyer_spool_spooled_batches_total")
        ),
        "spool_drain_s": round(drain_s, 1),
        "pubacks": sum(r["pubacks"] for r in pub_results),
        "puback_failures": sum(r["puback_failures"] for r in pub_results),
        "ack_latency_p50_s": _round(quantile(b, a, "mqtt", 0.50)),
        "ack_latency_p99_s": _round(quantile(b, a, "mqtt", 0.99)),
        "peak_write_queue": int(peak_queue),
        "slowest_metrics_scrape_s": round(max(w.slowest_scrape_s for w in workers), 2),
        "refused": int(
            a.total("foyer_messages_refused_total") - b.total("foyer_messages_refused_total")
        ),
        "unavailable": int(
            a.total("foyer_messages_unavailable_total")
            - b.total("foyer_messages_unavailable_total")
        ),
        "cpu_s": cpu,
        "cpu_cores_used": cores(cpu, wall),
    }


# --- 2. soak -----------------------------------------------------------------------------
def soak_rate(params: Params, results: dict[str, Any]) -> tuple[int, str]:
    """Records/s of the soak and where the figure comes from."""
    if params.soak_rate > 0:
        return params.soak_rate, "BENCH_SOAK_RATE"
    for row in results.get("workers", []):
        if row.get("workers") == 1 and row.get("records_per_s"):
            return int(row["records_per_s"] * SOAK_SHARE_OF_MAX), "50 % of workers_1 records/s"
    return SOAK_DEFAULT_RATE, "default (no workers_1 figure in this run)"


def slope_per_s(points: Sequence[tuple[float, float]]) -> float | None:
    """Least-squares slope of y over t."""
    if len(points) < 2:
        return None
    n = len(points)
    mt = sum(t for t, _ in points) / n
    my = sum(y for _, y in points) / n
    var = sum((t - mt) ** 2 for t, _ in points)
    if var == 0:
        return None
    return sum((t - mt) * (y - my) for t, y in points) / var


def soak_verdict(
    samples: Sequence[dict[str, Any]], flat_mb: float, queue_bound: float
) -> dict[str, Any]:
    """RSS slope over the second half, in MB per 10 minutes, and the queue's bound."""
    rss = [(s["t_s"], s["rss_mb"]) for s in samples if s["rss_mb"] is not None]
    half = rss[len(rss) // 2 :]
    slope = slope_per_s(half)
    slope_10min = None if slope is None else slope * 600
    max_queue = max((s["write_queue"] for s in samples), default=0)
    max_spool = max((s["spool_batches"] for s in samples), default=0)
    queue_flat = max_queue <= queue_bound and max_spool == 0
    rss_flat = slope_10min is not None and slope_10min < flat_mb
    return {
        "rss_first_mb": _round(rss[0][1], 1) if rss else None,
        "rss_last_mb": _round(rss[-1][1], 1) if rss else None,
        "rss_max_mb": _round(max(y for _, y in rss), 1) if rss else None,
        "rss_slope_second_half_mb_per_10min": _round(slope_10min, 2),
        "rss_flat_threshold_mb_per_10min": flat_mb,
        "max_write_queue": int(max_queue),
        "write_queue_bound": round(queue_bound),
        "max_spool_batches": int(max_spool),
        "verdict": "flat" if rss_flat and queue_flat else "growing",
    }


def soak_case(bench: Bench, results: dict[str, Any]) -> dict[str, Any]:
    p = bench.params
    rate, rate_from = soak_rate(p, results)
    load_before = load_avg()
    (w,) = bench.start_workers("soak", "bench_soak", 1)
    try:
        row = _drive_soak(bench, w, rate, p)
    finally:
        w.stop()
    return {"case": "soak", "load_avg_before": load_before, "rate_from": rate_from, **row}


def _drive_soak(bench: Bench, w: IngestWorker, rate: int, p: Params) -> dict[str, Any]:
    msgs_per_s = rate / p.pack_records
    messages = max(1, round(msgs_per_s * p.soak_s))
    total = messages * p.pack_records
    base_s = int(time.time()) - 10 * DAY
    stored0 = w.stored()
    pub = publisher(bench.mosq.url, 0, messages, p, base_s, msgs_per_s)
    t0 = time.monotonic()
    prev = first = w.scrape()
    samples: list[dict[str, Any]] = []
    next_at = t0 + p.soak_sample_s
    while pub.poll() is None:
        if w.proc and w.proc.poll() is not None:
            raise RuntimeError("the worker died during the soak")
        if time.monotonic() < next_at:
            time.sleep(min(POLL_S, max(0.0, next_at - time.monotonic())))
            continue
        next_at += p.soak_sample_s
        now = w.scrape()
        samples.append(_sample(time.monotonic() - t0, w, prev, now))
        prev = now
    pub_result = collect(pub, 60)
    wait_until(lambda: w.stored() >= stored0 + total, 120, "soak records stored")
    last = w.scrape()
    in_influx = influx_count(bench.influx, "bench_soak", base_s, base_s + span_s(messages, p))
    sent_s = pub_result["t_last_publish_call"] - pub_result["t_first_publish"]
    return {
        "duration_s": p.soak_s,
        "target_records_per_s": rate,
        "achieved_records_per_s": round(total / sent_s) if sent_s > 0 else None,
        "messages": messages,
        "records": total,
        "points_in_influxdb": in_influx,
        "lost": total - in_influx,
        "puback_failures": pub_result["puback_failures"],
        "ack_latency_p50_s": _round(quantile(first, last, "mqtt", 0.50)),
        "ack_latency_p99_s": _round(quantile(first, last, "mqtt", 0.99)),
        # A queue that never holds one second of arrivals is keeping up, not growing.
        **soak_verdict(samples, p.soak_flat_mb, queue_bound=msgs_per_s),
        "publisher_cpu_s": round(pub_result["cpu_s"], 2),
        "slowest_metrics_scrape_s": round(w.slowest_scrape_s, 2),
        "samples": samples,
    }


def _sample(t: float, w: IngestWorker, prev: Scrape, now: Scrape) -> dict[str, Any]:
    return {
        "t_s": round(t, 1),
        "rss_mb": _round(rss_mb(w.pid), 2),
        "write_queue": int(now.total("foyer_write_queue_depth")),
        "spool_batches": int(now.total("foyer_spool_batches")),
        "stored": int(now.total("foyer_records_stored_total")),
        "cpu_s": round(cpu_seconds(w.pid), 2),
        "ack_p50_s": _round(quantile(prev, now, "mqtt", 0.50)),
        "ack_p99_s": _round(quantile(prev, now, "mqtt", 0.99)),
    }


# --- 3. adoption -------------------------------------------------------------------------
def adoption_case(bench: Bench) -> dict[str, Any]:
    p = bench.params
    load_before = load_avg()
    env = {"FOYER_MQTT_ADOPT_AFTER_S": str(p.adopt_after_s)}
    workers = bench.start_workers("adoption", "bench_adoption", 2, env)
    try:
        row = _drive_adoption(bench, workers, p)
    finally:
        for w in workers:
            w.stop()
    return {"case": "adoption", "load_avg_before": load_before, **row}


def _drive_adoption(bench: Bench, workers: list[IngestWorker], p: Params) -> dict[str, Any]:
    survivor, victim = workers
    msgs_per_s = p.adopt_rate / p.pack_records
    messages = max(1, round(msgs_per_s * p.adopt_s))
    total = messages * p.pack_records
    base_s = int(time.time()) - 15 * DAY
    span = (base_s, base_s + span_s(messages, p))
    pub = publisher(bench.mosq.url, 0, messages, p, base_s, msgs_per_s)
    time.sleep(p.adopt_s / 4)  # pacing: the kill lands a quarter of the way into the stream
    if pub.poll() is not None or victim.proc is None:
        raise RuntimeError("the stream ended before the kill")
    victim.proc.kill()  # SIGKILL, never restarted: its session keeps getting a share
    victim.proc.wait()
    t_kill = time.monotonic()
    # adopted: the victim's queue stored and its session ended (the survivor's counter)
    wait_until(lambda: survivor.scrape().total("foyer_mqtt_adoptions_total") >= 1,
               10 * p.adopt_after_s + 120, "the killed worker's session adopted")  # fmt: skip
    t_adopted = time.monotonic()
    pub_result = collect(pub, max(120.0, 4 * p.adopt_s))  # every PUBACK: all acknowledged
    t_published = time.monotonic()
    deadline_s = 10 * p.adopt_after_s + 300

    def counted() -> bool:
        return influx_count(bench.influx, "bench_adoption", *span) >= total

    wait_until(counted, deadline_s, "every acknowledged reading in InfluxDB")
    t_all = time.monotonic()
    s = survivor.scrape()
    in_influx = influx_count(bench.influx, "bench_adoption", *span)
    return {
        "rate_records_per_s": p.adopt_rate,
        "duration_s": p.adopt_s,
        "adopt_after_s": p.adopt_after_s,
        "messages": messages,
        "records": total,
        "pubacks": pub_result["pubacks"],
        "puback_failures": pub_result["puback_failures"],
        "points_in_influxdb": in_influx,
        "lost": total - in_influx,
        "adopted": int(s.total("foyer_mqtt_adoptions_total")),
        "adopted_after_kill_s": round(t_adopted - t_kill, 1),
        "stream_after_kill_s": round(t_published - t_kill, 1),
        "all_stored_after_kill_s": round(t_all - t_kill, 1),
        "all_stored_after_stream_s": round(t_all - t_published, 1),
    }


# --- 4. catch-up -------------------------------------------------------------------------
def catchup_case(bench: Bench) -> dict[str, Any]:
    load_before = load_avg()
    (w,) = bench.start_workers("catchup", "bench_catchup", 1)
    try:
        row = _drive_catchup(bench, w)
    finally:
        w.stop()
        if bench.influx.proc is None:  # the case failed while InfluxDB was down
            bench.influx.start()
    return {"case": "catchup", "load_avg_before": load_before, **row}


def _drive_catchup(bench: Bench, w: IngestWorker) -> dict[str, Any]:
    p = bench.params
    messages = -(-p.catchup_readings // p.pack_records)
    total = messages * p.pack_records
    base_s = int(time.time()) - 20 * DAY
    first = w.scrape()
    stored0 = first.total("foyer_records_stored_total")
    bench.influx.stop()  # the outage: the worker must acknowledge into its spool
    pids = bench.pids([w])
    cpu0 = cpu_of(pids)
    per = -(-messages // p.publishers)
    pubs = [publisher(bench.mosq.url, k * per, min(per, messages - k * per), p, base_s, 0)
            for k in range(p.publishers) if messages - k * per > 0]  # fmt: skip
    deadline_s = max(120.0, total / 2000)
    wait_until(lambda: w.stored() >= stored0 + total, deadline_s, "readings spooled")
    t_spooled = time.time()
    pub_results = [collect(proc, 60) for proc in pubs]
    cpu1 = cpu_of(pids)
    spooled = w.scrape()
    spool_bytes = w.spool_bytes()
    t_first = min(r["t_first_publish"] for r in pub_results)
    spool_s = t_spooled - t_first

    t_start = time.time()
    bench.influx.start()  # same port, same data dir
    t_up = time.time()
    pids["influxd"] = bench.influx.proc.pid if bench.influx.proc else None
    cpu2 = cpu_of(pids)
    # A live fleet keeps sending after the outage, and each new message wakes the
    # replayer out of its back-off (up to 30 s, core/store/spool.py): one reading
    # plays that part; it lands in the spool's queue and is not counted below.
    nudge = load(["mqtt", bench.mosq.url, "0", "1", "1", str(base_s - 5 * DAY), str(p.devices)])
    replayed0 = spooled.total("foyer_spool_replayed_batches_total")
    t_first_replay = None
    deadline = time.monotonic() + deadline_s
    while True:
        s = w.scrape()
        if t_first_replay is None and s.total("foyer_spool_replayed_batches_total") > replayed0:
            t_first_replay = time.time()
        if s.total("foyer_spool_batches") == 0:
            break
        if time.monotonic() > deadline:
            raise RuntimeError("the spool did not drain")
        time.sleep(POLL_S)
    t_drained = time.time()
    cpu3 = cpu_of(pids)
    span = span_s(messages, p)
    in_influx = 0
    count_deadline = time.monotonic() + 60
    while time.monotonic() < count_deadline:  # a batch is written before it leaves the spool
        in_influx = influx_count(bench.influx, "bench_catchup", base_s, base_s + span)
        if in_influx >= total:
            break
        time.sleep(POLL_S)
    t_counted = time.time()
    collect(nudge, 60)
    drained = w.scrape()
    replay_s = t_drained - (t_first_replay or t_up)
    spool_cpu, replay_cpu = cpu_delta(cpu0, cpu1), cpu_delta(cpu2, cpu3)
    spool_cpu["publishers"] = round(sum(r["cpu_s"] for r in pub_results), 2)
    return {
        "readings": total,
        "messages": messages,
        "records_per_message": p.pack_records,
        "publishers": len(pubs),
        "spool_phase_s": round(spool_s, 2),
        "spooling_records_per_s": round(total / spool_s) if spool_s > 0 else None,
        "spooling_messages_per_s": round(messages / spool_s) if spool_s > 0 else None,
        "spool_batches": int(spooled.total("foyer_spool_batches")),
        "spooled_batches": int(
            spooled.total("foyer_spool_spooled_batches_total")
            - first.total("foyer_spool_spooled_batches_total")
        ),
        "spool_bytes_on_disk": spool_bytes,
        "spool_mb_on_disk": round(spool_bytes / 2**20, 1),
        "puback_failures": sum(r["puback_failures"] for r in pub_results),
        "unavailable": int(
            drained.total("foyer_messages_unavailable_total")
            - first.total("foyer_messages_unavailable_total")
        ),
        "influxdb_start_s": round(t_up - t_start, 2),
        # From InfluxDB up to the first replayed batch: the replayer's next retry.
        "retry_wait_s": round((t_first_replay or t_up) - t_up, 2),
        "replay_s": round(replay_s, 2),
        "replay_records_per_s": round(total / replay_s) if replay_s > 0 else None,
        "restart_to_all_counted_s": round(t_counted - t_start, 2),
        "replayed_batches": int(drained.total("foyer_spool_replayed_batches_total") - replayed0),
        "slowest_metrics_scrape_s": round(w.slowest_scrape_s, 2),
        "points_in_influxdb": in_influx,
        "lost": total - in_influx,
        "cpu_s_spool_phase": spool_cpu,
        "cpu_cores_spool_phase": cores(spool_cpu, spool_s),
        "cpu_s_replay_phase": replay_cpu,
        "cpu_cores_replay_phase": cores(replay_cpu, t_drained - t_up),
    }


# --- the load generator ------------------------------------------------------------------
def publisher(url: str, first: int, count: int, p: Params, base_s: int, msgs_per_s: float) -> Any:
    """`python -m tests.bench_scale publish ...` as a child: paced (msgs_per_s > 0) or flat out."""
    import subprocess

    proc = subprocess.Popen(
        [PY, "-m", "tests.bench_scale", "publish", url, str(first), str(count),
         str(p.pack_records), str(base_s), str(p.devices), str(msgs_per_s)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    CHILDREN.append(proc)
    return proc


def run_publisher(argv: Sequence[str]) -> dict[str, Any]:
    """QoS 1, MQTT 5, SenML packs of tests.bench_publisher; PUBACKs waited for unbounded
    by count (the worker acks only once stored or spooled, which takes as long as it takes)."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    url, first, count, records, base_s, devices = (
        argv[0], int(argv[1]), int(argv[2]), int(argv[3]), int(argv[4]), int(argv[5])
    )  # fmt: skip
    rate = float(argv[6])
    parts = urlsplit(url)
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"bench-scale-pub-{first}-{time.monotonic_ns()}",
        protocol=mqtt.MQTTv5,
    )  # fmt: skip
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    connected, done = threading.Event(), threading.Event()
    counts = {"acked": 0, "failed": 0}
    lock = threading.Lock()

    def on_connect(_c: Any, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        if not rc.is_failure:
            connected.set()

    def on_publish(_c: Any, _u: Any, _mid: int, rc: Any, _p: Any) -> None:
        with lock:
            counts["acked"] += 1
            counts["failed"] += int(rc.is_failure)
            if counts["acked"] >= count:
                done.set()

    client.on_connect = on_connect
    client.on_publish = on_publish
    client.connect(parts.hostname or "127.0.0.1", parts.port or 1883, 60)
    client.loop_start()
    try:
        if not connected.wait(10):
            raise RuntimeError("publisher could not connect")
        props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        props.ContentType = CONTENT_TYPE
        cpu0, t0 = time.process_time(), time.time()
        start = time.monotonic()
        for i in range(first, first + count):
            if rate > 0:  # pacing of the load (a steady rate), not a wait for a result
                due = start + (i - first) / rate
                ahead = due - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
            dev, t = mqtt_times(i, records, devices, base_s)
            client.publish(f"meters/{dev}/readings", pack(dev, t, records, 12.345),
                           qos=1, properties=props)  # fmt: skip
        t_sent = time.time()
        done.wait()  # the parent bounds the whole run with its own deadline
        t_acked, cpu = time.time(), time.process_time() - cpu0
    finally:
        client.disconnect()
        client.loop_stop()
    return {
        "first": first, "count": count, "t_first_publish": t0, "t_last_publish_call": t_sent,
        "t_all_puback": t_acked, "pubacks": counts["acked"], "puback_failures": counts["failed"],
        "cpu_s": cpu,
    }  # fmt: skip


# --- care and billing (tests.bench_care, tests.bench_billing) ------------------------------
def other_scale_cases() -> list[dict[str, Any]]:
    """The detector over 100,000 households and a year's billing of 100,000, run from
    here so `make bench` has one entry point for the scale report."""
    out = []
    cases: tuple[tuple[str, list[str], Callable[[Sequence[str] | None], int]], ...] = (
        ("care", [], care_main),
        ("billing", ["--households", "100000", "--period", "year"], billing_main),
    )
    for name, argv, main_of in cases:
        started = time.monotonic()
        try:
            row: dict[str, Any] = {"case": name, "exit_code": main_of(argv)}
        except Exception as exc:  # noqa: BLE001 - recorded with the report, the others go on
            row = {"case": name, "exit_code": None, "error": f"{type(exc).__name__}: {exc}"}
        row["elapsed_s"] = round(time.monotonic() - started, 1)
        out.append(row)
        print(f"{name}: {json.dumps(row)}", flush=True)
    return out


# --- report ------------------------------------------------------------------------------
def report_row(r: dict[str, Any]) -> str:
    case = r["case"]
    if case.startswith("workers_"):
        return (f"{case:<11}{r['records']:>9} rec {_f(r['elapsed_s']):>8} s"
                f" {_f(r['messages_per_s']):>7}"
                f" msg/s {_f(r['records_per_s']):>7} rec/s  lost {r['lost']}  ack p50/p99"
                f" {_ms(r['ack_latency_p50_s'])}/{_ms(r['ack_latency_p99_s'])}"
                f"  cores {r['cpu_cores_used']}")  # fmt: skip
    if case == "soak":
        return (f"soak       {r['achieved_records_per_s']} rec/s for {r['duration_s']} s, lost"
                f" {r['lost']}, RSS {r['rss_first_mb']}->{r['rss_last_mb']} (max {r['rss_max_mb']})"
                f" MB, slope {r['rss_slope_second_half_mb_per_10min']} MB/10min, max queue"
                f" {r['max_write_queue']}, ack p50/p99 {_ms(r['ack_latency_p50_s'])}/"
                f"{_ms(r['ack_latency_p99_s'])}: {r['verdict']}")  # fmt: skip
    if case == "adoption":
        return (f"adoption   {r['records']} rec at {r['rate_records_per_s']} rec/s, one of 2"
                f" workers SIGKILLed: its session adopted {r['adopted_after_kill_s']} s after the"
                f" kill, all stored {r['all_stored_after_kill_s']} s after it"
                f" ({r['all_stored_after_stream_s']} s after the stream; adopt after"
                f" {r['adopt_after_s']} s), adopted {r['adopted']}, lost {r['lost']}")  # fmt: skip
    return (f"catchup    {r['readings']} readings spooled in {r['spool_phase_s']} s"
            f" ({r['spooling_records_per_s']} rec/s, {r['spool_mb_on_disk']} MB), replayed in"
            f" {r['replay_s']} s ({r['replay_records_per_s']} rec/s) after a retry wait of"
            f" {r['retry_wait_s']} s, lost {r['lost']}")  # fmt: skip


def _f(x: Any) -> str:
    return "-" if x is None else str(x)


def _ms(x: float | None) -> str:
    return "-" if x is None else f"{x * 1000:.0f}ms"


def run(params: Params, only: Sequence[str], json_path: Path) -> dict[str, Any]:
    """Run the chosen cases on one InfluxDB and one Mosquitto; write and return the report."""
    results: dict[str, Any] = {
        "machine": machine_info(),
        "parameters": asdict(params),
        "workers": [],
        "soak": None,
        "adoption": None,
        "catchup": None,
        "errors": [],
    }
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="foyer-bench-scale-") as tmp:
        work = Path(tmp)
        (work / "influx").mkdir()
        (work / "mosq").mkdir()
        influx, mosq = InfluxDB(work / "influx"), Mosquitto(work / "mosq")
        try:
            influx.start()
            mosq.start()
            bench = Bench(work, influx, mosq, params)
            _cases(bench, only, results)
        finally:
            for proc in CHILDREN:
                stop_process(proc)
            mosq.stop()
            influx.stop()
            results["total_s"] = round(time.monotonic() - started, 1)
            if results["errors"]:  # keep the tail of each worker log to see why
                for log in sorted(work.glob("*/*.log")):
                    results.setdefault("worker_logs", {})[str(log.relative_to(work))] = (
                        log.read_text()[-3000:]
                    )
            json_path.write_text(json.dumps(results, indent=2) + "\n")
    return results


def _cases(bench: Bench, only: Sequence[str], results: dict[str, Any]) -> None:
    steps: list[tuple[str, Callable[[], dict[str, Any]]]] = []
    if "workers" in only:
        for n in bench.params.workers:
            steps.append((f"workers_{n}", functools.partial(workers_case, bench, n)))
    if "soak" in only:
        steps.append(("soak", lambda: soak_case(bench, results)))
    if "adoption" in only:
        steps.append(("adoption", lambda: adoption_case(bench)))
    if "catchup" in only:  # last: it stops and restarts InfluxDB
        steps.append(("catchup", lambda: catchup_case(bench)))
    for name, step in steps:
        try:
            row = step()
        except Exception as err:  # noqa: BLE001 - report it, go on to the next case
            results["errors"].append(f"{name}: {err}")
            print(f"ERROR {name}: {err}", flush=True)
            continue
        if name.startswith("workers_"):
            results["workers"].append(row)
        else:
            results[name] = row
        print(report_row(row), flush=True)


def parse(argv: Sequence[str]) -> tuple[Params, list[str], bool, Path]:
    d = Params()
    ap = argparse.ArgumentParser(prog="python -m tests.bench_scale", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    ap.add_argument("--only", nargs="+", choices=CASES, default=list(CASES))
    ap.add_argument("--all", action="store_true", help="also tests.bench_care and bench_billing")
    ap.add_argument("--json", type=Path, default=Path("bench-scale.json"))
    ap.add_argument("--workers", default=",".join(map(str, d.workers)), help="e.g. 1,2,4")
    ap.add_argument("--messages", type=int, default=d.workers_msgs, help="packs per worker case")
    ap.add_argument("--publishers", type=int, default=d.publishers)
    ap.add_argument("--soak-s", type=float, default=d.soak_s)
    ap.add_argument("--soak-rate", type=int, default=d.soak_rate, help="records/s, 0: derived")
    ap.add_argument("--soak-sample-s", type=float, default=d.soak_sample_s)
    ap.add_argument("--catchup-readings", type=int, default=d.catchup_readings)
    a = ap.parse_args(list(argv))
    params = Params(
        workers=[int(n) for n in a.workers.split(",")], workers_msgs=a.messages,
        pack_records=d.pack_records, devices=d.devices, publishers=a.publishers,
        soak_rate=a.soak_rate, soak_s=a.soak_s, soak_sample_s=a.soak_sample_s,
        soak_flat_mb=d.soak_flat_mb, catchup_readings=a.catchup_readings,
    )  # fmt: skip
    return params, list(a.only), bool(a.all), a.json


def _sigterm(_signum: int, _frame: Any) -> None:
    raise SystemExit(143)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["publish"]:
        print(json.dumps(run_publisher(args[1:])), flush=True)
        return 0
    signal.signal(signal.SIGTERM, _sigterm)
    params, only, everything, json_path = parse(args)
    results = run(params, only, json_path)
    if everything:
        results["other_scale_cases"] = other_scale_cases()
        json_path.write_text(json.dumps(results, indent=2) + "\n")
    m = results["machine"]
    print(f"\nmachine: {m['nproc']} x {m['cpu_model']}, {m['ram_mb']} MB RAM, load {m['load_avg']}")
    for e in results["errors"]:
        print(f"ERROR: {e}")
    print(f"report: {json_path} ({results['total_s']} s)")
    failed = [
        r
        for r in results.get("other_scale_cases", [])
        if r.get("exit_code") not in (0, None) or r.get("error")
    ]
    return 1 if results["errors"] or failed else 0


if __name__ == "__main__":
    sys.exit(main())
