"""The technicians' API: list, commission, re-issue credentials, swap and retire devices."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from core.commissioning.service import Commissioning, CredentialsError
from core.http.auth import actor_of, json_error, requires
from core.http.requests import int_query, json_body
from core.registry.errors import (
    DuplicateDevice,
    InvalidCommissioning,
    InvalidDevice,
    RegistryError,
    UnknownDevice,
    UnknownPlace,
)

COMMISSIONING = web.AppKey("commissioning", Commissioning)
TECH = ("technician",)

_STATUS: dict[type[Exception], type[web.HTTPException]] = {
    DuplicateDevice: web.HTTPConflict,
    UnknownDevice: web.HTTPNotFound,
    UnknownPlace: web.HTTPNotFound,
    InvalidDevice: web.HTTPBadRequest,
    InvalidCommissioning: web.HTTPBadRequest,
    CredentialsError: web.HTTPServiceUnavailable,
}
_COMMISSION_FIELDS = {
    "model": str,
    "serial": str,
    "dwelling_id": str,
    "collection_point_id": str,
    "volume_l": int,
    "report_interval_s": int,
    "stream": str,  # residual (default), recyclables or biowaste; checked by the registry
}
_SWAP_FIELDS = {
    "model": str,
    "serial": str,
    "old_final_index_l": int,
    "new_initial_index_l": int,
    "volume_l": int,
}


def add_routes(app: web.Application, commissioning: Commissioning) -> None:
    app[COMMISSIONING] = commissioning
    app.router.add_get("/api/devices", list_devices)
    app.router.add_post("/api/devices", commission)
    app.router.add_get("/api/devices/{device_id}", get_device)
    app.router.add_post("/api/devices/{device_id}/credentials", reissue)
    app.router.add_post("/api/devices/{device_id}/settings", update_settings)
    app.router.add_post("/api/devices/{device_id}/swap", swap)
    app.router.add_post("/api/devices/{device_id}/retire", retire)


async def _translated(call: Callable[[], Awaitable[Any]]) -> Any:
    """Registry and credential refusals become HTTP errors with a JSON reason, once."""
    try:
        return await call()
    except (RegistryError, CredentialsError) as err:
        status = next((s for t, s in _STATUS.items() if isinstance(err, t)), web.HTTPBadRequest)
        raise json_error(status, str(err)) from err


def _pick(body: dict[str, Any], allowed: dict[str, type]) -> dict[str, Any]:
    """Optional typed fields; empty strings mean "not given" (HTML forms send them)."""
    out: dict[str, Any] = {}
    for name, kind in allowed.items():
        value = body.get(name)
        if value is None or value == "":
            continue
        try:
            out[name] = kind(value)
        except (TypeError, ValueError) as err:
            raise json_error(web.HTTPBadRequest, f"{name}: expected {kind.__name__}") from err
    return out


def _required(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise json_error(web.HTTPBadRequest, f"{name} is required")
    return value


@requires(*TECH)
async def list_devices(request: web.Request) -> web.Response:
    devices = request.app[COMMISSIONING].devices
    q = request.query
    rows, total = await asyncio.to_thread(
        lambda: devices.list(
            status=q.get("status") or None,
            kind=q.get("kind") or None,
            q=q.get("q") or None,
            limit=int_query(request, "limit", 100),
            offset=int_query(request, "offset", 0),
        )
    )
    return web.json_response({"devices": rows, "total": total})


@requires(*TECH)
async def get_device(request: web.Request) -> web.Response:
    devices = request.app[COMMISSIONING].devices
    device_id = request.match_info["device_id"]
    view = await _translated(lambda: asyncio.to_thread(devices.get, device_id))
    return web.json_response(view)


@requires(*TECH)
async def commission(request: web.Request) -> web.Response:
    body = await json_body(request)
    device_id, kind = _required(body, "device_id"), _required(body, "kind")
    fields = _pick(body, _COMMISSION_FIELDS)
    service = request.app[COMMISSIONING]
    result = await _translated(
        lambda: service.commission(actor_of(request), device_id=device_id, kind=kind, **fields)
    )
    return web.json_response(result, status=201, headers={"Cache-Control": "no-store"})


@requires(*TECH)
async def reissue(request: web.Request) -> web.Response:
    service = request.app[COMMISSIONING]
    device_id = request.match_info["device_id"]
    result = await _translated(lambda: service.reissue(device_id, actor_of(request)))
    return web.json_response(result, headers={"Cache-Control": "no-store"})


@requires(*TECH)
async def update_settings(request: web.Request) -> web.Response:
    body = await json_body(request)
    interval = _pick(body, {"report_interval_s": int}).get("report_interval_s")
    if interval is None:
        raise json_error(web.HTTPBadRequest, "report_interval_s is required")
    service = request.app[COMMISSIONING]
    device_id = request.match_info["device_id"]
    result = await _translated(
        lambda: service.update_settings(device_id, interval, actor_of(request))
    )
    return web.json_response(result)


@requires(*TECH)
async def swap(request: web.Request) -> web.Response:
    body = await json_body(request)
    new_id = _required(body, "new_device_id")
    fields = _pick(body, _SWAP_FIELDS)
    service = request.app[COMMISSIONING]
    old_id = request.match_info["device_id"]
    result = await _translated(lambda: service.swap(old_id, new_id, actor_of(request), **fields))
    return web.json_response(result, status=201, headers={"Cache-Control": "no-store"})


@requires(*TECH)
async def retire(request: web.Request) -> web.Response:
    service = request.app[COMMISSIONING]
    device_id = request.match_info["device_id"]
    result = await _translated(lambda: service.retire(device_id, actor_of(request)))
    return web.json_response(result)
