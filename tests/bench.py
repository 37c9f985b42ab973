"""Ingestion benchmark: `make bench` (= `.venv/bin/python -m tests.bench`).

Real InfluxDB 1.x and Mosquitto on loopback (tests/servers.py), a Foyer worker in its
own process (`python -m core.cli serve`), load generators in their own processes
(tests/bench_publisher.py). Measured:

1. MQTT -> InfluxDB, one worker: one-record packs and 24-record packs, QoS 1, MQTT 5,
   content type application/senml+json. Time from the first publish until the
   worker's `foyer_records_stored_total` has counted every record (the worker counts a
   record only once its batch is durably written); then zero loss is checked by
   counting the points in InfluxDB. Ack latency p50/p99 from the worker's histogram.
2. CoAP confirmable POSTs (Content-Format 110) against a worker with CoAP on.

Sizes can be changed with BENCH_MQTT_MSGS, BENCH_MQTT_PACKS, BENCH_PACK_RECORDS,
BENCH_DEVICES, BENCH_PUBLISHERS, BENCH_COAP_SECONDS, BENCH_COAP_CONCURRENCY,
BENCH_IMPORT_DWELLINGS, BENCH_BILLING_HOUSEHOLDS (0 skips the billing run),
BENCH_BILLING_PDF_SAMPLE.
4. Billing (tests/bench_billing.py): a semester's run for a simulated territory,
   preview and issue timed, then the PDF rate of a sample of its invoices.
Results are printed and written to ./bench-results.json.
"""

from __future__ import annotations

import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.bench_billing import billing_case
from tests.bench_billing import report as billing_report
from tests.servers import InfluxDB, Mosquitto, free_port

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
# Calls core.cli.main (the `foyer` console script) directly: `python -m core.cli serve`
# silently exits 0 when core/cli.py lacks an `if __name__ == "__main__"` guard.
SERVE = [PY, "-c", "import sys; from core.cli import main; sys.exit(main(sys.argv[1:]))", "serve"]

MQTT_MSGS = int(os.environ.get("BENCH_MQTT_MSGS", "60000"))
MQTT_PACKS = int(os.environ.get("BENCH_MQTT_PACKS", "5000"))
PACK_RECORDS = int(os.environ.get("BENCH_PACK_RECORDS", "24"))
DEVICES = int(os.environ.get("BENCH_DEVICES", "1000"))
PUBLISHERS = int(os.environ.get("BENCH_PUBLISHERS", "1"))
COAP_SECONDS = float(os.environ.get("BENCH_COAP_SECONDS", "15"))
COAP_CONCURRENCY = int(os.environ.get("BENCH_COAP_CONCURRENCY", "128"))
IMPORT_DWELLINGS = int(os.environ.get("BENCH_IMPORT_DWELLINGS", "10000"))
BILLING_HOUSEHOLDS = int(os.environ.get("BENCH_BILLING_HOUSEHOLDS", "35000"))
BILLING_PDF_SAMPLE = int(os.environ.get("BENCH_BILLING_PDF_SAMPLE", "1000"))

CASE_TIMEOUT_S = 90.0  # per MQTT case, from first publish to all stored
WORKER_START_S = 30.0
POLL_S = 0.1
DAY = 86400
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- machine ---------------------------------------------------------------------------
def machine() -> dict[str, Any]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def cpu_seconds(pid: int | None) -> float:
    """utime + stime of a live process (all its threads), in seconds."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return 0.0


# --- HTTP helpers ------------------------------------------------------------------------
def http_get(url: str, timeout: float = 5.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - loopback
        return str(resp.read().decode())


def influx_count(influx: InfluxDB, db: str, start_s: int, end_s: int) -> int:
    where = f"time >= {start_s * 10**9} AND time < {end_s * 10**9}"  # two ints
    q = f"SELECT count(index_l) FROM meter_index WHERE {where}"  # noqa: S608
    params = urllib.parse.urlencode({"db": db, "q": q, "epoch": "ns"})
    data = json.loads(http_get(f"{influx.url}/query?{params}", timeout=30))
    series = data["results"][0].get("series")
    return int(series[0]["values"][0][1]) if series else 0


class Scrape:
    """One /metrics scrape of a worker: counters and the ack-latency histogram."""

    def __init__(self, text: str) -> None:
        self.samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                self.samples[(s.name, tuple(sorted(s.labels.items())))] = s.value

    def total(self, name: str, **labels: str) -> float:
        want = set(labels.items())
        return sum(v for (n, lab), v in self.samples.items() if n == name and want <= set(lab))

    def buckets(self, transport: str) -> list[tuple[float, float]]:
        out = []
        for (n, lab), v in self.samples.items():
            d = dict(lab)
            if n == "foyer_ack_latency_seconds_bucket" and d.get("transport") == transport:
                out.append((float(d["le"]), v))
        return sorted(out)


def quantile(before: Scrape, after: Scrape, transport: str, q: float) -> float | None:
    """Approximate quantile of the observations between two scrapes (linear in a bucket)."""
    b0 = dict(before.buckets(transport))
    buckets = [(le, v - b0.get(le, 0.0)) for le, v in after.buckets(transport)]
    if not buckets or buckets[-1][1] <= 0:
        return None
    target = q * buckets[-1][1]
    lower_le, lower_n = 0.0, 0.0
    for le, n in buckets:
        if n >= target:
            if le == float("inf"):
                return lower_le  # beyond the last finite bucket: report its bound
            frac = (target - lower_n) / (n - lower_n) if n > lower_n else 1.0
            return lower_le + frac * (le - lower_le)
        lower_le, lower_n = le, n
    return None


# --- processes ---------------------------------------------------------------------------
class Worker:
    """`python -m core.cli serve` with FOYER_* settings, its log in the work dir."""

    def __init__(self, workdir: Path, name: str, env: dict[str, str]) -> None:
        self.data_dir = workdir / name
        self.data_dir.mkdir()
        self.http_port = free_port()
        self.log = workdir / f"{name}.log"
        self.env = {
            **os.environ,
            "FOYER_DATA_DIR": str(self.data_dir),
            "FOYER_HTTP_BIND": f"127.0.0.1:{self.http_port}",
            "FOYER_MQTT_URL": "",
            "FOYER_COAP_BIND": "",
            "FOYER_MQTT_CLIENT_ID": f"foyer-bench-{name}",
            **env,
        }
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def registry_url(self) -> str:
        return f"sqlite:///{self.data_dir / 'registry.sqlite'}"

    def register_meters(self, count: int) -> None:
        from core.registry import Registry

        registry = Registry(self.registry_url)
        try:
            registry.upgrade()
            registry.import_devices((f"m-{i:04d}", "meter", None) for i in range(count))
        finally:
            registry.close()

    def start(self, wait_for: str | None = None) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                SERVE, cwd=ROOT, env=self.env,
                stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + WORKER_START_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited: {self.log.read_text()[-3000:]}")
            try:
                http_get(f"http://127.0.0.1:{self.http_port}/healthz", timeout=1)
                if wait_for is None or wait_for in self.log.read_text():
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"worker did not start: {self.log.read_text()[-3000:]}")

    def scrape(self) -> Scrape:
        return Scrape(http_get(f"http://127.0.0.1:{self.http_port}/metrics"))

    def stored(self) -> float:
        return self.scrape().total("foyer_records_stored_total")

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def stop(self) -> None:
        stop_process(self.proc)


def stop_process(proc: subprocess.Popen[Any] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


CHILDREN: list[subprocess.Popen[Any]] = []


def load(args: list[str]) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [PY, "-m", "tests.bench_publisher", *args], cwd=ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    CHILDREN.append(proc)
    return proc


def collect(proc: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    if proc.returncode != 0 or not out.strip():
        raise RuntimeError(f"load generator failed ({proc.returncode}): {err[-2000:]}")
    return dict(json.loads(out.strip().splitlines()[-1]))


# --- the MQTT cases ----------------------------------------------------------------------
def mqtt_case(
    name: str, worker: Worker, mosq: Mosquitto, influx: InfluxDB, db: str,
    messages: int, records: int, base_s: int,
) -> dict[str, Any]:  # fmt: skip
    """Publish `messages` packs of `records` records; time them into InfluxDB."""
    total_records = messages * records
    # Times of this case: [base_s, base_s + span) on each device; nothing else is there.
    span = (messages // DEVICES + 1) * records
    before = worker.scrape()
    stored0 = before.total("foyer_records_stored_total")
    target = stored0 + total_records
    pids = {"worker": worker.pid, "mosquitto": mosq.proc.pid if mosq.proc else None,
            "influxd": influx.proc.pid if influx.proc else None}  # fmt: skip
    cpu0 = {k: cpu_seconds(p) for k, p in pids.items()}
    wall0 = time.time()

    per = -(-messages // PUBLISHERS)
    pubs = []
    for k in range(PUBLISHERS):
        first, count = k * per, min(per, messages - k * per)
        if count > 0:
            pubs.append(load(["mqtt", mosq.url, str(first), str(count), str(records),
                              str(base_s), str(DEVICES)]))  # fmt: skip
    stored = stored0
    deadline = time.monotonic() + CASE_TIMEOUT_S + 30
    t_done = None
    peak_queue = 0.0
    while time.monotonic() < deadline:
        scrape = worker.scrape()
        stored = scrape.total("foyer_records_stored_total")
        peak_queue = max(peak_queue, scrape.total("foyer_write_queue_depth"))
        if stored >= target:
            t_done = time.time()
            break
        if worker.proc and worker.proc.poll() is not None:
            raise RuntimeError(f"worker died during {name}")
        time.sleep(POLL_S)
    cpu1 = {k: cpu_seconds(p) for k, p in pids.items()}
    pub_results = [collect(p, CASE_TIMEOUT_S) for p in pubs]
    after = worker.scrape()
    t_first = min(r["t_first_publish"] for r in pub_results)
    t_puback = max(r["t_all_puback"] for r in pub_results)
    elapsed = (t_done - t_first) if t_done else None
    wall = (t_done or time.time()) - wall0
    in_influx = influx_count(influx, db, base_s, base_s + span)
    cpu = {k: round(cpu1[k] - cpu0[k], 2) for k in pids}
    cpu["publishers"] = round(sum(r["cpu_s"] for r in pub_results), 2)
    return {
        "case": name,
        "messages": messages,
        "records_per_message": records,
        "records": total_records,
        "publishers": len(pubs),
        "completed": t_done is not None,
        "elapsed_s": round(elapsed, 3) if elapsed else None,
        "publish_s": round(t_puback - t_first, 3),
        "messages_per_s": round(messages / elapsed) if elapsed else None,
        "records_per_s": round(total_records / elapsed) if elapsed else None,
        "stored_counted": int(stored - stored0),
        "points_in_influxdb": in_influx,
        "lost": total_records - in_influx,
        "pubacks": sum(r["pubacks"] for r in pub_results),
        "puback_failures": sum(r["puback_failures"] for r in pub_results),
        "ack_latency_p50_s": _round(quantile(before, after, "mqtt", 0.50)),
        "ack_latency_p99_s": _round(quantile(before, after, "mqtt", 0.99)),
        "peak_write_queue": int(peak_queue),
        "refused": int(
            after.total("foyer_messages_refused_total")
            - before.total("foyer_messages_refused_total")
        ),
        "unavailable": int(
            after.total("foyer_messages_unavailable_total")
            - before.total("foyer_messages_unavailable_total")
        ),
        "spool_batches": int(after.total("foyer_spool_batches")),
        "cpu_s": cpu,
        "cpu_cores_used": {k: round(v / wall, 2) for k, v in cpu.items()} if wall > 0 else {},
    }


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


def warm_up(worker: Worker, mosq: Mosquitto, base_s: int) -> None:
    """Until the worker's shared subscription is in place, messages go nowhere: probe."""
    deadline = time.monotonic() + 30
    n = 0
    while time.monotonic() < deadline:
        before = worker.stored()
        proc = load(["mqtt", mosq.url, str(n), "200", "1", str(base_s), str(DEVICES)])
        collect(proc, 60)
        n += 200
        end = time.monotonic() + 5
        while time.monotonic() < end:
            if worker.stored() >= before + 200:
                return
            time.sleep(0.1)
    raise RuntimeError("the worker never stored the warm-up messages (not subscribed?)")


# --- the CoAP case -----------------------------------------------------------------------
def coap_case(worker: Worker, port: int, influx: InfluxDB, db: str, base_s: int) -> dict[str, Any]:
    before = worker.scrape()
    cpu0 = cpu_seconds(worker.pid)
    proc = load(["coap", f"coap://127.0.0.1:{port}", str(COAP_SECONDS),
                 str(COAP_CONCURRENCY), str(base_s), str(DEVICES)])  # fmt: skip
    res = collect(proc, COAP_SECONDS + 60)
    cpu1 = cpu_seconds(worker.pid)
    after = worker.scrape()
    dur = res["t_end"] - res["t_start"]
    changed = res["codes"].get("2.04 Changed", 0)
    time.sleep(0.5)
    in_influx = influx_count(influx, db, base_s, base_s + DAY)
    return {
        "case": "coap_con_post_1_record",
        "concurrency": COAP_CONCURRENCY,
        "duration_s": round(dur, 2),
        "posts_sent": res["sent"],
        "responses": res["responses"],
        "posts_per_s": round(res["responses"] / dur) if dur > 0 else None,
        "changed_2_04": changed,
        "non_2_04": res["responses"] - changed,
        "codes": res["codes"],
        "client_errors": res["errors"],
        "points_in_influxdb": in_influx,
        "client_latency_p50_s": _round(res["latency_p50_s"]),
        "client_latency_p99_s": _round(res["latency_p99_s"]),
        "ack_latency_p50_s": _round(quantile(before, after, "coap", 0.50)),
        "ack_latency_p99_s": _round(quantile(before, after, "coap", 0.99)),
        "cpu_s": {"worker": round(cpu1 - cpu0, 2), "client": round(res["cpu_s"], 2)},
        "cpu_cores_used": {
            "worker": round((cpu1 - cpu0) / dur, 2),
            "client": round(res["cpu_s"] / dur, 2),
        },
    }


def import_case(work: Path, count: int) -> dict[str, Any]:
    """`foyer territory import dwellings` of `count` rows into a fresh SQLite registry."""
    from core.registry import Registry
    from core.registry.territory_import import import_csv

    rows = "".join(f"d-{n:06d},{n} chemin des Vignes,Commune {n % 36}\n" for n in range(count))
    data = ("id,address,commune\n" + rows).encode()
    registry = Registry(f"sqlite:///{work / 'import.sqlite'}")
    registry.upgrade()
    try:
        started = time.perf_counter()
        counts = import_csv(registry, "dwellings", data, actor="bench", filename="bench.csv")
        elapsed = time.perf_counter() - started
    finally:
        registry.close()
    return {"case": "import_dwellings_csv", "rows": count, "imported": counts,
            "elapsed_s": round(elapsed, 2), "rows_per_s": round(count / elapsed)}  # fmt: skip


# --- report ------------------------------------------------------------------------------
def report(results: dict[str, Any]) -> None:
    m = results["machine"]
    print(f"\nmachine: {m['nproc']} x {m['cpu_model']}, Python {m['python']}")
    print(f"\n{'case':<26}{'msgs':>8}{'records':>9}{'time s':>8}{'msg/s':>9}{'rec/s':>9}"
          f"{'in influx':>10}{'lost':>6}{'ack p50':>9}{'ack p99':>9}")  # fmt: skip
    for r in results["mqtt"]:
        print(f"{r['case']:<26}{r['messages']:>8}{r['records']:>9}{_f(r['elapsed_s']):>8}"
              f"{_f(r['messages_per_s']):>9}{_f(r['records_per_s']):>9}"
              f"{r['points_in_influxdb']:>10}{r['lost']:>6}"
              f"{_ms(r['ack_latency_p50_s']):>9}{_ms(r['ack_latency_p99_s']):>9}")  # fmt: skip
        print(f"{'':<26}CPU cores used: {r['cpu_cores_used']}")
    c = results.get("coap")
    if c:
        print(f"\n{'case':<26}{'conc':>6}{'time s':>8}{'POST/s':>8}{'2.04':>8}{'non-2.04':>9}"
              f"{'errors':>8}{'rtt p50':>9}{'rtt p99':>9}")  # fmt: skip
        errors = sum(c["client_errors"].values())
        rtt = f"{_ms(c['client_latency_p50_s']):>9}{_ms(c['client_latency_p99_s']):>9}"
        print(f"{c['case']:<26}{c['concurrency']:>6}{c['duration_s']:>8}{_f(c['posts_per_s']):>8}"
              f"{c['changed_2_04']:>8}{c['non_2_04']:>9}{errors:>8}{rtt}")  # fmt: skip
        print(f"{'':<26}CPU cores used: {c['cpu_cores_used']}; codes {c['codes']}")
    reg = results.get("registry")
    if reg:
        print(f"\n{reg['case']:<26}{reg['rows']:>8} rows in {reg['elapsed_s']} s"
              f" ({reg['rows_per_s']} rows/s)")  # fmt: skip
    if results.get("billing"):
        billing_report(results["billing"])
    for e in results["errors"]:
        print(f"ERROR: {e}")


def _f(x: Any) -> str:
    return "-" if x is None else str(x)


def _ms(x: float | None) -> str:
    return "-" if x is None else f"{x * 1000:.0f}ms"


# --- main --------------------------------------------------------------------------------
def _sigterm(_signum: int, _frame: Any) -> None:
    raise SystemExit(143)


def main() -> int:
    signal.signal(signal.SIGTERM, _sigterm)
    results: dict[str, Any] = {"machine": machine(), "mqtt": [], "coap": None, "errors": []}
    results["parameters"] = {
        "mqtt_messages": MQTT_MSGS, "mqtt_packs": MQTT_PACKS, "pack_records": PACK_RECORDS,
        "devices": DEVICES, "publishers": PUBLISHERS, "coap_seconds": COAP_SECONDS,
        "coap_concurrency": COAP_CONCURRENCY, "billing_households": BILLING_HOUSEHOLDS,
        "billing_pdf_sample": BILLING_PDF_SAMPLE,
    }  # fmt: skip
    now = int(time.time())
    started = time.monotonic()
    servers: list[Any] = []
    workers: list[Worker] = []
    with tempfile.TemporaryDirectory(prefix="foyer-bench-") as tmp:
        work = Path(tmp)
        try:
            for sub in ("influx", "mosq"):
                (work / sub).mkdir()
            influx = InfluxDB(work / "influx")
            servers.append(influx)
            influx.start()
            influx.create_database("bench_mqtt")
            influx.create_database("bench_coap")
            mosq = Mosquitto(work / "mosq")
            servers.append(mosq)
            mosq.start()

            # 1. MQTT -> InfluxDB, one worker process.
            w = Worker(work, "mqtt-worker", {
                "FOYER_INFLUX_URL": influx.url, "FOYER_INFLUX_DB": "bench_mqtt",
                "FOYER_MQTT_URL": mosq.url,
            })  # fmt: skip
            workers.append(w)
            w.register_meters(DEVICES)
            w.start(wait_for="MQTT connected")
            warm_up(w, mosq, now - 30 * DAY)
            cases = [
                ("mqtt_1_record", MQTT_MSGS, 1, now - 3 * DAY),
                (f"mqtt_{PACK_RECORDS}_records", MQTT_PACKS, PACK_RECORDS, now - 10 * DAY),
            ]
            for name, msgs, recs, base in cases:
                try:
                    r = mqtt_case(name, w, mosq, influx, "bench_mqtt", msgs, recs, base)
                    results["mqtt"].append(r)
                    print(f"{name}: {json.dumps(r)}", flush=True)
                except Exception as err:  # noqa: BLE001 - report it, go on to the next case
                    results["errors"].append(f"{name}: {err}")
            w.stop()

            # 2. CoAP confirmable POSTs, a worker with CoAP on and MQTT off.
            coap_port = free_port(socket.SOCK_DGRAM)
            c = Worker(work, "coap-worker", {
                "FOYER_INFLUX_URL": influx.url, "FOYER_INFLUX_DB": "bench_coap",
                "FOYER_COAP_BIND": f"127.0.0.1:{coap_port}",
                # The load generator speaks plain CoAP: OSCORE's cost is not measured here.
                "FOYER_COAP_ALLOW_PLAIN": "true",
            })  # fmt: skip
            workers.append(c)
            c.register_meters(DEVICES)
            c.start()
            try:
                results["coap"] = coap_case(c, coap_port, influx, "bench_coap", now - 20 * DAY)
                print(f"coap: {json.dumps(results['coap'])}", flush=True)
            except Exception as err:  # noqa: BLE001
                results["errors"].append(f"coap: {err}")
            # 3. Registry: a territory's dwellings imported from CSV in one transaction.
            results["registry"] = import_case(work, IMPORT_DWELLINGS)
            print(f"registry: {json.dumps(results['registry'])}", flush=True)
            # 4. Billing: a semester's run over a simulated territory, and the PDF rate.
            if BILLING_HOUSEHOLDS > 0:
                try:
                    results["billing"] = billing_case(work, BILLING_HOUSEHOLDS, BILLING_PDF_SAMPLE)
                    print(f"billing: {json.dumps(results['billing'])}", flush=True)
                except Exception as err:  # noqa: BLE001 - report it with the others
                    results["errors"].append(f"billing: {err}")
        except Exception as err:
            results["errors"].append(f"setup: {err}")
            raise
        finally:
            for proc in CHILDREN:
                stop_process(proc)
            for wk in workers:
                wk.stop()
            for srv in reversed(servers):
                srv.stop()
            results["total_s"] = round(time.monotonic() - started, 1)
            for wk in workers:  # keep the tail of worker logs when something went wrong
                if results["errors"] and wk.log.exists():
                    results.setdefault("worker_logs", {})[wk.log.name] = wk.log.read_text()[-3000:]
            Path("bench-results.json").write_text(json.dumps(results, indent=2) + "\n")
            report(results)
    return 1 if results["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
