"""Application keys shared by the route modules of every domain."""

from __future__ import annotations

from aiohttp import web

from core.metrics import Metrics
from core.registry import Registry
from core.registry.people import People

REGISTRY = web.AppKey("registry", Registry)
PEOPLE = web.AppKey("people", People)
METRICS = web.AppKey("metrics", Metrics)
