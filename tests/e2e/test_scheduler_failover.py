"""Two `foyer serve --role scheduler` processes on one PostgreSQL registry: one leads
and alone runs the registry-wide jobs; SIGKILL it and the other leads within two ttl;
SIGTERM a leader and it releases the lease, so the standby leads at its next try.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from core.leader import SCHEDULER_LEASE, Lease, LeaseState
from core.registry import Registry
from tests.e2e.conftest import eventually
from tests.servers import free_port

pytestmark = pytest.mark.servers

TTL_S = 3  # FOYER_SCHEDULER_LEASE_S: renewals every second, a dead leader replaced in ~3 s
DEVICES = [("m-1", "meter", "h-1"), ("m-2", "meter", None)]


@dataclass
class Scheduler:
    """One `foyer serve --role scheduler` process: its own data dir and probe port."""

    name: str
    registry_url: str
    workdir: Path
    probe_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        return self.workdir / f"{self.name}.log"

    def start(self) -> None:
        env = {
            **os.environ,
            "FOYER_DATA_DIR": str(self.workdir / self.name),  # each pod its own disk
            "FOYER_REGISTRY_URL": self.registry_url,
            "FOYER_SCHEDULER_LEASE_S": str(TTL_S),
            "FOYER_PROBE_BIND": f"127.0.0.1:{self.probe_port}",
            "FOYER_COAP_BIND": "",
        }
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "core.cli", "serve", "--role", "scheduler"],
                env=env, stdout=out, stderr=out,
            )  # fmt: skip

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self, sig: signal.Signals) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=30)

    def get(self, path: str) -> tuple[int, bytes]:
        url = f"http://127.0.0.1:{self.probe_port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                return int(resp.status), resp.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()
        except OSError:
            return 0, b""  # not listening (yet), or gone

    def readyz(self) -> dict[str, object]:
        status, body = self.get("/readyz")
        return {"http": status, **(json.loads(body) if status else {})}

    def ready(self) -> bool:
        return self.readyz()["http"] == 200

    def leads(self) -> bool:
        """/readyz says so, and the gauge agrees (both read the same state)."""
        return self.readyz().get("leader") is True and self.sample("foyer_scheduler_leader") == 1

    def sample(self, name: str, **labels: str) -> float | None:
        _status, body = self.get("/metrics")
        for family in text_string_to_metric_families(body.decode()):
            for s in family.samples:
                if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                    return float(s.value)
        return None

    def runs(self, job: str) -> float:
        return self.sample("foyer_job_runs_total", job=job, outcome="ok") or 0.0


@pytest.fixture
def registry_url(postgres_url: str) -> str:
    registry = Registry(postgres_url)
    registry.upgrade()  # once, before both start: their own upgrade is then a no-op
    registry.import_devices(DEVICES)
    registry.close()
    return postgres_url


@pytest.fixture
def schedulers(tmp_path: Path, registry_url: str) -> Iterator[tuple[Scheduler, Scheduler]]:
    pair = (Scheduler("a", registry_url, tmp_path), Scheduler("b", registry_url, tmp_path))
    try:
        yield pair
    finally:
        for scheduler in pair:
            if scheduler.proc is not None:
                scheduler.stop(signal.SIGKILL)


def lease_row(registry_url: str) -> LeaseState | None:
    registry = Registry(registry_url)
    try:
        return Lease(registry, SCHEDULER_LEASE, "test", TTL_S).current()
    finally:
        registry.close()


def holder_prefix(scheduler: Scheduler) -> str:
    return f"{socket.gethostname()}-{scheduler.pid}-"  # core.leader.holder_id()


async def one_leader(a: Scheduler, b: Scheduler) -> tuple[Scheduler, Scheduler]:
    """Wait until both are ready and exactly one leads; (leader, standby)."""
    await eventually(lambda: a.ready() and b.ready() and a.leads() != b.leads(), within=30)
    leader, standby = (a, b) if a.leads() else (b, a)
    assert standby.readyz() == {
        "http": 200, "status": "ready", "checks": {"registry": "ok", "store": "ok"},
        "leader": False,
    }  # fmt: skip
    assert standby.sample("foyer_scheduler_leader") == 0
    return leader, standby


async def test_one_of_two_schedulers_leads_and_alone_runs_the_registry_jobs(
    schedulers: tuple[Scheduler, Scheduler],
) -> None:
    a, b = schedulers
    a.start()
    b.start()  # at once: both race for the free lease
    leader, standby = await one_leader(a, b)
    lease = lease_row(leader.registry_url)
    assert lease is not None and lease.holder.startswith(holder_prefix(leader))
    # The leader ran device-states and the catch-up retrain when it took the lead.
    await eventually(lambda: leader.runs("device-states") >= 1, within=10)
    await eventually(lambda: leader.runs("care-retrain-catch-up") >= 1, within=30)
    # The standby's scheduler runs (it renews-or-takes every second) but skips the
    # registry jobs, device-states included though it is due at start-up.
    await eventually(lambda: standby.runs("scheduler-lease") >= 3, within=10)
    for job in ("device-states", "care-retrain-catch-up", "care-score", "care-escalate"):
        assert standby.runs(job) == 0, job
    assert standby.sample("foyer_devices", status="active") is None
    assert leader.sample("foyer_devices", status="pending") == len(DEVICES)


async def test_a_sigkilled_leader_is_replaced_within_two_ttl(
    schedulers: tuple[Scheduler, Scheduler],
) -> None:
    a, b = schedulers
    a.start()
    b.start()
    leader, standby = await one_leader(a, b)
    leader.stop(signal.SIGKILL)  # no release: the lease must expire
    killed_at = datetime.now(UTC)
    await eventually(standby.leads, within=4 * TTL_S)  # polling slack on a loaded machine
    assert standby.ready()
    # Measured on the lease's own clock (PostgreSQL's, on this host): when it was taken.
    lease = lease_row(standby.registry_url)
    assert lease is not None and lease.holder.startswith(holder_prefix(standby))
    assert lease.acquired_at - killed_at <= timedelta(seconds=2 * TTL_S)
    # The new leader catches up at once: device gauges and the missed retrain.
    await eventually(lambda: standby.runs("device-states") >= 1, within=10)
    await eventually(lambda: standby.runs("care-retrain-catch-up") >= 1, within=30)
    log = standby.log.read_text()
    assert log.count("standing by: another process holds the lease") == 1
    assert log.count("this process leads the scheduler") == 1


async def test_a_sigtermed_leader_releases_the_lease_and_the_standby_leads_at_once(
    schedulers: tuple[Scheduler, Scheduler],
) -> None:
    a, b = schedulers
    a.start()
    b.start()
    leader, standby = await one_leader(a, b)
    assert leader.stop(signal.SIGTERM) == 0  # clean shutdown
    # Released, not left to expire: the row is gone or already the standby's.
    lease = lease_row(leader.registry_url)
    assert lease is None or lease.holder.startswith(holder_prefix(standby))
    await eventually(standby.leads, within=2 * TTL_S)  # its next try (every ttl/3), with slack
    assert "scheduler lease released" in leader.log.read_text()
