"""A durable local spool in front of a remote store.

While the remote store is down, batches are appended (fsync'd) to a SQLite file and
acknowledged; a replayer writes them back in order when the store returns. While the
spool is not empty, new batches queue behind it so the store sees writes in order.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from core.errors import StoreRejected, StoreUnavailable
from core.records import Record
from core.store.port import Columns, TelemetryStore

log = logging.getLogger(__name__)

RETRY_MIN_S = 0.5  # first retry soon: most outages are a restart
RETRY_MAX_S = 30.0  # ... but do not hammer a store that is down for long

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS batches (id INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS dead (id INTEGER PRIMARY KEY, body TEXT NOT NULL, error TEXT)",
)


class Spool:
    """The file: FIFO of batches; `dead` keeps batches the store refused, never dropped."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    def open(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")  # an ack follows the append
        for statement in _SCHEMA:
            conn.execute(statement)
        self._conn = conn

    def append(self, records: Sequence[Record]) -> None:
        body = json.dumps([r.to_json() for r in records])
        with self._lock:
            self._db().execute("INSERT INTO batches (body) VALUES (?)", (body,))

    def append_dead(self, records: Sequence[Record], error: str) -> None:
        body = json.dumps([r.to_json() for r in records])
        with self._lock:
            self._db().execute("INSERT INTO dead (body, error) VALUES (?, ?)", (body, error[:500]))

    def oldest(self) -> tuple[int, list[Record]] | None:
        with self._lock:
            row = self._db().execute("SELECT id, body FROM batches ORDER BY id LIMIT 1").fetchone()
        if row is None:
            return None
        return int(row[0]), [Record.from_json(r) for r in json.loads(row[1])]

    def remove(self, batch_id: int) -> None:
        with self._lock:
            self._db().execute("DELETE FROM batches WHERE id = ?", (batch_id,))

    def bury(self, batch_id: int, error: str) -> None:
        with self._lock:
            db = self._db()
            db.execute("BEGIN")
            db.execute(
                "INSERT INTO dead SELECT id, body, ? FROM batches WHERE id = ?", (error, batch_id)
            )
            db.execute("DELETE FROM batches WHERE id = ?", (batch_id,))
            db.execute("COMMIT")

    def depth(self) -> tuple[int, int]:
        with self._lock:
            db = self._db()
            pending = db.execute("SELECT count(*) FROM batches").fetchone()[0]
            dead = db.execute("SELECT count(*) FROM dead").fetchone()[0]
        return int(pending), int(dead)

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreUnavailable("spool is not open")
        return self._conn

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


class SpoolingStore:
    """A TelemetryStore that never refuses a write for an outage of the one it wraps."""

    def __init__(self, inner: TelemetryStore, spool: Spool) -> None:
        self._inner = inner
        self._spool = spool
        self._pending = 0
        self._wake = asyncio.Event()
        self._stopped = asyncio.Event()
        self._outage_logged = False
        self.replayed_batches = 0
        self.spooled_batches = 0
        # Told of each batch replayed: the water roll-up's late days (core/rollup_job.py)
        self.on_replayed: Callable[[Sequence[Record]], None] = lambda _records: None

    @property
    def pending(self) -> int:
        return self._pending

    @property
    def inner(self) -> TelemetryStore:
        """The wrapped store, for jobs that read or write past the spool (the rollup)."""
        return self._inner

    async def open(self) -> None:
        await asyncio.to_thread(self._spool.open)
        self._pending = (await asyncio.to_thread(self._spool.depth))[0]
        self._wake.set()

    async def write(self, records: Sequence[Record]) -> None:
        if self._pending == 0:
            try:
                await self._inner.write(records)
                return
            except StoreUnavailable as err:
                self._log_outage(err)
            except StoreRejected as err:
                # Acknowledged data is never dropped: keep what the store refused for an operator.
                log.error("store refused a batch of %d records; kept in the spool's dead table",
                          len(records))  # fmt: skip
                await asyncio.to_thread(self._spool.append_dead, records, str(err))
                return
        await asyncio.to_thread(self._spool.append, records)
        self._pending += 1
        self.spooled_batches += 1
        self._wake.set()

    async def query(
        self, measurement: str, device_id: str, start_ns: int, end_ns: int
    ) -> list[Record]:
        return await self._inner.query(measurement, device_id, start_ns, end_ns)

    async def query_range(
        self, measurement: str, tags: tuple[tuple[str, str], ...], start_ns: int, end_ns: int
    ) -> list[Record]:
        return await self._inner.query_range(measurement, tags, start_ns, end_ns)

    async def query_many(
        self, measurement: str, device_ids: Sequence[str], start_ns: int, end_ns: int
    ) -> list[Record]:
        return await self._inner.query_many(measurement, device_ids, start_ns, end_ns)

    async def query_columns(
        self, measurement: str, device_ids: Sequence[str], field: str, start_ns: int, end_ns: int
    ) -> Mapping[str, Columns]:
        return await self._inner.query_columns(measurement, device_ids, field, start_ns, end_ns)

    async def run_replayer(self) -> None:
        """Owned by the service's task group; ends when `close` is called."""
        delay = RETRY_MIN_S
        while not self._stopped.is_set():
            await self._wait(delay)
            self._wake.clear()
            try:
                while await self._replay_one():
                    delay = RETRY_MIN_S
            except StoreUnavailable as err:
                self._log_outage(err)
                delay = min(delay * 2, RETRY_MAX_S)

    async def _replay_one(self) -> bool:
        batch = await asyncio.to_thread(self._spool.oldest)
        if batch is None:
            self._pending = 0
            if self._outage_logged:
                log.warning("telemetry store is back; spool drained")
                self._outage_logged = False
            return False
        batch_id, records = batch
        try:
            await self._inner.write(records)
        except StoreRejected as err:
            log.error("store refused spooled batch %s; kept in the spool's dead table", batch_id)
            await asyncio.to_thread(self._spool.bury, batch_id, str(err))
        else:
            await asyncio.to_thread(self._spool.remove, batch_id)
            self.replayed_batches += 1
            self.on_replayed(records)
        self._pending = max(self._pending - 1, 0)
        return True

    async def _wait(self, delay: float) -> None:
        waiter = asyncio.ensure_future(self._wake.wait())
        stopper = asyncio.ensure_future(self._stopped.wait())
        try:
            await asyncio.wait({waiter, stopper}, timeout=delay, return_when="FIRST_COMPLETED")
        finally:
            waiter.cancel()
            stopper.cancel()

    def _log_outage(self, err: Exception) -> None:
        if not self._outage_logged:  # a state change is logged once, not per batch
            log.warning("telemetry store unavailable, spooling to disk: %s", err)
            self._outage_logged = True

    async def close(self) -> None:
        self._stopped.set()
        await asyncio.to_thread(self._spool.close)
        await self._inner.close()
