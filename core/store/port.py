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

    async def query_range(
        self, measurement: str, tags: tuple[tuple[str, str], ...], start_ns: int, end_ns: int
    ) -> list[Record]:
        """Records of every device with exactly these tags in [start_ns, end_ns), by time.

        One read for a whole period (a billing run fetches a semester's lifts once
        and groups them, rather than asking device by device).
        """

    async def query_many(
        self, measurement: str, device_ids: Sequence[str], start_ns: int, end_ns: int
    ) -> list[Record]:
        """Records of any of these devices in [start_ns, end_ns), by time.

        One read for many devices (the care scoring job reads its households' meters a
        few hundred at a time, rather than one query per meter every five minutes).
        """

    async def close(self) -> None: ...
