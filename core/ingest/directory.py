"""Which devices may write: an in-memory copy of the registry, refreshed off the loop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable

STALE_AFTER_S = 1.0  # an unknown id triggers at most one registry read per second

Loader = Callable[[], dict[str, str]]
SeenSink = Callable[[Iterable[str]], None]


class DeviceDirectory:
    def __init__(self, loader: Loader, mark_seen: SeenSink | None = None) -> None:
        self._loader = loader
        self._mark_seen = mark_seen
        self._kinds: dict[str, str] = {}
        self._loaded_at = 0.0
        self._lock = asyncio.Lock()
        self._seen: set[str] = set()
        self._reported: set[str] = set()

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

    def seen(self, device_id: str) -> None:
        if device_id not in self._reported:
            self._seen.add(device_id)

    async def flush_seen(self) -> None:
        """Turn first contacts into `active` in the registry (a scheduled job)."""
        if not self._seen or self._mark_seen is None:
            return
        batch, self._seen = self._seen, set()
        await asyncio.to_thread(self._mark_seen, batch)
        self._reported |= batch
