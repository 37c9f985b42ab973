"""The composition root: build every component from Settings, run, tear down in reverse."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urlsplit

from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from alerts.scoring import CareScoring
from alerts.service import CareService
from alerts.sms import SmsSettings, build_channel
from billing.book import TariffBook
from billing.service import BillingService
from bins.rules import bin_rule
from core.commissioning.service import Commissioning
from core.http.app import HttpDeps, build_app
from core.ingest import coap
from core.ingest.broker_accounts import BrokerAccounts
from core.ingest.directory import DeviceDirectory
from core.ingest.model import RecordRule
from core.ingest.mqtt import MqttIngest, MqttSettings
from core.ingest.oscore import OscoreKeys
from core.ingest.pipeline import Pipeline
from core.ingest.writer import BatchWriter
from core.metrics import Metrics
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


def build_rules() -> Mapping[str, RecordRule]:
    meter = MeterRules()
    return {"meter": meter, "bin": bin_rule, "container": bin_rule, "truck": bin_rule}


@dataclass
class Foyer:
    settings: Settings
    metrics: Metrics
    registry: Registry
    store: TelemetryStore
    directory: DeviceDirectory
    writer: BatchWriter
    pipeline: Pipeline
    commissioning: Commissioning
    keys: OscoreKeys
    care: CareService
    scoring: CareScoring
    sms: SmsSettings
    billing: BillingService
    mqtt: MqttIngest | None = None
    coap_context: Any = None
    http_port: int | None = None
    http_app: web.Application | None = None
    scheduler: AsyncIOScheduler | None = None
    coap_port: int | None = None


@contextlib.asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[Foyer]:
    """`async with running(settings) as foyer:` — everything up, then down in reverse."""
    async with AsyncExitStack() as stack:
        tasks = await stack.enter_async_context(_task_group())
        foyer = await _core(settings, stack, tasks)
        await _transports(foyer, stack)
        await _http(foyer, stack)
        _scheduler(foyer, stack)
        log.warning("Foyer running: %s", _describe(foyer))
        yield foyer


async def _core(settings: Settings, stack: AsyncExitStack, tasks: set[asyncio.Task[None]]) -> Foyer:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    metrics = Metrics()
    registry = Registry(settings.registry)
    await asyncio.to_thread(registry.upgrade)
    stack.callback(registry.close)
    store = await _store(settings, stack, tasks)
    directory = DeviceDirectory(registry.usable_devices, registry.record_seen)
    await directory.refresh()
    writer = BatchWriter(store)
    _spawn(tasks, writer.run(), "batch-writer")
    # LIFO: background tasks stop before the store they write to is closed.
    stack.push_async_callback(_cancel_all, tasks)
    pipeline = Pipeline(directory, build_rules(), writer, metrics, settings.horizon_days * 86400)
    keys = OscoreKeys(settings.data_dir / "oscore")
    commissioning = Commissioning(Devices(registry), keys=keys, on_change=directory.refresh)
    sms = sms_settings(settings)
    care = CareService(
        registry,
        build_channel(sms, settings.data_dir),
        status_callback=sms.status_callback(),
        store=store,
    )
    scoring = CareScoring(store, care, settings.data_dir / "care-models")
    billing = BillingService(registry, store)  # runs, invoices: registry + telemetry
    return Foyer(
        settings,
        metrics,
        registry,
        store,
        directory,
        writer,
        pipeline,
        commissioning,
        keys,
        care,
        scoring,
        sms,
        billing,
    )


def sms_settings(s: Settings) -> SmsSettings:
    return SmsSettings(
        s.twilio_account_sid, s.twilio_auth_token, s.twilio_from, s.twilio_api_url, s.public_url
    )


async def _store(
    settings: Settings, stack: AsyncExitStack, tasks: set[asyncio.Task[None]]
) -> TelemetryStore:
    if not settings.influx_url:
        embedded = EmbeddedStore(settings.data_dir / "telemetry.sqlite")
        await embedded.open()
        stack.push_async_callback(embedded.close)
        return embedded
    influx = InfluxStore(settings.influx_url, settings.influx_db, settings.influx_token or None)
    await influx.open()
    spooling = SpoolingStore(influx, Spool(settings.data_dir / "spool.sqlite"))
    await spooling.open()
    stack.push_async_callback(spooling.close)
    _spawn(tasks, spooling.run_replayer(), "spool-replayer")
    return spooling


async def _broker_accounts(foyer: Foyer, stack: AsyncExitStack) -> None:
    """Device accounts on the broker (dynamic security), and Foyer's own ingest account."""
    s = foyer.settings
    if not s.mqtt_admin_url:
        return
    broker = BrokerAccounts(s.mqtt_admin_url, client_id=f"{s.mqtt_client_id}-admin")
    await broker.open()
    stack.push_async_callback(broker.close)
    ingest = urlsplit(s.mqtt_url)
    if ingest.username and ingest.password:
        await broker.ensure_ingest_account(unquote(ingest.username), unquote(ingest.password))
    foyer.commissioning.broker = broker


async def _transports(foyer: Foyer, stack: AsyncExitStack) -> None:
    s = foyer.settings
    await _broker_accounts(foyer, stack)
    if s.mqtt_url:
        mqtt = MqttIngest(
            MqttSettings(s.mqtt_url, s.mqtt_client_id, s.mqtt_group), foyer.pipeline, foyer.metrics
        )
        await mqtt.start()
        stack.push_async_callback(mqtt.stop)
        foyer.mqtt = mqtt
    if s.coap_bind:
        host, port = split_bind(s.coap_bind)
        foyer.keys.reload()  # on the loop, as aiocoap's context file locks require
        stack.callback(foyer.keys.close)  # after the server stops: persists replay windows
        ctx = await coap.start_server(
            foyer.pipeline,
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
    host, port = split_bind(foyer.settings.http_bind)
    deps = HttpDeps(
        foyer.store,
        foyer.metrics,
        foyer.directory,
        foyer.writer,
        time.time(),
        foyer.registry,
        foyer.commissioning,
        foyer.care,
        foyer.sms,
        TariffBook(foyer.settings.data_dir / "tariffs"),
        foyer.billing,
    )
    foyer.http_app = build_app(deps)
    runner = web.AppRunner(foyer.http_app, access_log=None)
    await runner.setup()
    stack.push_async_callback(runner.cleanup)
    site = web.TCPSite(runner, host, port)
    await site.start()
    foyer.http_port = runner.addresses[0][1] if runner.addresses else port


def _scheduler(foyer: Foyer, stack: AsyncExitStack) -> None:
    """Jobs are stateless over persisted state (registry, model files): a restart only
    rebuilds this schedule, and the start-up run catches up a missed nightly retrain."""
    scheduler = AsyncIOScheduler(timezone="UTC")
    start = datetime.now(UTC)

    def every(func: Any, seconds: float, job_id: str, *, now: bool = False) -> None:
        # APScheduler 3 reads next_run_time=None as "paused": pass it only to run at once.
        first = {"next_run_time": start} if now else {}
        scheduler.add_job(
            func,
            "interval",
            seconds=seconds,
            args=[foyer],
            id=job_id,
            max_instances=1,
            coalesce=True,
            **first,
        )

    every(_refresh, DIRECTORY_REFRESH_S, "directory-refresh")
    every(_flush_seen, 5, "first-contact")
    every(_gauges, 2, "gauges")
    every(_device_states, DEVICE_STATES_S, "device-states", now=True)
    every(_care_escalate, CARE_ESCALATE_S, "care-escalate")
    every(_care_score, CARE_SCORE_S, "care-score")
    scheduler.add_job(
        _care_retrain, "date", run_date=start, args=[foyer, True], id="care-retrain-catch-up"
    )
    scheduler.add_job(
        _care_retrain,
        "cron",
        hour=3,
        minute=17,
        timezone="Europe/Paris",
        args=[foyer, False],
        id="care-retrain-nightly",
        max_instances=1,
        coalesce=True,
    )
    scheduler.start()
    stack.callback(scheduler.shutdown, wait=False)
    foyer.scheduler = scheduler


async def _flush_seen(foyer: Foyer) -> None:
    await foyer.directory.flush_seen()


async def _care_escalate(foyer: Foyer) -> None:
    await foyer.care.escalate_due()


async def _care_score(foyer: Foyer) -> None:
    await foyer.scoring.score_all()


async def _care_retrain(foyer: Foyer, only_stale: bool) -> None:
    trained = await foyer.scoring.retrain_all(only_stale=only_stale)
    log.info("care models retrained: %d", trained)


async def _refresh(foyer: Foyer) -> None:
    """Commissioning done by another process (CLI, API worker) reaches this one."""
    await foyer.directory.refresh()
    if foyer.coap_context is not None:
        # Only the process serving CoAP holds key files (their locks); on the loop,
        # as aiocoap's context file locks are thread-local.
        foyer.keys.reload()


async def _device_states(foyer: Foyer) -> None:
    """`foyer_devices{status}`: pending, active, silent and retired counts for dashboards."""
    counts = await asyncio.to_thread(foyer.commissioning.devices.count_by_status)
    for status in ("pending", "active", "silent", "retired"):
        foyer.metrics.devices.labels(status).set(counts.get(status, 0))


async def _gauges(foyer: Foyer) -> None:
    foyer.metrics.queue_depth.set(foyer.writer.depth)
    if isinstance(foyer.store, SpoolingStore):
        foyer.metrics.spool_batches.set(foyer.store.pending)


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
    return (
        f"store={store} mqtt={without_secret(s.mqtt_url) or 'off'} coap={s.coap_bind or 'off'} "
        f"http={s.http_bind} devices={len(foyer.directory)}"
    )
