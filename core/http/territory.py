"""Territory API: dwellings, households and their occupancy, collection points, badges,
and the bulk CSV import (docs/schema.md, "Territory CSV files").

Roles: dwellings and collection points are read by technicians (to install devices)
and billing staff; households (names are personal data) and badges only by billing;
every change and import by billing. Admins pass everywhere (core/http/auth.py).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import date
from typing import Any, Final, TypeVar

from aiohttp import web

from core.http.auth import actor_of, json_error, requires
from core.http.keys import REGISTRY
from core.http.requests import int_query, json_body
from core.registry.errors import (
    DuplicateTerritory,
    OccupancyConflict,
    RegistryError,
    TerritoryImportError,
    UnknownBadge,
    UnknownHousehold,
    UnknownPlace,
)
from core.registry.models import CollectionPoint, Dwelling
from core.registry.territory import Territory

T = TypeVar("T")

# A CSV of 30,000 households is about 2.5 MB; aiohttp's default body limit is 1 MiB,
# so the import reads the body itself up to this bound.
MAX_IMPORT_BYTES: Final = 32 * 1024 * 1024
DEFAULT_LIMIT: Final = 100

_STATUS: Final[tuple[tuple[type[RegistryError], type[web.HTTPException]], ...]] = (
    (UnknownPlace, web.HTTPNotFound),
    (UnknownHousehold, web.HTTPNotFound),
    (UnknownBadge, web.HTTPNotFound),
    (DuplicateTerritory, web.HTTPConflict),
    (OccupancyConflict, web.HTTPConflict),
)


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/api/dwellings", list_dwellings)
    r.add_post("/api/dwellings", create_dwelling)
    r.add_get("/api/dwellings/{id}", get_dwelling)
    r.add_patch("/api/dwellings/{id}", update_dwelling)
    r.add_get("/api/households", list_households)
    r.add_post("/api/households", create_household)
    r.add_get("/api/households/{id}", get_household)
    r.add_patch("/api/households/{id}", update_household)
    r.add_post("/api/households/{id}/occupancies", move_in)
    r.add_post("/api/households/{id}/move-out", move_out)
    r.add_get("/api/collection-points", list_collection_points)
    r.add_post("/api/collection-points", create_collection_point)
    r.add_get("/api/collection-points/{id}", get_collection_point)
    r.add_patch("/api/collection-points/{id}", update_collection_point)
    r.add_get("/api/badges", list_badges)
    r.add_post("/api/badges", issue_badge)
    r.add_get("/api/badges/{id}", get_badge)
    r.add_post("/api/badges/{id}/revoke", revoke_badge)
    r.add_post("/api/territory/import/{kind}", import_csv)


# --- the one place where registry refusals become HTTP answers ---------------------------


async def _run(func: Callable[[], T]) -> T:
    """Run a registry call off the event loop; its refusals become JSON errors."""
    try:
        return await asyncio.to_thread(func)
    except TerritoryImportError as err:
        raise web.HTTPUnprocessableEntity(
            text=json.dumps(err.report()), content_type="application/json"
        ) from err
    except RegistryError as err:
        status = next((s for e, s in _STATUS if isinstance(err, e)), web.HTTPBadRequest)
        raise json_error(status, str(err)) from err


def _territory(request: web.Request) -> Territory:
    return Territory(request.app[REGISTRY])


def _paging(request: web.Request) -> dict[str, Any]:
    return {
        "limit": int_query(request, "limit", DEFAULT_LIMIT),
        "offset": int_query(request, "offset", 0),
    }


def _date_param(request: web.Request, name: str) -> date | None:
    text = request.query.get(name)
    try:
        return date.fromisoformat(text) if text else None
    except ValueError as err:
        raise json_error(web.HTTPBadRequest, f"{name}: expected YYYY-MM-DD") from err


def _page(name: str, page: tuple[list[dict[str, Any]], int]) -> web.Response:
    rows, total = page
    return web.json_response({name: rows, "total": total})


# --- dwellings and collection points ------------------------------------------------------


@requires("technician", "billing")
async def list_dwellings(request: web.Request) -> web.Response:
    q, commune, paging = request.query.get("q"), request.query.get("commune"), _paging(request)
    read = _territory(request).read
    return _page(
        "dwellings", await _run(lambda: read.places(Dwelling, q=q, commune=commune, **paging))
    )


@requires("technician", "billing")
async def get_dwelling(request: web.Request) -> web.Response:
    read, key = _territory(request).read, request.match_info["id"]
    return web.json_response(await _run(lambda: read.dwelling(key)))


@requires("billing")
async def create_dwelling(request: web.Request) -> web.Response:
    body, actor, territory = await json_body(request), actor_of(request), _territory(request)
    view = await _run(lambda: territory.create_dwelling(body, actor=actor))
    return web.json_response(view, status=201)


@requires("billing")
async def update_dwelling(request: web.Request) -> web.Response:
    body, actor, territory = await json_body(request), actor_of(request), _territory(request)
    key = request.match_info["id"]
    return web.json_response(await _run(lambda: territory.update_dwelling(key, body, actor=actor)))


@requires("technician", "billing")
async def list_collection_points(request: web.Request) -> web.Response:
    q, commune, paging = request.query.get("q"), request.query.get("commune"), _paging(request)
    read = _territory(request).read
    page = await _run(lambda: read.places(CollectionPoint, q=q, commune=commune, **paging))
    return _page("collection_points", page)


@requires("technician", "billing")
async def get_collection_point(request: web.Request) -> web.Response:
    read, key = _territory(request).read, request.match_info["id"]
    return web.json_response(await _run(lambda: read.collection_point(key)))


@requires("billing")
async def create_collection_point(request: web.Request) -> web.Response:
    body, actor, territory = await json_body(request), actor_of(request), _territory(request)
    view = await _run(lambda: territory.create_collection_point(body, actor=actor))
    return web.json_response(view, status=201)


@requires("billing")
async def update_collection_point(request: web.Request) -> web.Response:
    body, actor, territory = await json_body(request), actor_of(request), _territory(request)
    key = request.match_info["id"]
    view = await _run(lambda: territory.update_collection_point(key, body, actor=actor))
    return web.json_response(view)


# --- households and occupancy -------------------------------------------------------------


@requires("billing")
async def list_households(request: web.Request) -> web.Response:
    query, paging, read = request.query, _paging(request), _territory(request).read
    filters: dict[str, Any] = {k: query.get(k) for k in ("q", "kind", "dwelling_id")}
    return _page("households", await _run(lambda: read.households(**filters, **paging)))


@requires("billing")
async def get_household(request: web.Request) -> web.Response:
    read, key = _territory(request).read, request.match_info["id"]
    return web.json_response(await _run(lambda: read.household(key)))


@requires("billing")
async def create_household(request: web.Request) -> web.Response:
    body, actor, territory = await json_body(request), actor_of(request), _territory(request)
    view = await _run(lambda: territory.create_household(body, actor=actor))
    return web.json_response(view, status=201)


@requires("billing")
async def update_household(request: web.Request) -> web.Response:
    body, actor, territory = await json_body(request), actor_of(request), _territory(request)
    key = request.match_info["id"]
    view = await _run(lambda: territory.update_household(key, body, actor=actor))
    return web.json_response(view)


@requires("billing")
async def move_in(request: web.Request) -> web.Response:
    """JSON {"dwelling_id", "move_in", "move_out"?} -> 201 the new occupancy."""
    body, actor, territory = await json_body(request), actor_of(request), _territory(request)
    key = request.match_info["id"]
    view = await _run(lambda: territory.move_in(key, body, actor=actor))
    return web.json_response(view, status=201)


@requires("billing")
async def move_out(request: web.Request) -> web.Response:
    """JSON {"move_out"?} (default today) -> the ended occupancy."""
    body, actor, territory = await json_body(request), actor_of(request), _territory(request)
    key = request.match_info["id"]
    return web.json_response(await _run(lambda: territory.move_out(key, body, actor=actor)))


# --- badges -------------------------------------------------------------------------------


@requires("billing")
async def list_badges(request: web.Request) -> web.Response:
    household, valid_on = request.query.get("household_id"), _date_param(request, "valid_on")
    paging, read = _paging(request), _territory(request).read
    page = await _run(lambda: read.badges(household_id=household, valid_on=valid_on, **paging))
    return _page("badges", page)


@requires("billing")
async def get_badge(request: web.Request) -> web.Response:
    read, key = _territory(request).read, request.match_info["id"]
    return web.json_response(await _run(lambda: read.badge(key)))


@requires("billing")
async def issue_badge(request: web.Request) -> web.Response:
    body, actor, territory = await json_body(request), actor_of(request), _territory(request)
    view = await _run(lambda: territory.issue_badge(body, actor=actor))
    return web.json_response(view, status=201)


@requires("billing")
async def revoke_badge(request: web.Request) -> web.Response:
    """JSON {"valid_to"?} (default today): the badge opens nothing from that day."""
    body, actor, territory = await json_body(request), actor_of(request), _territory(request)
    key = request.match_info["id"]
    return web.json_response(await _run(lambda: territory.revoke_badge(key, body, actor=actor)))


# --- bulk import --------------------------------------------------------------------------


async def _read_csv(request: web.Request) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > MAX_IMPORT_BYTES:
            raise json_error(
                web.HTTPRequestEntityTooLarge, f"CSV larger than {MAX_IMPORT_BYTES} bytes"
            )
        chunks.append(chunk)
    return b"".join(chunks)


@requires("billing")
async def import_csv(request: web.Request) -> web.Response:
    """Body: the CSV (text/csv). 200 {"kind", "imported", ...}, or 422 with the report
    {"error", "kind", "problems": [{"row", "column", "reason"}], "more"}; nothing is
    imported unless every row is good. ``?filename=`` names the file in the audit log."""
    kind = request.match_info["kind"].replace("-", "_")
    filename = request.query.get("filename", "upload.csv")
    actor, territory, data = actor_of(request), _territory(request), await _read_csv(request)
    counts = await _run(lambda: territory.import_csv(kind, data, actor=actor, filename=filename))
    return web.json_response(counts)
