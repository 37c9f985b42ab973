"""Accelerated simulation clock that replays the past quickly, then runs in real time."""

from __future__ import annotations

import time
from collections.abc import Callable


class SimClock:
    """Starts `backfill_s` in the past and runs `speed` times faster than real time.

    Clamped to real now, because the backend refuses records more than 5 minutes in
    the future; once caught up it simply follows real time.
    """

    def __init__(
        self, speed: float, backfill_s: float, now: Callable[[], float] = time.time
    ) -> None:
        if speed <= 0:
            raise ValueError("speed must be > 0")
        self._now = now
        self._speed = speed
        self._real0 = now()
        self._sim0 = self._real0 - max(0.0, backfill_s)

    @property
    def start(self) -> float:
        return self._sim0

    def now(self) -> float:
        real = self._now()
        return min(real, self._sim0 + (real - self._real0) * self._speed)

    def lag(self) -> float:
        """Seconds the simulation is still behind real time."""
        return max(0.0, self._now() - self.now())
