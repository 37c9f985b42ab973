"""One pipeline for every transport: interpret, store, count, then let the transport ack."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from core.errors import Refused
from core.ingest.directory import DeviceDirectory
from core.ingest.interpret import interpret
from core.ingest.model import Accepted, RawMessage, RecordRule
from core.ingest.writer import BatchWriter
from core.logs import bound_device
from core.metrics import Metrics
from core.records import Record

log = logging.getLogger(__name__)

DEFAULT_HORIZON_S = 35 * 86400.0  # a meter may buffer a month offline; older is refused


@dataclass(frozen=True, slots=True)
class Outcome:
    stored: int
    ignored: int
    dropped: int


class Pipeline:
    def __init__(
        self,
        directory: DeviceDirectory,
        rules: Mapping[str, RecordRule],
        writer: BatchWriter,
        metrics: Metrics,
        horizon_s: float = DEFAULT_HORIZON_S,
        after_store: Callable[[Sequence[Record]], None] | None = None,
    ) -> None:
        self._directory = directory
        self._after_store = after_store  # e.g. the roll-up's late days (core/rollup_job.py)
        self._rules = rules
        self._writer = writer
        self._metrics = metrics
        self._horizon_s = horizon_s

    async def handle(self, msg: RawMessage, *, count: bool = True) -> Outcome:
        """Store a message's records; raise Refused (counted) or StoreUnavailable.
        `count` False: a retry of a message already counted as received."""
        with bound_device(msg.device_id):  # each log line of this message names its device
            if count:
                self._metrics.received.labels(msg.transport).inc()
            accepted = await self._interpret(msg)
            self._metrics.queue_depth.set(self._writer.depth)
            await self._writer.submit(accepted.records)
            self._account(msg, accepted)
            self.note_stored(accepted.records)
        return Outcome(len(accepted.records), accepted.ignored, sum(accepted.dropped.values()))

    def note_stored(self, records: Sequence[Record]) -> None:
        """Records stored past the pipeline too (an adopted spool, core/ingest/adoption.py)."""
        if self._after_store is not None:
            self._after_store(records)

    async def _interpret(self, msg: RawMessage) -> Accepted:
        try:
            try:
                return interpret(msg, self._directory.lookup, self._rules, self._horizon_s)
            except Refused as err:
                # A device commissioned a moment ago: look again once before refusing.
                if err.reason != "unknown_device" or not await self._directory.refresh_if_stale():
                    raise
                return interpret(msg, self._directory.lookup, self._rules, self._horizon_s)
        except Refused as err:
            self._metrics.refused.labels(msg.transport, err.reason).inc()
            log.info("refused %s message from %s: %s", msg.transport, msg.device_id, err.diagnostic)
            raise

    def _account(self, msg: RawMessage, accepted: Accepted) -> None:
        for record in accepted.records:
            self._metrics.stored.labels(record.measurement).inc()
        self._metrics.ignored.inc(accepted.ignored)
        for reason, count in accepted.dropped.items():
            self._metrics.dropped.labels(reason).inc(count)
        self._metrics.ack_latency.labels(msg.transport).observe(
            max(time.time() - msg.received_at, 0.0)
        )
        self._directory.seen(msg.device_id, msg.received_at)
