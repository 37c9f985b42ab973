"""The composition root: build every component from Settings, run, tear down in reverse."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from aiohttp import web
from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    EVENT_JOB_MISSED,
    JobExecutionEvent,
)
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from alerts.scoring import CareScoring
from alerts.service import CareService
from alerts.sms import SmsChannel, SmsSettings, build_channel
from billing.book import TariffBook
from billing.service import BillingService
from bins.rules import bin_rule
from core import rollup_job
from core.commissioning.service import Commissioning
from core.http.app import HttpDeps, ProbeDeps, build_app, build_probe_app
from core.ingest import coap
from core.ingest.adoption import SessionKeeper
from core.ingest.broker_accounts import BrokerAccounts
from core.ingest.directory import DeviceDirectory
from core.ingest.model import RecordRule
from core.ingest.mqtt import MqttIngest, MqttSettings
from core.ingest.oscore import OscoreKeys
from core.ingest.pipeline import Pipeline
from core.ingest.writer import BatchWriter
from core.leader import SCHEDULER_LEASE, Leader, Lease, Skipped, holder_id
from core.metrics import Metrics
from core.readiness import Checks, influx_check, mqtt_check, registry_check, spooling_check
from core.registry import Registry
from core.registry.devices import Devices
from core.settings import Settings, split_bind, without_secret
from core.store.embedded import EmbeddedStore
from core.store.influx import InfluxStore
from core.store.port import TelemetryStore
from core.store.spool import Spool, SpoolingStore
from meters.rules import MeterRules

log = logging.getLogger(__name__)

SHUTDOWN_DEADLINE_S = 10.0
DEVICE_STATES_S = 60  # a full scan of the device table: once a minute is plenty
DIRECTORY_REFRESH_S = 10  # commissioning shows up within this, or at once on first message
CARE_SCORE_S = 300  # every 5 minutes: the detector's delay is hours, its grid 15 minutes
CARE_ESCALATE_S = 60  # escalation waits are 20 minutes and more
LEASE_JOB = "scheduler-lease"  # renews the lease every ttl/3 (core/leader.py)
SESSION_LEASE_JOB = "mqtt-session-lease"  # an ingest worker's own (core/ingest/adoption.py)
# Renewals run however late: skipped after a stall of the event loop, a lease would run
# out and a live leader be replaced, or a live worker's session be adopted.
LATE_OK_JOBS = frozenset({LEASE_JOB, SESSION_LEASE_JOB})


def build_rules() -> Mapping[str, RecordRule]:
    meter = MeterRules()
    return {"meter": meter, "bin": bin_rule, "container": bin_rule, "truck": bin_rule}


@dataclass(frozen=True)
class Parts:
    """What a role runs: `foyer serve --role` (docs/configuration.md, "Roles")."""

    ingest: bool  # MQTT + CoAP ingestion and the batch writer (several workers share the load)
    api: bool  # the HTTP API and pages
    jobs: bool  # the registry-wide jobs: run by the one scheduler holding the lease


ROLE_PARTS = {
    "all": Parts(ingest=True, api=True, jobs=True),
    "ingest": Parts(ingest=True, api=False, jobs=False),
    "api": Parts(ingest=False, api=True, jobs=False),
    "scheduler": Parts(ingest=False, api=False, jobs=True),
}


@dataclass
class Foyer:
    """The running parts; those the role does not need stay None."""

    settings: Settings
    parts: Parts
    metrics: Metrics
    registry: Registry
    store: TelemetryStore
    started_at: float
    checks: Checks = field(default_factory=Checks)  # /readyz
    directory: DeviceDirectory | None = None
    writer: BatchWriter | None = None
    pipeline: Pipeline | None = None
    keys: OscoreKeys | None = None
    commissioning: Commissioning | None = None
    care: CareService | None = None
    scoring: CareScoring | None = None
    sms: SmsSettings | None = None
    billing: BillingService | None = None
    mqtt: MqttIngest | None = None
    sessions: SessionKeeper | None = None  # our MQTT session lease, departed workers' adoption
    late_days: rollup_job.LateDays | None = None  # ingest on InfluxDB: days to roll up again
    coap_context: Any = None
    http_port: int | None = None  # the API (api, all) or the probe listener (ingest, scheduler)
    http_app: web.Application | None = None
    scheduler: AsyncIOScheduler | None = None
    leader: Leader | None = None  # roles with jobs
    runs: JobRuns = field(default_factory=lambda: JobRuns())  # a clean stop lets them finish
    coap_port: int | None = None


@contextlib.asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[Foyer]:
    """`async with running(settings) as foyer:` — the role's parts up, then down in reverse."""
    parts = ROLE_PARTS[settings.role]
    async with AsyncExitStack() as stack:
        tasks = await stack.enter_async_context(_task_group())
        foyer = await _core(settings, parts, stack, tasks)
        if parts.ingest or parts.api:
            await _directory(foyer)
        if parts.ingest:
            _ingestion(foyer, tasks)
        if parts.api or parts.jobs:
            _domains(foyer)
            assert foyer.scoring is not None  # built by _domains
            stack.push_async_callback(foyer.scoring.close)  # after the scheduler stops
        await _broker_accounts(foyer, stack)
        if parts.ingest:
            await _transports(foyer, stack)
        await (_http(foyer, stack) if parts.api else _probe_http(foyer, stack))
        await _scheduler(foyer, stack)
        log.warning("Foyer running: %s", _describe(foyer))
        yield foyer


async def _core(
    settings: Settings, parts: Parts, stack: AsyncExitStack, tasks: set[asyncio.Task[None]]
) -> Foyer:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    metrics = Metrics()
    registry = Registry(settings.registry)
    await asyncio.to_thread(registry.upgrade)
    stack.callback(registry.close)
    store = await _store(settings, parts, stack, tasks, metrics)
    # LIFO: background tasks stop before the store they write to is closed.
    stack.push_async_callback(_cancel_all, tasks)
    foyer = Foyer(settings, parts, metrics, registry, store, time.time())
    foyer.checks["registry"] = registry_check(registry)
    foyer.checks["store"] = (
        influx_check(store) if isinstance(store, InfluxStore) else spooling_check()
    )
    return foyer


async def _directory(foyer: Foyer) -> None:
    """What ingest and api share: the device directory, and the CoAP key files that
    ingestion serves and commissioning issues."""
    registry = foyer.registry
    foyer.directory = DeviceDirectory(registry.usable_devices, registry.record_seen)
    await foyer.directory.refresh()
    foyer.keys = OscoreKeys(foyer.settings.data_dir / "oscore")


def _ingestion(foyer: Foyer, tasks: set[asyncio.Task[None]]) -> None:
    assert foyer.directory is not None  # built for every role that ingests
    writer = BatchWriter(foyer.store)
    _spawn(tasks, writer.run(), "batch-writer")
    foyer.metrics.queue_depth.set_function(lambda: writer.depth)  # fresh at every scrape
    foyer.writer = writer
    horizon_s = foyer.settings.horizon_days * 86400
    if rollup_job.influx_of(foyer.store) is not None:  # the embedded store has no roll-up
        foyer.late_days = rollup_job.LateDays(foyer.registry)
        if isinstance(foyer.store, SpoolingStore):  # replayed after an outage: maybe late
            foyer.store.on_replayed = foyer.late_days.note
    foyer.pipeline = Pipeline(foyer.directory, build_rules(), writer, foyer.metrics, horizon_s,
                              foyer.late_days.note if foyer.late_days else None)  # fmt: skip


def _domains(foyer: Foyer) -> None:
    """Commissioning, care and billing: what the API serves and the jobs run."""
    s, registry, store = foyer.settings, foyer.registry, foyer.store
    if foyer.directory is not None:
        foyer.commissioning = Commissioning(
            Devices(registry), keys=foyer.keys, on_change=foyer.directory.refresh
        )
    foyer.sms = sms_settings(s)
    channel = CountedSms(build_channel(foyer.sms, s.data_dir), foyer.metrics)
    foyer.care = CareService(
        registry, channel, status_callback=foyer.sms.status_callback(), store=store
    )
    foyer.scoring = CareScoring(
        store, foyer.care, s.data_dir / "care-models", workers=s.care_score_workers
    )
    foyer.billing = BillingService(registry, store)  # runs, invoices: registry + telemetry


class CountedSms:
    """The SMS channel, counted: `foyer_sms_total{outcome="sent"|"failed"}`."""

    def __init__(self, inner: SmsChannel, metrics: Metrics) -> None:
        self._inner = inner
        self._metrics = metrics

    async def send(self, to: str, body: str, status_callback: str | None) -> str:
        try:
            sid = await self._inner.send(to, body, status_callback)
        except Exception:
            self._metrics.sms.labels("failed").inc()
            raise  # the care service records the failure and escalates
        self._metrics.sms.labels("sent").inc()
        return sid


def sms_settings(s: Settings) -> SmsSettings:
    return SmsSettings(
        s.twilio_account_sid, s.twilio_auth_token, s.twilio_from, s.twilio_api_url, s.public_url
    )


async def _store(
    settings: Settings,
    parts: Parts,
    stack: AsyncExitStack,
    tasks: set[asyncio.Task[None]],
    metrics: Metrics,
) -> TelemetryStore:
    if not settings.influx_url:
        embedded = EmbeddedStore(settings.data_dir / "telemetry.sqlite")
        await embedded.open()
        stack.push_async_callback(embedded.close)
        return embedded
    influx = InfluxStore(settings.influx_url, settings.influx_db, settings.influx_token or None)
    await influx.open()
    if not parts.ingest:
        # api and scheduler only read: no writes to spool, and no spool to replay.
        stack.push_async_callback(influx.close)
        return influx
    spooling = SpoolingStore(influx, Spool(spool_path(settings)))
    await spooling.open()
    stack.push_async_callback(spooling.close)
    _spawn(tasks, spooling.run_replayer(), "spool-replayer")
    metrics.spool_batches.set_function(lambda: spooling.pending)
    metrics.observe_spool(lambda: spooling.spooled_batches, lambda: spooling.replayed_batches)
    return spooling


def spool_path(settings: Settings) -> Path:
    """One spool per writer: ingest workers sharing a data_dir each replay their own
    (by MQTT client id, stable across restarts, so a restarted worker finds its spool)."""
    if settings.role == "all":
        return settings.data_dir / "spool.sqlite"
    return worker_spool(settings.data_dir, settings.mqtt_client_id)


def worker_spool(data_dir: Path, client_id: str) -> Path:
    name = re.sub(r"[^A-Za-z0-9._-]", "_", client_id)
    return data_dir / f"spool-{name}.sqlite"


async def _broker_accounts(foyer: Foyer, stack: AsyncExitStack) -> None:
    """Device accounts on the broker (dynamic security), and Foyer's own ingest account."""
    s = foyer.settings
    if not s.mqtt_admin_url or not (foyer.parts.ingest or foyer.parts.api):
        return
    broker = BrokerAccounts(s.mqtt_admin_url, client_id=f"{s.mqtt_client_id}-admin")
    await broker.open()
    stack.push_async_callback(broker.close)
    ingest = urlsplit(s.mqtt_url)
    if foyer.parts.ingest and ingest.username and ingest.password:
        await broker.ensure_ingest_account(unquote(ingest.username), unquote(ingest.password))
    if foyer.commissioning is not None:
        foyer.commissioning.broker = broker


async def _transports(foyer: Foyer, stack: AsyncExitStack) -> None:
    s, pipeline = foyer.settings, foyer.pipeline
    assert pipeline is not None and foyer.keys is not None  # built by _ingestion
    if foyer.late_days is not None:  # LIFO: after the transports stored what was in hand
        stack.push_async_callback(foyer.late_days.close)
    if s.mqtt_url:
        mqtt_settings = MqttSettings(s.mqtt_url, s.mqtt_client_id, s.mqtt_group)
        foyer.sessions = SessionKeeper(
            foyer.registry, mqtt_settings, pipeline, foyer.metrics, s.mqtt_adopt_after_s,
            # workers sharing a data_dir (one host, systemd): a departed one's spool too
            spools=(foyer.store, functools.partial(worker_spool, s.data_dir)),
        )  # fmt: skip
        # Our session lease before we connect: a worker adopting our session while we
        # were away sees it is ours again when our connection takes the session over.
        await foyer.sessions.heartbeat()
        mqtt = MqttIngest(mqtt_settings, pipeline, foyer.metrics)
        await mqtt.start()
        stack.push_async_callback(mqtt.stop)
        foyer.mqtt = mqtt
        foyer.checks["mqtt"] = mqtt_check(mqtt)
    if s.coap_bind:
        host, port = split_bind(s.coap_bind)
        foyer.keys.reload()  # on the loop, as aiocoap's context file locks require
        stack.callback(foyer.keys.close)  # after the server stops: persists replay windows
        ctx = await coap.start_server(
            pipeline,
            foyer.metrics,
            host,
            port,
            oscore=foyer.keys,
            allow_plain=s.coap_allow_plain,
            dtls=s.coap_dtls,
        )
        stack.push_async_callback(ctx.shutdown)
        foyer.coap_context = ctx
        foyer.coap_port = port


async def _http(foyer: Foyer, stack: AsyncExitStack) -> None:
    assert foyer.directory is not None and foyer.commissioning is not None
    assert foyer.care is not None and foyer.sms is not None and foyer.billing is not None
    deps = HttpDeps(
        foyer.store,
        foyer.metrics,
        foyer.directory,
        foyer.writer,
        foyer.started_at,
        foyer.registry,
        foyer.commissioning,
        foyer.care,
        foyer.sms,
        TariffBook(foyer.settings.data_dir / "tariffs"),
        foyer.billing,
        foyer.checks,
    )
    foyer.http_app = build_app(deps)
    foyer.http_port = await _serve(foyer.http_app, foyer.settings.http_bind, stack)


async def _probe_http(foyer: Foyer, stack: AsyncExitStack) -> None:
    """ingest and scheduler serve no API: /healthz, /readyz and /metrics on probe_bind."""
    if not foyer.settings.probe_bind:
        return
    app = build_probe_app(ProbeDeps(foyer.metrics, foyer.started_at, foyer.checks))
    foyer.http_port = await _serve(app, foyer.settings.probe_bind, stack)


async def _serve(app: web.Application, bind: str, stack: AsyncExitStack) -> int:
    host, port = split_bind(bind)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    stack.push_async_callback(runner.cleanup)
    site = web.TCPSite(runner, host, port)
    await site.start()
    return int(runner.addresses[0][1]) if runner.addresses else port


async def _scheduler(foyer: Foyer, stack: AsyncExitStack) -> None:
    """Jobs are stateless over persisted state (registry, model files): a restart only
    rebuilds this schedule, and taking the lead catches up a missed nightly retrain."""
    scheduler = AsyncIOScheduler(timezone="UTC")
    scheduler.add_listener(_count_run(foyer.metrics), EVENT_JOB_EXECUTED | EVENT_JOB_ERROR
                           | EVENT_JOB_MISSED)  # fmt: skip
    start = datetime.now(UTC)

    def every(func: Any, seconds: float, job_id: str, *, now: bool = False) -> None:
        # APScheduler 3 reads next_run_time=None as "paused": pass it only to run at once.
        first: dict[str, Any] = {"next_run_time": start} if now else {}
        if job_id in LATE_OK_JOBS:
            first["misfire_grace_time"] = None  # late, never skipped (the default: 1 s)
        scheduler.add_job(
            func, "interval", seconds=seconds, id=job_id, max_instances=1, coalesce=True, **first
        )

    _local_jobs(foyer, every)
    if foyer.parts.jobs:
        leader = _leader(foyer, scheduler)
        local = {job.id for job in scheduler.get_jobs()}
        _registry_jobs(foyer, scheduler, every)
        _lead_only(scheduler, leader, local)
        every(leader.renew, leader.renew_every_s, LEASE_JOB)
        stack.push_async_callback(leader.release)  # LIFO: after the scheduler's shutdown
        await leader.renew()  # before start: a sole scheduler leads from its first runs
    if not scheduler.get_jobs():
        return
    for job in scheduler.get_jobs():
        job.modify(func=foyer.runs.track(job.func))
    scheduler.start()
    stack.push_async_callback(_stop_scheduler, scheduler, foyer.runs)
    foyer.scheduler = scheduler


async def _stop_scheduler(scheduler: AsyncIOScheduler, runs: JobRuns) -> None:
    """A clean stop lets the runs under way finish (an escalation sending its SMS, a
    roll-up writing): APScheduler's shutdown cancels them, mid-write."""
    scheduler.pause()
    await runs.finish(SHUTDOWN_DEADLINE_S)
    scheduler.shutdown(wait=False)


class JobRuns:
    """The scheduled runs under way in this process."""

    def __init__(self) -> None:
        self._running: set[asyncio.Task[Any]] = set()

    def track(self, func: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
        @functools.wraps(func)
        async def run(*args: Any, **kwargs: Any) -> Any:
            task = asyncio.current_task()
            assert task is not None  # APScheduler runs coroutine jobs as tasks
            self._running.add(task)
            try:
                if inspect.iscoroutinefunction(func):
                    return await func(*args, **kwargs)
                return await asyncio.to_thread(func, *args, **kwargs)  # as APScheduler does
            finally:
                self._running.discard(task)

        return run

    async def finish(self, deadline_s: float) -> None:
        if not self._running:
            return
        _done, late = await asyncio.wait(set(self._running), timeout=deadline_s)
        if late:
            log.warning("%d scheduled runs cut short by the stop after %.0f s", len(late),
                        deadline_s)  # fmt: skip


def _local_jobs(foyer: Foyer, every: Callable[..., None]) -> None:
    """This process's own caches: every process with a device directory runs them."""
    directory = foyer.directory
    if directory is None:
        return
    every(functools.partial(_refresh, foyer, directory), DIRECTORY_REFRESH_S, "directory-refresh")
    if foyer.pipeline is not None:  # first contact is recorded by the pipeline
        every(directory.flush_seen, 5, "first-contact")
    if foyer.late_days is not None:
        every(foyer.late_days.flush, rollup_job.LATE_FLUSH_S, "rollup-late-days")
    if foyer.sessions is not None:  # every worker: the group's sessions (core/ingest/adoption.py)
        every(foyer.sessions.heartbeat, foyer.sessions.every_s, SESSION_LEASE_JOB)
        every(foyer.sessions.adopt_departed, foyer.sessions.every_s, "mqtt-adoption")


def _registry_jobs(foyer: Foyer, scheduler: AsyncIOScheduler, every: Callable[..., None]) -> None:
    """Registry-wide jobs: only the leader runs them (`_lead_only`), or SMS would go out
    twice; a new leader also runs the catch-up retrain (`_on_leadership`)."""
    care, scoring = foyer.care, foyer.scoring
    assert care is not None and scoring is not None  # built by _domains
    devices = Devices(foyer.registry)
    every(functools.partial(_device_states, foyer.metrics, devices), DEVICE_STATES_S,
          "device-states", now=True)  # fmt: skip
    every(care.escalate_due, CARE_ESCALATE_S, "care-escalate")
    every(scoring.score_all, CARE_SCORE_S, "care-score")
    rollup_job.schedule(foyer.store, foyer.registry, every)  # "water-rollup", InfluxDB only
    scheduler.add_job(
        _care_retrain,
        "cron",
        hour=3,
        minute=17,
        timezone="Europe/Paris",
        args=[scoring, False],
        id="care-retrain-nightly",
        max_instances=1,
        coalesce=True,
    )


def _leader(foyer: Foyer, scheduler: AsyncIOScheduler) -> Leader:
    """The `scheduler` lease (core/leader.py), in the gauge and in /readyz."""
    lease = Lease(foyer.registry, SCHEDULER_LEASE, holder_id(), foyer.settings.scheduler_lease_s)
    leader = Leader(lease)
    leader.on_change = functools.partial(_on_leadership, foyer, scheduler, leader)
    foyer.metrics.scheduler_leader.set_function(lambda: float(leader.is_leader()))
    foyer.checks.facts["leader"] = leader.is_leader  # a standby is ready all the same
    foyer.leader = leader
    return leader


def _lead_only(scheduler: AsyncIOScheduler, leader: Leader, local: set[str]) -> None:
    """Every job but the `local` ones runs only while this process holds the lease,
    however `_registry_jobs` added it (an interval, a cron, a date)."""
    for job in scheduler.get_jobs():
        if job.id not in local:
            job.modify(func=_on_lease(leader, job.func))


def _on_lease(leader: Leader, func: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
    """A run that first asks the lease: a standby skips it (and does not count it)."""

    @functools.wraps(func)
    async def run(*args: Any, **kwargs: Any) -> Any:
        if not leader.is_leader():
            return Skipped.STANDBY
        if inspect.iscoroutinefunction(func):
            return await func(*args, **kwargs)
        return await asyncio.to_thread(func, *args, **kwargs)  # as APScheduler runs sync jobs

    return run


def _on_leadership(
    foyer: Foyer, scheduler: AsyncIOScheduler, leader: Leader, leading: bool
) -> None:
    """A new leader catches up at once: the retrain a missed night left stale, and the
    device gauges. One that stands by clears them: `foyer_devices` is the leader's
    alone, or dashboards summing every process would count twice."""
    if not leading:
        foyer.metrics.devices.clear()
        return
    now = datetime.now(UTC)
    scheduler.add_job(
        foyer.runs.track(_on_lease(leader, _care_retrain)), "date", run_date=now,
        args=[foyer.scoring, True], id="care-retrain-catch-up", replace_existing=True,
    )  # fmt: skip
    scheduler.modify_job("device-states", next_run_time=now)


def _count_run(metrics: Metrics) -> Callable[[JobExecutionEvent], None]:
    """`foyer_job_runs_total{job, outcome}`; APScheduler itself logs a failed run. A
    standby's skipped run is no run: the counter shows which process did the work."""
    outcomes = {EVENT_JOB_EXECUTED: "ok", EVENT_JOB_ERROR: "error", EVENT_JOB_MISSED: "missed"}

    def listener(event: JobExecutionEvent) -> None:
        if event.code == EVENT_JOB_EXECUTED and event.retval is Skipped.STANDBY:
            return
        metrics.job_runs.labels(event.job_id, outcomes.get(event.code, "other")).inc()

    return listener


async def _care_retrain(scoring: CareScoring, only_stale: bool) -> None:
    trained = await scoring.retrain_all(only_stale=only_stale)
    log.info("care models retrained: %d", trained)


async def _refresh(foyer: Foyer, directory: DeviceDirectory) -> None:
    """Commissioning done by another process (CLI, API worker) reaches this one."""
    await directory.refresh()
    if foyer.coap_context is not None and foyer.keys is not None:
        # Only the process serving CoAP holds key files (their locks); on the loop,
        # as aiocoap's context file locks are thread-local.
        foyer.keys.reload()


async def _device_states(metrics: Metrics, devices: Devices) -> None:
    """`foyer_devices{status}`: pending, active, silent and retired counts for dashboards."""
    counts = await asyncio.to_thread(devices.count_by_status)
    for status in ("pending", "active", "silent", "retired"):
        metrics.devices.labels(status).set(counts.get(status, 0))


async def _cancel_all(tasks: set[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.wait(tasks, timeout=SHUTDOWN_DEADLINE_S)


@contextlib.asynccontextmanager
async def _task_group() -> AsyncIterator[set[asyncio.Task[None]]]:
    tasks: set[asyncio.Task[None]] = set()
    try:
        yield tasks
    finally:
        await _cancel_all(tasks)


def _spawn(tasks: set[asyncio.Task[None]], coro: Any, name: str) -> None:
    task: asyncio.Task[None] = asyncio.create_task(_guard(coro, name), name=name)
    tasks.add(task)


async def _guard(coro: Any, name: str) -> None:
    try:
        await coro
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("task %s crashed", name)
        raise


def _describe(foyer: Foyer) -> str:
    s = foyer.settings
    store = f"influxdb {s.influx_url} db={s.influx_db}" if s.influx_url else "embedded"
    http = f"http={s.http_bind}" if foyer.parts.api else f"probe={s.probe_bind or 'off'}"
    out = f"role={s.role} store={store} {http}"
    if foyer.parts.ingest:
        out += f" mqtt={without_secret(s.mqtt_url) or 'off'} coap={s.coap_bind or 'off'}"
        out += f" devices={len(foyer.directory or ())}"
    return out
