"""Fault injection decisions, all drawn from a seeded Random (pure apart from silence state)."""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass


class Fault(enum.Enum):
    NONE = "none"
    DUPLICATE = "dup"  # send the same pack twice (QoS 1 / CON retransmission look-alike)
    LATE = "late"  # hold the pack back, so it arrives after newer ones
    GARBAGE = "garbage"  # send undecodable bytes instead


@dataclass(frozen=True)
class FaultConfig:
    dup: float = 0.0
    late: float = 0.0
    garbage: float = 0.0
    silent: float = 0.0  # chance per report that a device falls silent
    silent_s: float = 6 * 3600.0  # mean silence, in simulated seconds
    late_delay_s: tuple[float, float] = (5.0, 60.0)  # hold-back, in real seconds


def choose_fault(rng: random.Random, cfg: FaultConfig) -> Fault:
    r = rng.random()
    for fault, p in (
        (Fault.DUPLICATE, cfg.dup),
        (Fault.LATE, cfg.late),
        (Fault.GARBAGE, cfg.garbage),
    ):
        if r < p:
            return fault
        r -= p
    return Fault.NONE


def late_delay(rng: random.Random, cfg: FaultConfig) -> float:
    return rng.uniform(*cfg.late_delay_s)


def garbage_payload(rng: random.Random, fmt: str) -> bytes:
    """Random bytes, or (for JSON) a truncated pack that looks almost right."""
    if fmt == "json" and rng.random() < 0.5:
        broken = '[{"bn":"urn:dev:foyer:x:","bt":1,"n":"volume","u":"m3","v":12.3'
        return broken[: rng.randrange(2, len(broken))].encode()
    return rng.randbytes(rng.randrange(1, 64))


class Silence:
    """Which devices are currently silent, and until when (simulated time)."""

    def __init__(self, cfg: FaultConfig) -> None:
        self._cfg = cfg
        self._until: dict[str, float] = {}

    def is_silent(self, device_id: str, now: float, rng: random.Random) -> bool:
        if self._until.get(device_id, float("-inf")) > now:
            return True
        if self._cfg.silent > 0 and rng.random() < self._cfg.silent:
            self._until[device_id] = now + rng.uniform(0.5, 1.5) * self._cfg.silent_s
            return True
        return False
