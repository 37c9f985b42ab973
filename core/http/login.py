"""Staff login for the pages: a session cookie backed by the registry; /api/me."""

from __future__ import annotations

import asyncio
import logging
from importlib import resources

from aiohttp import web

from core.http.auth import (
    PRINCIPAL_KEY,
    SESSION_COOKIE,
    LoginGuard,
    json_error,
    public,
    requires,
)
from core.http.keys import METRICS, PEOPLE
from core.registry.models import STAFF_ROLES
from core.registry.people import SESSION_TTL, Principal

log = logging.getLogger(__name__)

GUARD = web.AppKey("login_guard", LoginGuard)
PAGES = {
    "/login": "login.html",
    "/technician": "technician.html",
    "/care": "care.html",
    "/billing": "billing.html",
}


def add_routes(app: web.Application) -> None:
    app[GUARD] = LoginGuard()
    app.router.add_post("/api/login", login)
    app.router.add_post("/api/logout", logout)
    app.router.add_get("/api/me", me)
    for path in PAGES:
        app.router.add_get(path, page)


@public
async def page(request: web.Request) -> web.Response:
    """Pages are static; every piece of data behind them is role-checked by the API."""
    name = PAGES[request.path]
    text = resources.files("core.http").joinpath(f"static/{name}").read_text()
    return web.Response(
        text=text,
        content_type="text/html",
        headers={"Content-Security-Policy": CSP, "X-Frame-Options": "DENY"},
    )


# Each page pins its scripts (its inline one, /static/staff.js) by hash in a <meta>
# policy; the header adds what a <meta> policy cannot say (framing), so both policies
# together stay strict.
CSP = "frame-ancestors 'none'; base-uri 'none'; object-src 'none'"


@public
async def login(request: web.Request) -> web.Response:
    try:
        body = await request.json()
        username, password = str(body["username"]), str(body["password"])
    except (ValueError, KeyError, TypeError) as err:
        raise json_error(web.HTTPBadRequest, "JSON body with username and password") from err
    guard = request.app[GUARD]
    refused = request.app[METRICS].http_refused
    if guard.locked(username):
        refused.labels("locked").inc()
        log.warning("login refused: too many failures for one username")
        raise json_error(web.HTTPTooManyRequests, "too many failed logins; try again later")
    people = request.app[PEOPLE]
    principal = await asyncio.to_thread(people.authenticate, username, password)
    if principal is None:
        refused.labels("bad_login").inc()
        guard.failed(username)
        raise json_error(web.HTTPUnauthorized, "wrong username or password")
    guard.succeeded(username)
    token = await asyncio.to_thread(people.open_session, principal.username)
    response = web.json_response(_me(principal))
    response.set_cookie(
        SESSION_COOKIE,
        token,
        httponly=True,
        samesite="Strict",
        path="/",
        max_age=int(SESSION_TTL.total_seconds()),
        secure=request.secure,
    )
    return response


@public
async def logout(request: web.Request) -> web.Response:
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        await asyncio.to_thread(request.app[PEOPLE].close_session, token)
    response = web.Response(status=204)
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


@requires(*STAFF_ROLES)
async def me(request: web.Request) -> web.Response:
    return web.json_response(_me(request[PRINCIPAL_KEY]))


def _me(principal: Principal) -> dict[str, object]:
    return {"username": principal.username, "roles": sorted(principal.roles)}
