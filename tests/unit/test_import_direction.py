"""DESIGN.md's import direction, checked on the source: pure domain modules do no I/O.

Domains (meters, bins, alerts, billing) may import core's models, ports and errors;
their pure modules import no I/O library and no adapter; no domain imports the
composition root. Thin edges (service, http, cli, scoring, sms, enrolment) may use
the registry and the HTTP helpers, as DESIGN.md's "then a thin service layer over
ports, then their HTTP routes and jobs" says.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOMAINS = ("meters", "bins", "alerts", "billing")
EDGES = {"service", "http", "cli", "scoring", "sms", "enrolment", "book"}
EDGES |= {"registry_io", "computation"}  # billing's service, split by role
IO = (
    "aiohttp",
    "sqlalchemy",
    "paho",
    "aiocoap",
    "twilio",
    "apscheduler",
    "requests",
    "core.http",
    "core.ingest.broker_accounts",
    "core.ingest.coap",
    "core.ingest.directory",
    "core.ingest.mqtt",
    "core.ingest.oscore",
    "core.ingest.pipeline",
    "core.ingest.writer",
    "core.registry",  # its errors and records are core's, the rest is the adapter
    "core.store.embedded",
    "core.store.influx",
    "core.store.spool",
)
ROOTS = ("core.service", "core.cli", "core.demo")


def _imports(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return out


def _modules() -> list[Path]:
    return sorted(p for d in DOMAINS for p in (ROOT / d).glob("*.py"))


@pytest.mark.parametrize("path", _modules(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_domain_modules_respect_the_import_direction(path: Path) -> None:
    imports = _imports(path)
    roots = sorted(m for m in imports if m.startswith(ROOTS))
    assert not roots, f"{path.name} imports the composition root: {roots}"
    if path.stem in EDGES:
        return
    io = sorted(m for m in imports if m.startswith(IO))
    assert not io, f"{path.parent.name}/{path.name} is pure but imports {io}"
