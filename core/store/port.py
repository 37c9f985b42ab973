"""The telemetry store port: every backend passes tests/integration/test_store_contract.py."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple, Protocol

import numpy as np

from core.records import Record


class Columns(NamedTuple):
    """One device's values of one numeric field, oldest first (a columnar read)."""

    time_ns: np.ndarray  # int64, oldest first
    values: np.ndarray  # float64, same length


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

    async def query_columns(
        self, measurement: str, device_ids: Sequence[str], field: str, start_ns: int, end_ns: int
    ) -> Mapping[str, Columns]:
        """One numeric field of any of these devices in [start_ns, end_ns), as arrays.

        Keyed by device; a device with no such point is absent. Points without the
        field, or whose value is not a number, are left out. The care scoring job reads
        100,000 meters every five minutes (issue 6): arrays, not a Record per point.
        """

    async def close(self) -> None: ...
