"""`foyer store setup`: the InfluxDB 1.x database and its retention policies.

Database `influx_db`; retention policy `raw` (the default: where /write without `rp`
goes and where queries without one read) and `rollup` (the downsampled series).
Created, or ALTERed to the configured durations; running it again changes nothing.
InfluxDB 2.x and 3.x have buckets instead, which the v1 API cannot create: the
command says so and what to run (deploy/influxdb/, docs/schema.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import aiohttp

from core.errors import StoreUnavailable
from core.settings import Settings
from core.store.influx import InfluxStore

RAW_RP = "raw"
ROLLUP_RP = "rollup"
_UNIT_S = {"w": 604_800, "d": 86_400, "h": 3_600, "m": 60, "s": 1}
_GO_DURATION = re.compile(r"(\d+)(w|d|h|m|s)")
MIN_RETENTION_S = 3_600  # InfluxDB refuses a shorter retention policy


class SetupError(Exception):
    """Setup cannot be done here; the message says why and what to do instead."""


@dataclass(frozen=True)
class Policy:
    name: str
    duration_s: int  # 0: infinite
    default: bool


def retention_seconds(text: str) -> int:
    """InfluxQL duration (`730d`, `52w`, `1h30m`) or Go duration (`17520h0m0s`) in
    seconds; `INF` (and InfluxDB's `0s`) is 0, i.e. kept forever."""
    if text.strip().upper() == "INF":
        return 0
    parts = _GO_DURATION.findall(text.strip())
    if not parts or "".join(n + u for n, u in parts) != text.strip():
        raise ValueError(f"not a duration such as 730d, 52w, 24h or INF: {text!r}")
    seconds = sum(int(n) * _UNIT_S[u] for n, u in parts)
    if 0 < seconds < MIN_RETENTION_S:
        raise ValueError(f"InfluxDB keeps data at least 1h, not {text!r}")
    return seconds


def influxql_duration(seconds: int) -> str:
    """The largest whole unit: 730d, 36h, INF (what an operator would have typed)."""
    if seconds == 0:
        return "INF"
    for unit in ("d", "h", "m"):
        if seconds % _UNIT_S[unit] == 0:
            return f"{seconds // _UNIT_S[unit]}{unit}"
    return f"{seconds}s"


def wanted(settings: Settings) -> list[Policy]:
    return [
        Policy(RAW_RP, retention_seconds(settings.influx_raw_retention), default=True),
        Policy(ROLLUP_RP, retention_seconds(settings.influx_rollup_retention), default=False),
    ]


def statements(db: str, have: dict[str, Policy], want: list[Policy]) -> list[str]:
    """The CREATE / ALTER statements that turn `have` into `want` (none when they match)."""
    out = []
    for p in want:
        current = have.get(p.name)
        clause = f"DURATION {influxql_duration(p.duration_s)}"
        default = " DEFAULT" if p.default else ""
        if current is None:
            out.append(
                f'CREATE RETENTION POLICY "{p.name}" ON "{db}" {clause} REPLICATION 1{default}'
            )
        elif current.duration_s != p.duration_s or (p.default and not current.default):
            out.append(f'ALTER RETENTION POLICY "{p.name}" ON "{db}" {clause}{default}')
    return out


def major_version(header: str | None) -> int | None:
    """`1.6.7~rc0`, `v2.7.1`, `3.0.1` -> 1, 2, 3; None when the server does not say."""
    match = re.match(r"v?(\d+)\.", header or "")
    return int(match.group(1)) if match else None


def not_v1_advice(version: str, db: str) -> str:
    return (
        f"InfluxDB {version}: retention policies cannot be created through the v1 API.\n"
        f"Create the buckets foyer-raw and foyer-rollup and map them (DBRP) to db={db} rp=raw\n"
        f"(default) and db={db} rp=rollup, e.g. with deploy/influxdb/ (the compose init script)\n"
        "or by hand:\n"
        "  influx bucket create --name foyer-raw --retention 730d\n"
        "  influx bucket create --name foyer-rollup --retention 0\n"
        f"  influx v1 dbrp create --db {db} --rp raw --bucket-id <foyer-raw id> --default\n"
        f"  influx v1 dbrp create --db {db} --rp rollup --bucket-id <foyer-rollup id>\n"
        'docs/schema.md, "Retention policies", explains the layout.'
    )


async def server_version(settings: Settings) -> str:
    """The X-Influxdb-Version header of /ping (every major version sends it)."""
    headers = {"Authorization": f"Token {settings.influx_token}"} if settings.influx_token else {}
    timeout = aiohttp.ClientTimeout(total=10.0)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout, headers=headers) as session,
            session.get(settings.influx_url.rstrip("/") + "/ping") as resp,
        ):
            return resp.headers.get("X-Influxdb-Version", "unknown")
    except (aiohttp.ClientError, TimeoutError) as err:
        raise StoreUnavailable(f"influxdb unreachable: {err!r}") from err


async def setup(settings: Settings) -> list[str]:
    """Create or align the database and its policies; returns what changed."""
    version = await server_version(settings)
    if major_version(version) != 1:
        raise SetupError(not_v1_advice(version, settings.influx_db))
    want = wanted(settings)
    store = InfluxStore(settings.influx_url, settings.influx_db, settings.influx_token or None)
    await store.open()
    try:
        return await _apply(store, settings.influx_db, want)
    finally:
        await store.close()


async def _apply(store: InfluxStore, db: str, want: list[Policy]) -> list[str]:
    done = []
    if db not in await _databases(store):
        await _run(store, f'CREATE DATABASE "{db}"')
        done.append(f"created database {db}")
    for statement in statements(db, await policies(store, db), want):
        await _run(store, statement)
        done.append(statement)
    if done and await _has_shards(store, db, "autogen"):
        done.append(AUTOGEN_NOTE.format(db=db))
    return done


AUTOGEN_NOTE = (
    'note: points written before are in "{db}"."autogen" and stay there; Foyer now reads '
    'the default policy "raw". To move them: SELECT * INTO "{db}"."raw".:MEASUREMENT FROM '
    '"{db}"."autogen"./.*/ GROUP BY * (docs/schema.md, "Retention policies")'
)


async def policies(store: InfluxStore, db: str) -> dict[str, Policy]:
    rows = await _rows(store, f'SHOW RETENTION POLICIES ON "{db}"')
    return {
        str(r["name"]): Policy(
            str(r["name"]), retention_seconds(str(r["duration"])), bool(r["default"])
        )
        for r in rows
    }


async def _databases(store: InfluxStore) -> set[str]:
    return {str(r["name"]) for r in await _rows(store, "SHOW DATABASES")}


async def _has_shards(store: InfluxStore, db: str, rp: str) -> bool:
    rows = await _rows(store, "SHOW SHARDS")
    return any(r.get("database") == db and r.get("retention_policy") == rp for r in rows)


async def _rows(store: InfluxStore, q: str) -> list[dict[str, Any]]:
    data = await _run(store, q, method="GET")
    return [
        dict(zip(s["columns"], v, strict=True))
        for result in data.get("results", [])
        for s in result.get("series", [])
        for v in s.get("values") or []
    ]


async def _run(store: InfluxStore, q: str, method: str = "POST") -> dict[str, Any]:
    data = await store.influxql(q, method=method)
    for result in data.get("results", []):
        if "error" in result:
            raise SetupError(f"influxdb refused {q!r}: {result['error']}")
    if "error" in data:
        raise SetupError(f"influxdb refused {q!r}: {data['error']}")
    return data
