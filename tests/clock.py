"""A settable clock for the registry, so tests get distinct, known times."""

from __future__ import annotations

from datetime import datetime


class Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now
