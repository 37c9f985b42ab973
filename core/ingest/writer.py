"""The durable batch writer: many messages, one store write, each caller told when stored."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from core.errors import StoreRejected, StoreUnavailable
from core.records import Record
from core.store.port import TelemetryStore

log = logging.getLogger(__name__)

# Back-pressure, decided: a batch of 5,000 lines is ~350 KB of line protocol, one HTTP
# round trip, well under InfluxDB's default body limit. 10 ms of gathering adds little
# to an ack and lets a busy worker fill batches. The queue holds at most 20,000 messages
# (the MQTT receive-maximum bounds it first); beyond that callers are told to retry.
BATCH_MAX_RECORDS = 5000
FLUSH_INTERVAL_S = 0.01
QUEUE_MAX_MESSAGES = 20000


class Backpressure(StoreUnavailable):
    """The write queue is full."""


@dataclass(slots=True)
class _Pending:
    records: Sequence[Record]
    done: asyncio.Future[None]


class BatchWriter:
    def __init__(self, store: TelemetryStore) -> None:
        self._store = store
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue(QUEUE_MAX_MESSAGES)

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    async def submit(self, records: Sequence[Record]) -> None:
        """Return once the records are durably stored (or spooled); raise otherwise."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        try:
            self._queue.put_nowait(_Pending(records, done))
        except asyncio.QueueFull as err:
            raise Backpressure("write queue full") from err
        await done

    async def run(self) -> None:
        """The single flusher task; owned by the service."""
        while True:
            batch = await self._gather()
            await self._flush(batch)

    async def _gather(self) -> list[_Pending]:
        batch = [await self._queue.get()]
        size = len(batch[0].records)
        deadline = asyncio.get_running_loop().time() + FLUSH_INTERVAL_S
        while size < BATCH_MAX_RECORDS:
            if self._queue.empty():
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    break
                try:
                    item = await asyncio.wait_for(self._queue.get(), remaining)
                except TimeoutError:
                    break
            else:
                item = self._queue.get_nowait()
            batch.append(item)
            size += len(item.records)
        return batch

    async def _flush(self, batch: list[_Pending]) -> None:
        records = [r for item in batch for r in item.records]
        try:
            await self._store.write(records)
        except (StoreUnavailable, StoreRejected) as err:
            log.warning("batch of %d records not stored: %s", len(records), err)
            _settle(batch, err)
        else:
            _settle(batch, None)


def _settle(batch: list[_Pending], error: Exception | None) -> None:
    for item in batch:
        if item.done.done():
            continue  # the caller gave up (cancelled); storage still happened or not
        if error is None:
            item.done.set_result(None)
        else:
            item.done.set_exception(error)
