"""InfluxDB through the v1-compatible HTTP API (`/write`, `/query`), served by 1.x, 2.x and 3.x."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import aiohttp

from core.errors import StoreRejected, StoreUnavailable
from core.records import BIN_EVENT, Record
from core.store.lineprotocol import to_line

TAG_KEYS = {BIN_EVENT: ("kind",)}  # besides device_id; docs/schema.md
WRITE_TIMEOUT_S = 10.0  # a 5,000-line batch takes ~50 ms; beyond this the server is in trouble


class InfluxStore:
    def __init__(self, url: str, database: str, token: str | None = None) -> None:
        self._url = url.rstrip("/")
        self._db = database
        self._headers = {"Authorization": f"Token {token}"} if token else {}
        self._session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        timeout = aiohttp.ClientTimeout(total=WRITE_TIMEOUT_S, connect=2.0)
        self._session = aiohttp.ClientSession(timeout=timeout, headers=self._headers)

    async def write(self, records: Sequence[Record], rp: str | None = None) -> None:
        """rp None: the database's default retention policy (`raw` after `foyer store setup`)."""
        if not records:
            return
        body = "\n".join(to_line(r) for r in records).encode()
        params = {"db": self._db, "precision": "ns", **({"rp": rp} if rp else {})}
        status, text = await self._request("POST", "/write", params=params, data=body)
        if status == 400:
            raise StoreRejected(f"influxdb refused the batch: {text[:200]}")
        if status >= 300:
            raise StoreUnavailable(f"influxdb write answered {status}: {text[:200]}")

    async def query(
        self, measurement: str, device_id: str, start_ns: int, end_ns: int
    ) -> list[Record]:
        # measurement is one of ours, device_id is quoted, the times are ints
        where = f'"device_id" = {_quote(device_id)} AND time >= {start_ns} AND time < {end_ns}'
        q = f'SELECT * FROM "{measurement}" WHERE {where} ORDER BY time'  # noqa: S608
        data = await self.influxql(q)
        return [r for series in _series(data) for r in _records(measurement, series)]

    async def query_range(
        self, measurement: str, tags: tuple[tuple[str, str], ...], start_ns: int, end_ns: int
    ) -> list[Record]:
        # tag keys are ours (TAG_KEYS), values quoted, times ints
        where = "".join(f'"{k}" = {_quote(v)} AND ' for k, v in tags)
        where += f"time >= {start_ns} AND time < {end_ns}"
        q = f'SELECT * FROM "{measurement}" WHERE {where} ORDER BY time'  # noqa: S608
        data = await self.influxql(q)
        return [r for series in _series(data) for r in _records(measurement, series)]

    async def query_many(
        self, measurement: str, device_ids: Sequence[str], start_ns: int, end_ns: int
    ) -> list[Record]:
        if not device_ids:
            return []
        # OR-ed equalities, each value quoted; POST: a few hundred ids exceed a URL
        devices = " OR ".join(f'"device_id" = {_quote(d)}' for d in device_ids)
        where = f"({devices}) AND time >= {start_ns} AND time < {end_ns}"
        q = f'SELECT * FROM "{measurement}" WHERE {where} ORDER BY time'  # noqa: S608
        data = await self.influxql(q, method="POST")
        if any(result.get("partial") for result in data.get("results", [])):
            # a server row limit (max-row-limit) cut the answer: never score on half of it
            raise StoreUnavailable(f"influxdb truncated a read of {len(device_ids)} devices")
        return [r for series in _series(data) for r in _records(measurement, series)]

    async def influxql(self, q: str, method: str = "GET") -> dict[str, Any]:
        """GET for reads; POST for writes (CREATE, ALTER) and long queries: q goes in the body."""
        params = {"db": self._db, "epoch": "ns"}
        if method == "POST":
            status, text = await self._request(method, "/query", params=params, data={"q": q})
        else:
            status, text = await self._request(method, "/query", params={**params, "q": q})
        if status >= 300:
            raise StoreUnavailable(f"influxdb query answered {status}: {text[:200]}")
        data: dict[str, Any] = json.loads(text)
        return data

    async def _request(self, method: str, path: str, **kwargs: Any) -> tuple[int, str]:
        if self._session is None:
            raise StoreUnavailable("influxdb store is not open")
        try:
            async with self._session.request(method, self._url + path, **kwargs) as resp:
                return resp.status, await resp.text()
        except (aiohttp.ClientError, TimeoutError) as err:
            raise StoreUnavailable(f"influxdb unreachable: {err!r}") from err

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _series(data: dict[str, Any]) -> list[dict[str, Any]]:
    results = data.get("results", [])
    return [s for result in results for s in result.get("series", [])]


def _records(measurement: str, series: dict[str, Any]) -> list[Record]:
    # Column positions once per series, not a dict per row: the care scoring job reads
    # ~200 points per meter for 100,000 meters every few minutes (issue 6).
    columns: list[str] = series["columns"]
    tag_keys = TAG_KEYS.get(measurement, ())
    skip = {"time", "device_id", *tag_keys}
    t_i, d_i = columns.index("time"), columns.index("device_id")
    tag_at = [(k, columns.index(k)) for k in tag_keys if k in columns]
    field_at = sorted((k, i) for i, k in enumerate(columns) if k not in skip)
    return [
        Record(
            measurement,
            str(row[d_i]),
            int(row[t_i]),
            tuple([(k, row[i]) for k, i in field_at if row[i] is not None]),
            tuple([(k, str(row[i])) for k, i in tag_at if row[i] is not None]) if tag_at else (),
        )
        for row in series["values"]
    ]
