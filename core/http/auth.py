"""Who may call what: every route declares its roles; one middleware enforces them.

A handler without a declaration is refused to everyone but admins, so a route
added without thought fails closed. ``admin`` may call everything.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar

from aiohttp import web

from core.registry.people import People, Principal

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
H = TypeVar("H", bound=Handler)

log = logging.getLogger(__name__)

PUBLIC: Final = "public"  # no login (health, login page, webhooks that verify themselves)
ROLES_ATTR: Final = "__foyer_roles__"


def requires(*roles: str) -> Callable[[H], H]:
    """Declare the roles that may call a handler (admin always may)."""

    def mark(handler: H) -> H:
        setattr(handler, ROLES_ATTR, frozenset(roles))
        return handler

    return mark


def public(handler: H) -> H:
    """Declare a handler open to anyone."""
    setattr(handler, ROLES_ATTR, frozenset({PUBLIC}))
    return handler


def roles_of(handler: object) -> frozenset[str]:
    """The roles a handler declared; empty means admins only."""
    roles: object = getattr(handler, ROLES_ATTR, frozenset())
    return roles if isinstance(roles, frozenset) else frozenset()


ACTOR_KEY: Final = web.RequestKey("foyer_actor", str)  # set by the middleware


def actor_of(request: web.Request) -> str:
    """The authenticated username (for the audit log); set by the auth middleware."""
    if ACTOR_KEY not in request:
        raise web.HTTPUnauthorized(text="login required")
    return request[ACTOR_KEY]


PRINCIPAL_KEY: Final = web.RequestKey("foyer_principal", Principal)
SESSION_COOKIE: Final = "foyer_session"
# Repeated failures for one username: lock it for a while (per process; good enough
# against online guessing of scrypt-hashed passwords, reported in the log).
MAX_FAILURES: Final = 5
LOCKOUT_S: Final = 15 * 60


def json_error(status: type[web.HTTPException], text: str) -> web.HTTPException:
    return status(text=json.dumps({"error": text}), content_type="application/json")


def _credential(request: web.Request) -> tuple[str, str] | None:
    """('token', value) from a Bearer header, or ('session', value) from the cookie."""
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return "token", header.removeprefix("Bearer ").strip()
    cookie = request.cookies.get(SESSION_COOKIE)
    return ("session", cookie) if cookie else None


def auth_middleware(people: People, refused: Callable[[str], None]) -> Any:
    """Resolve the caller once per request and enforce the route's declared roles."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        route_handler = request.match_info.route.handler
        allowed = roles_of(route_handler)
        if PUBLIC in allowed or request.match_info.http_exception is not None:
            return await handler(request)
        principal = await _resolve(people, request)
        if principal is None:
            refused("unauthenticated")
            raise json_error(web.HTTPUnauthorized, "login required")
        if not principal.may(allowed):
            refused("forbidden")
            log.info("%s refused %s %s (role)", principal.username, request.method, request.path)
            raise json_error(
                web.HTTPForbidden, f"role needed: {', '.join(sorted(allowed)) or 'admin'}"
            )
        request[ACTOR_KEY] = principal.username
        request[PRINCIPAL_KEY] = principal
        return await handler(request)

    return middleware


async def _resolve(people: People, request: web.Request) -> Principal | None:
    credential = _credential(request)
    if credential is None:
        return None
    kind, value = credential
    lookup = people.token_principal if kind == "token" else people.session_principal
    return await asyncio.to_thread(lookup, value)


class LoginGuard:
    """Counts failed logins per username; locks the username after MAX_FAILURES."""

    def __init__(self) -> None:
        self._failures: dict[str, list[float]] = {}

    def locked(self, username: str) -> bool:
        recent = [t for t in self._failures.get(username, []) if time.monotonic() - t < LOCKOUT_S]
        self._failures[username] = recent
        return len(recent) >= MAX_FAILURES

    def failed(self, username: str) -> None:
        self._failures.setdefault(username, []).append(time.monotonic())

    def succeeded(self, username: str) -> None:
        self._failures.pop(username, None)
