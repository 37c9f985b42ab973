"""InfluxDB through the v1-compatible HTTP API (`/write`, `/query`), served by 1.x, 2.x and 3.x."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import aiohttp
import numpy as np

from core.errors import StoreRejected, StoreUnavailable
from core.records import BIN_EVENT, Record
from core.store.lineprotocol import to_line
from core.store.port import Columns

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

    async def query_columns(
        self, measurement: str, device_ids: Sequence[str], field: str, start_ns: int, end_ns: int
    ) -> dict[str, Columns]:
        if not device_ids:
            return {}
        # Only the one field, one series per device: a few hundred meters' answer is then
        # [time, value] pairs with no device id per row, half the JSON of SELECT * and
        # decoded straight into arrays (issue 6; measured in docs/care.md, "Scale").
        devices = " OR ".join(f'"device_id" = {_quote(d)}' for d in device_ids)
        where = f"({devices}) AND time >= {start_ns} AND time < {end_ns}"
        q = (
            f'SELECT {_ident(field)} FROM "{measurement}" WHERE {where}'  # noqa: S608
            ' GROUP BY "device_id"'
        )
        data = await self.influxql(q, method="POST")
        if any(result.get("partial") for result in data.get("results", [])):
            raise StoreUnavailable(f"influxdb truncated a read of {len(device_ids)} devices")
        out: dict[str, Columns] = {}
        for series in _series(data):
            columns = _columns(series["values"])
            if len(columns.time_ns):
                out[str(series["tags"]["device_id"])] = columns
        return out

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


def _ident(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _columns(rows: list[list[Any]]) -> Columns:
    """[[time, value], ...] of one series, oldest first, as arrays.

    An integer field (an index in litres) converts in one numpy call; a float field
    would round the nanosecond times through float64, so it takes the slower path, which
    also leaves out values that are not numbers (a string field).
    """
    pairs = np.array(rows) if rows else np.empty((0, 2), dtype=np.int64)
    if pairs.dtype == np.int64 and pairs.ndim == 2:
        return Columns(pairs[:, 0].copy(), pairs[:, 1].astype(np.float64))
    kept = [(t, v) for t, v in rows if _number(v)]
    time_ns = np.fromiter((t for t, _ in kept), dtype=np.int64, count=len(kept))
    return Columns(time_ns, np.fromiter((v for _, v in kept), dtype=np.float64, count=len(kept)))


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


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
