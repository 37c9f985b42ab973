"""The telemetry store port: every backend passes tests/integration/test_store_contract.py."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from core.records import Record


class TelemetryStore(Protocol):
    async def write(self, records: Sequence[Record]) -> None:
        """Store durably, idempotently on Record.key(); raise StoreUnavailable or StoreRejected."""

    async def query(
        self, measurement: str, device_id: str, start_ns: int, end_ns: int
    ) -> list[Record]:
        """Records of one device in [start_ns, end_ns), oldest first."""

    async def close(self) -> None: ...
