"""Reading a request's JSON body and query parameters, refusing bad ones as 400 JSON."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from core.http.auth import json_error


async def json_body(request: web.Request) -> dict[str, Any]:
    """The body as a JSON object; an empty body is an empty object."""
    try:
        body = await request.json() if request.can_read_body else {}
    except ValueError as err:
        raise json_error(web.HTTPBadRequest, "body: expected a JSON object") from err
    if not isinstance(body, dict):
        raise json_error(web.HTTPBadRequest, "body: expected a JSON object")
    return body


def int_query(request: web.Request, name: str, default: int) -> int:
    """A non-negative integer query parameter (limits, offsets)."""
    try:
        value = int(request.query.get(name, default))
    except ValueError as err:
        raise json_error(web.HTTPBadRequest, f"{name}: expected an integer") from err
    if value < 0:
        raise json_error(web.HTTPBadRequest, f"{name}: must not be negative")
    return value
