"""The HTTP API and pages (aiohttp): health, metrics, read endpoints, the live summary."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from typing import Any

from aiohttp import web
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from alerts import http as care_http
from alerts.service import CareService
from alerts.sms import SmsSettings
from billing import http as billing_http
from billing.book import TariffBook
from billing.service import BillingService
from core.commissioning import http as commissioning_http
from core.commissioning.service import Commissioning
from core.http import admin, login, territory
from core.http.auth import auth_middleware, public, requires
from core.http.keys import METRICS, PEOPLE, REGISTRY
from core.ingest.directory import DeviceDirectory
from core.ingest.interpret import DEVICE_ID
from core.ingest.writer import BatchWriter
from core.metrics import Metrics
from core.readiness import Check, readiness
from core.records import BIN_EVENT, METER_INDEX, Record
from core.registry import Registry
from core.registry.people import People
from core.store.port import TelemetryStore

DEFAULT_WINDOW_S = 7 * 86400
MAX_POINTS = 50_000  # a year of 15-min readings is 35,040 points
# What the staff pages share (core/http/static/): served by name, never a folder walk.
STATIC_FILES = {
    "staff.js": "text/javascript",
    "staff.css": "text/css",
}


@dataclass(frozen=True)
class HttpDeps:
    store: TelemetryStore
    metrics: Metrics
    directory: DeviceDirectory
    writer: BatchWriter | None  # None in the api role: this process ingests nothing
    started_at: float
    registry: Registry
    commissioning: Commissioning
    care: CareService
    sms: SmsSettings
    tariffs: TariffBook
    billing: BillingService
    checks: Mapping[str, Check] = field(default_factory=dict)


@dataclass(frozen=True)
class ProbeDeps:
    """What /healthz, /readyz and /metrics read: also all the ingest and scheduler roles serve."""

    metrics: Metrics
    started_at: float
    checks: Mapping[str, Check]


DEPS = web.AppKey("deps", HttpDeps)
PROBE = web.AppKey("probe", ProbeDeps)


def build_probe_app(probe: ProbeDeps) -> web.Application:
    """The probe listener of the ingest and scheduler roles: no API, no pages, no login."""
    app = web.Application()
    _add_probe_routes(app, probe)
    return app


def _add_probe_routes(app: web.Application, probe: ProbeDeps) -> None:
    app[PROBE] = probe
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)


def build_app(deps: HttpDeps) -> web.Application:
    people = People(deps.registry)
    refused = deps.metrics.http_refused
    app = web.Application(middlewares=[auth_middleware(people, lambda r: refused.labels(r).inc())])
    app[DEPS] = deps
    app[REGISTRY] = deps.registry
    app[PEOPLE] = people
    app[METRICS] = deps.metrics
    login.add_routes(app)
    admin.add_routes(app)
    territory.add_routes(app)
    care_http.add_routes(
        app, deps.care, deps.sms, lambda reason: refused.labels(f"webhook_{reason}").inc()
    )
    commissioning_http.add_routes(app, deps.commissioning)
    billing_http.add_routes(app, deps.tariffs)
    billing_http.add_staff_routes(app, deps.billing, deps.tariffs)
    app.router.add_get("/", index)
    for name in STATIC_FILES:
        app.router.add_get(f"/static/{name}", static_file)
    _add_probe_routes(app, ProbeDeps(deps.metrics, deps.started_at, deps.checks))
    app.router.add_get("/api/summary", summary)
    app.router.add_get("/api/meters/{device_id}/index", meter_index)
    app.router.add_get("/api/bins/{device_id}/events", bin_events)
    return app


@public
async def index(_request: web.Request) -> web.Response:
    page = resources.files("core.http").joinpath("static/index.html").read_text()
    return web.Response(text=page, content_type="text/html")


@public  # code and style only, no data: the pages' API calls are what is role-checked
async def static_file(request: web.Request) -> web.Response:
    name = request.path.removeprefix("/static/")
    body = resources.files("core.http").joinpath("static", name).read_bytes()
    # Each page pins these bytes by hash (integrity attribute): a cached older copy would
    # be refused, so the browser revalidates every time; the ETag makes that a 304.
    digest = hashlib.sha256(body).hexdigest()
    fresh = any(tag.value in (digest, "*") for tag in request.if_none_match or ())
    response = web.Response(
        status=304 if fresh else 200,
        body=None if fresh else body,
        content_type=STATIC_FILES[name],
        charset="utf-8",
        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
    )
    response.etag = digest
    return response


@public  # liveness: the process answers; its dependencies are /readyz's business
async def healthz(request: web.Request) -> web.Response:
    probe = request.app[PROBE]
    return web.json_response({"status": "ok", "uptime_s": round(time.time() - probe.started_at)})


@public  # part names and short reasons only: no addresses, no secrets
async def readyz(request: web.Request) -> web.Response:
    """200 when every dependency of this process's role is up, else 503 naming those
    that are not, so a load balancer or the kubelet routes around it."""
    ready, body = await readiness(request.app[PROBE].checks)
    return web.json_response(body, status=200 if ready else 503)


@public  # counters only, no personal data; scrape from the internal network
async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[PROBE].metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


@public  # aggregate counters for the live page, like /metrics
async def summary(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    return web.json_response(
        {
            "devices": len(deps.directory),
            "queue_depth": deps.writer.depth if deps.writer else 0,
            "uptime_s": round(time.time() - deps.started_at),
            "counters": _counters(deps.metrics),
        }
    )


def _counters(m: Metrics) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for family in m.registry.collect():
        for sample in family.samples:
            if sample.name.endswith("_total"):
                label = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
                out[f"{sample.name}{{{label}}}" if label else sample.name] = sample.value
            elif family.type == "gauge":
                out[sample.name] = sample.value
    return out


# Consumption is personal (and health-adjacent for care): only the roles that use it.
@requires("technician", "care", "billing")
async def meter_index(request: web.Request) -> web.Response:
    return await _series(request, METER_INDEX)


@requires("technician", "billing")
async def bin_events(request: web.Request) -> web.Response:
    return await _series(request, BIN_EVENT)


async def _series(request: web.Request, measurement: str) -> web.Response:
    device_id = request.match_info["device_id"]
    if not DEVICE_ID.fullmatch(device_id):
        raise web.HTTPBadRequest(text="bad device_id")
    start, end = _window(request)
    records = await request.app[DEPS].store.query(measurement, device_id, start, end)
    return web.json_response(
        {"device_id": device_id, "points": [_point(r) for r in records[:MAX_POINTS]]}
    )


def _window(request: web.Request) -> tuple[int, int]:
    now = time.time()
    try:
        end = _parse_time(request.query.get("to"), now)
        start = _parse_time(request.query.get("from"), end - DEFAULT_WINDOW_S)
    except ValueError as err:
        raise web.HTTPBadRequest(text=f"from/to: epoch seconds or ISO 8601 ({err})") from err
    return int(start * 1e9), int(end * 1e9)


def _parse_time(value: str | None, default: float) -> float:
    if value is None:
        return default
    try:
        return float(value)
    except ValueError:
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            raise ValueError("ISO time needs a UTC offset") from None
        return parsed.timestamp()


def _point(record: Record) -> dict[str, Any]:
    return {"time_ns": record.time_ns, **dict(record.tags), **dict(record.fields)}
