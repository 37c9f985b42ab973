"""Which devices may write: an in-memory copy of the registry, refreshed off the loop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

STALE_AFTER_S = 1.0  # an unknown id triggers at most one registry read per second

Loader = Callable[[], dict[str, str]]
SeenSink = Callable[[Mapping[str, datetime]], None]


class DeviceDirectory:
    def __init__(self, loader: Loader, mark_seen: SeenSink | None = None) -> None:
        self._loader = loader
        self._mark_seen = mark_seen
        self._kinds: dict[str, str] = {}
        self._loaded_at = 0.0
        self._lock = asyncio.Lock()
        self._seen: dict[str, float] = {}

    def lookup(self, device_id: str) -> str | None:
        return self._kinds.get(device_id)

    def __len__(self) -> int:
        return len(self._kinds)

    async def refresh(self) -> None:
        async with self._lock:
            self._kinds = await asyncio.to_thread(self._loader)
            self._loaded_at = time.monotonic()

    async def refresh_if_stale(self) -> bool:
        if time.monotonic() - self._loaded_at < STALE_AFTER_S:
            return False
        await self.refresh()
        return True

    def seen(self, device_id: str, at: float) -> None:
        """A valid message arrived from the device (receive time, epoch seconds)."""
        if at > self._seen.get(device_id, 0.0):
            self._seen[device_id] = at

    async def flush_seen(self) -> None:
        """Write last contacts to the registry (a scheduled job): first contact turns
        `pending` into `active`, and the times let the registry tell `silent` devices."""
        if not self._seen or self._mark_seen is None:
            return
        batch, self._seen = self._seen, {}
        times = {dev: datetime.fromtimestamp(at, UTC) for dev, at in batch.items()}
        await asyncio.to_thread(self._mark_seen, times)
