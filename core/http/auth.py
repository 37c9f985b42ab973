"""Who may call what: every route declares its roles; one middleware enforces them.

A handler without a declaration is refused to everyone but admins, so a route
added without thought fails closed. ``admin`` may call everything.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Final, TypeVar

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
H = TypeVar("H", bound=Handler)

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


ACTOR_KEY: Final = "foyer_actor"  # request key the middleware sets


def actor_of(request: web.Request) -> str:
    """The authenticated username (for the audit log); set by the auth middleware."""
    actor = request.get(ACTOR_KEY)
    if not isinstance(actor, str):
        raise web.HTTPUnauthorized(text="login required")
    return actor
