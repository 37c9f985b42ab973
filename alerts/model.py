"""What the care detectors say (pure; no I/O): a Finding opens an alert, a Recovery ends it.

Shared contract with the alert lifecycle (issue 4): the lifecycle de-duplicates on
``dedupe_key`` (one unresolved alert per key) and auto-resolves on a Recovery with the
same key. ``audience`` routes the alert: ``family`` (inactivity, use_while_away),
``household`` (leak, continuous_flow, meter_alarm leak/backflow) or ``technician``
(device_silent, meter_alarm tamper/battery_low) -- device silence never reaches a family.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

KINDS = ("inactivity", "leak", "continuous_flow", "device_silent", "meter_alarm", "use_while_away")
AUDIENCES = ("family", "household", "technician")
LAST_USE_KEY = "last_use"  # in an inactivity explanation: local ISO time of the last use


@dataclass(frozen=True)
class Finding:
    kind: str  # one of KINDS
    audience: str  # one of AUDIENCES
    household_id: str | None
    device_id: str | None
    at: datetime  # when the condition was established (UTC)
    score: float | None  # e.g. improbability of the gap, 0..1
    dedupe_key: str  # e.g. f"inactivity:{household_id}": one unresolved alert per key
    explanation: dict[str, str]  # {"fr": ..., "en": ...}


@dataclass(frozen=True)
class Recovery:
    """The condition ended (water use resumed, device back, flow stopped): auto-resolve."""

    dedupe_key: str
    at: datetime
    reason: str  # water_resumed | device_back | flow_stopped
