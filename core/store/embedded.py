"""The embedded default store: one SQLite file, so Foyer runs with no server at all."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from core.errors import StoreUnavailable
from core.records import FieldValue, Record
from core.store.port import Columns

SQL_VARIABLES = 500  # device ids per statement, well under SQLite's limit (999 before 3.32)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS points (
    measurement TEXT NOT NULL,
    device_id TEXT NOT NULL,
    tags TEXT NOT NULL,
    time_ns INTEGER NOT NULL,
    fields TEXT NOT NULL,
    PRIMARY KEY (measurement, device_id, tags, time_ns)
) WITHOUT ROWID
"""


class EmbeddedStore:
    """Writes run in a worker thread; synchronous=FULL because an ack follows the commit."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    async def open(self) -> None:
        await asyncio.to_thread(self._open)

    def _open(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute(_SCHEMA)
        self._conn = conn

    async def write(self, records: Sequence[Record]) -> None:
        if records:
            await asyncio.to_thread(self._write, records)

    def _write(self, records: Sequence[Record]) -> None:
        rows = [
            (r.measurement, r.device_id, json.dumps(r.tags), r.time_ns, json.dumps(r.fields))
            for r in records
        ]
        with self._lock:
            conn = self._connection()
            try:
                conn.execute("BEGIN")
                # Same identity overwrites, as InfluxDB does: retransmissions are harmless.
                conn.executemany("INSERT OR REPLACE INTO points VALUES (?, ?, ?, ?, ?)", rows)
                conn.execute("COMMIT")
            except sqlite3.Error as err:
                conn.execute("ROLLBACK") if conn.in_transaction else None
                raise StoreUnavailable(f"embedded store: {err}") from err

    async def query(
        self, measurement: str, device_id: str, start_ns: int, end_ns: int
    ) -> list[Record]:
        return await asyncio.to_thread(self._query, measurement, device_id, start_ns, end_ns)

    def _query(self, measurement: str, device_id: str, start_ns: int, end_ns: int) -> list[Record]:
        sql = (
            "SELECT tags, time_ns, fields FROM points WHERE measurement = ? AND device_id = ?"
            " AND time_ns >= ? AND time_ns < ? ORDER BY time_ns"
        )
        with self._lock:
            rows = self._connection().execute(sql, (measurement, device_id, start_ns, end_ns))
            return [_record(measurement, device_id, *row) for row in rows.fetchall()]

    async def query_range(
        self, measurement: str, tags: tuple[tuple[str, str], ...], start_ns: int, end_ns: int
    ) -> list[Record]:
        return await asyncio.to_thread(self._query_range, measurement, tags, start_ns, end_ns)

    def _query_range(
        self, measurement: str, tags: tuple[tuple[str, str], ...], start_ns: int, end_ns: int
    ) -> list[Record]:
        # tags are stored as the JSON of the record's tag tuple, so the same dump matches
        sql = (
            "SELECT device_id, time_ns, fields FROM points WHERE measurement = ? AND tags = ?"
            " AND time_ns >= ? AND time_ns < ? ORDER BY time_ns, device_id"
        )
        args = (measurement, json.dumps(tags), start_ns, end_ns)
        with self._lock:
            rows = self._connection().execute(sql, args).fetchall()
        # A semester's lifts repeat few field sets (a truck's weighings, a bin's own
        # report): each distinct JSON text is decoded once, and its tuple shared
        # (Records are immutable). A billing run reads over a million rows here.
        decoded: dict[str, tuple[tuple[str, FieldValue], ...]] = {}
        out = []
        for device_id, time_ns, text in rows:
            fields = decoded.get(text)
            if fields is None:
                fields = decoded[text] = tuple((k, v) for k, v in json.loads(text))
            out.append(Record(measurement, device_id, time_ns, fields, tags))
        return out

    async def query_many(
        self, measurement: str, device_ids: Sequence[str], start_ns: int, end_ns: int
    ) -> list[Record]:
        return await asyncio.to_thread(self._query_many, measurement, device_ids, start_ns, end_ns)

    def _query_many(
        self, measurement: str, device_ids: Sequence[str], start_ns: int, end_ns: int
    ) -> list[Record]:
        out: list[Record] = []
        ids = list(dict.fromkeys(device_ids))
        for i in range(0, len(ids), SQL_VARIABLES):  # SQLite's bound-variable limit
            out += self._query_devices(measurement, ids[i : i + SQL_VARIABLES], start_ns, end_ns)
        out.sort(key=lambda r: (r.time_ns, r.device_id))
        return out

    def _query_devices(
        self, measurement: str, ids: Sequence[str], start_ns: int, end_ns: int
    ) -> list[Record]:
        marks = ",".join("?" * len(ids))
        sql = (
            "SELECT device_id, tags, time_ns, fields FROM points WHERE measurement = ?"  # noqa: S608
            f" AND device_id IN ({marks}) AND time_ns >= ? AND time_ns < ?"
        )
        with self._lock:
            rows = self._connection().execute(sql, (measurement, *ids, start_ns, end_ns))
            return [_record(measurement, *row) for row in rows.fetchall()]

    async def query_columns(
        self, measurement: str, device_ids: Sequence[str], field: str, start_ns: int, end_ns: int
    ) -> dict[str, Columns]:
        return await asyncio.to_thread(
            self._query_columns, measurement, device_ids, field, start_ns, end_ns
        )

    def _query_columns(
        self, measurement: str, device_ids: Sequence[str], field: str, start_ns: int, end_ns: int
    ) -> dict[str, Columns]:
        points: dict[str, tuple[list[int], list[float]]] = {}
        ids = list(dict.fromkeys(device_ids))
        for i in range(0, len(ids), SQL_VARIABLES):  # SQLite's bound-variable limit
            for device_id, time_ns, text in self._field_rows(
                measurement, ids[i : i + SQL_VARIABLES], start_ns, end_ns
            ):
                value = dict(json.loads(text)).get(field)
                if isinstance(value, int | float) and not isinstance(value, bool):
                    times, values = points.setdefault(device_id, ([], []))
                    times.append(time_ns)
                    values.append(value)
        return {
            d: Columns(np.array(t, dtype=np.int64), np.array(v, dtype=np.float64))
            for d, (t, v) in points.items()
        }

    def _field_rows(
        self, measurement: str, ids: Sequence[str], start_ns: int, end_ns: int
    ) -> list[tuple[str, int, str]]:
        # one series per device and no tags (InfluxDB's GROUP BY device_id), by time
        marks = ",".join("?" * len(ids))
        sql = (
            "SELECT device_id, time_ns, fields FROM points WHERE measurement = ?"  # noqa: S608
            f" AND device_id IN ({marks}) AND time_ns >= ? AND time_ns < ?"
            " ORDER BY device_id, time_ns"
        )
        with self._lock:
            rows = self._connection().execute(sql, (measurement, *ids, start_ns, end_ns))
            return rows.fetchall()

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreUnavailable("embedded store is not open")
        return self._conn

    async def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


def _record(measurement: str, device_id: str, tags: str, time_ns: int, fields: str) -> Record:
    """A stored row back to the Record it was written from (JSON-encoded tags and fields)."""
    return Record(
        measurement,
        device_id,
        time_ns,
        tuple((k, v) for k, v in json.loads(fields)),
        tuple((k, v) for k, v in json.loads(tags)),
    )
