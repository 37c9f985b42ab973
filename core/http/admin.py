"""Administration: staff accounts, API tokens and the audit log (role admin)."""

from __future__ import annotations

import asyncio

from aiohttp import web

from core.http.auth import actor_of, json_error, requires
from core.http.keys import PEOPLE, REGISTRY
from core.registry import audit
from core.registry.people import AccountError

MAX_AUDIT = 1000


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/users", list_users)
    app.router.add_post("/api/users", add_user)
    app.router.add_post("/api/users/{username}/tokens", issue_token)
    app.router.add_get("/api/audit", audit_log)


@requires("admin")
async def list_users(request: web.Request) -> web.Response:
    users = await asyncio.to_thread(request.app[PEOPLE].list_users)
    return web.json_response({"users": users})


@requires("admin")
async def add_user(request: web.Request) -> web.Response:
    try:
        body = await request.json()
        username, password = str(body["username"]), str(body["password"])
        roles = [str(r) for r in body["roles"]]
    except (ValueError, KeyError, TypeError) as err:
        raise json_error(web.HTTPBadRequest, "JSON body: username, password, roles") from err
    people, actor = request.app[PEOPLE], actor_of(request)
    try:
        await asyncio.to_thread(lambda: people.add_user(username, password, roles, actor=actor))
    except AccountError as err:
        raise json_error(web.HTTPBadRequest, str(err)) from err
    return web.json_response({"username": username, "roles": sorted(roles)}, status=201)


@requires("admin")
async def issue_token(request: web.Request) -> web.Response:
    """A token for a script acting as this user; shown once in the answer."""
    username = request.match_info["username"]
    name = request.query.get("name", "script")
    people, actor = request.app[PEOPLE], actor_of(request)
    try:
        token = await asyncio.to_thread(lambda: people.issue_token(username, name, actor=actor))
    except AccountError as err:
        raise json_error(web.HTTPNotFound, str(err)) from err
    return web.json_response(
        {"username": username, "name": name, "token": token},
        status=201,
        headers={"Cache-Control": "no-store"},
    )


@requires("admin")
async def audit_log(request: web.Request) -> web.Response:
    registry = request.app[REGISTRY]
    target = request.query.get("target")
    try:
        limit = min(int(request.query.get("limit", 200)), MAX_AUDIT)
    except ValueError as err:
        raise json_error(web.HTTPBadRequest, "limit: expected an integer") from err

    def read() -> list[dict[str, object]]:
        with registry.reading() as session:
            return audit.entries(session, limit=limit, target=target)

    return web.json_response({"entries": await asyncio.to_thread(read)})
