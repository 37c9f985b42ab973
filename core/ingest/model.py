"""What transports hand to the pipeline, and what domains plug into it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from core.records import Record
from core.senml import Format, SenmlRecord

KINDS = ("meter", "bin", "container", "truck")
# PROTOCOL.md: the last path/topic segment of each family (meters/<id>/readings ...).
LEAF: Mapping[str, str] = {"meters": "readings", "bins": "events"}
# PROTOCOL.md: which topic/path family each device kind publishes under.
PATH_KINDS: Mapping[str, frozenset[str]] = {
    "meters": frozenset({"meter"}),
    "bins": frozenset({"bin", "container", "truck"}),
}


@dataclass(frozen=True, slots=True)
class RawMessage:
    transport: str  # "mqtt" | "coap"
    family: str  # "meters" | "bins"
    device_id: str
    payload: bytes
    fmt: Format | None  # None: sniff the first byte (MQTT without content-type)
    received_at: float  # epoch seconds, server clock


@dataclass(frozen=True, slots=True)
class RecordContext:
    sender: str
    sender_kind: str
    subject: str  # the device the record is about (a truck reports for bins)
    time_ns: int


class RecordRule(Protocol):
    """A domain's interpretation of one resolved SenML record.

    Returns the record to store, or None for a name the domain does not know
    (ignored and counted, PROTOCOL.md forward compatibility); raises `Refused` for a
    known name with a bad value, type or unit.
    """

    def __call__(self, name: str, record: SenmlRecord, ctx: RecordContext) -> Record | None: ...


@dataclass(slots=True)
class Accepted:
    records: list[Record] = field(default_factory=list)
    ignored: int = 0  # unknown record names
    dropped: dict[str, int] = field(default_factory=dict)  # per-record refusals, by reason


DeviceLookup = Callable[[str], str | None]  # device_id -> kind, None when not usable
