"""Readiness checks for /readyz: is each dependency of this process's role up?

A check answers None when its part is ready, or a short reason (no secrets, no
personal data: it is served to anyone who can reach the probe port) when it is not.
/healthz stays the liveness check: a process that is not ready is still alive, and
restarting it would not bring the broker or the registry back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping

from sqlalchemy import text

from core.errors import StoreUnavailable
from core.ingest.mqtt import MqttIngest
from core.registry import Registry
from core.store.influx import InfluxStore

Check = Callable[[], Awaitable[str | None]]
Fact = Callable[[], object]  # a value /readyz shows beside the checks, e.g. "leader"

CHECK_TIMEOUT_S = 2.0  # a probe answers well within the kubelet's default 1 s ... 10 s


class Checks(dict[str, Check]):
    """/readyz's checks by name, and its facts: values reported beside the checks that
    never make the process unready (a standby scheduler is ready: `"leader": false`)."""

    def __init__(self) -> None:
        super().__init__()
        self.facts: dict[str, Fact] = {}


async def readiness(checks: Mapping[str, Check]) -> tuple[bool, dict[str, object]]:
    """(ready, the /readyz body): ready when every check answers "ok"."""
    results = await run_checks(checks)
    ready = all(result == "ok" for result in results.values())
    body: dict[str, object] = {"status": "ready" if ready else "not ready", "checks": results}
    if isinstance(checks, Checks):
        body.update({name: fact() for name, fact in checks.facts.items()})
    return ready, body


async def run_checks(checks: Mapping[str, Check]) -> dict[str, str]:
    """Every check at once, each under the deadline: name -> "ok" or the reason."""
    names = list(checks)
    results = await asyncio.gather(*(_bounded(checks[name]) for name in names))
    return {name: result or "ok" for name, result in zip(names, results, strict=True)}


async def _bounded(check: Check) -> str | None:
    try:
        return await asyncio.wait_for(check(), CHECK_TIMEOUT_S)
    except TimeoutError:
        return "no answer in time"


def registry_check(registry: Registry) -> Check:
    def ping() -> None:
        with registry.reading() as session:
            session.execute(text("SELECT 1"))

    async def check() -> str | None:
        try:
            await asyncio.to_thread(ping)
        except Exception as err:  # noqa: BLE001 - any driver error means "not reachable"
            return f"unreachable ({type(err).__name__})"
        return None

    return check


def influx_check(store: InfluxStore) -> Check:
    """Roles that only read (api, scheduler) need InfluxDB itself; ingest has its spool."""

    async def check() -> str | None:
        try:
            await store.influxql("SHOW MEASUREMENTS LIMIT 1")
        except StoreUnavailable:
            return "unreachable"
        return None

    return check


def spooling_check() -> Check:
    """Ingest writes to InfluxDB or, while it is down, to the local spool: either way
    every acknowledged message is durable, so the worker stays ready (the outage shows
    in foyer_spool_batches)."""

    async def check() -> str | None:
        return None

    return check


def mqtt_check(mqtt: MqttIngest) -> Check:
    async def check() -> str | None:
        if not mqtt.connected.is_set():
            return "not connected to the broker"
        if not mqtt.subscribed.is_set():
            return "subscriptions not granted yet"
        return None

    return check
