"""From a raw message to storable records: protocol-level checks, then domain rules.

Pure: the device directory and rules are passed in; no I/O, no await.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from core.errors import Refused
from core.ingest.model import (
    PATH_KINDS,
    Accepted,
    DeviceLookup,
    RawMessage,
    RecordContext,
    RecordRule,
)
from core.senml import SenmlRecord, decode, sniff_format

DEVICE_ID = re.compile(r"[A-Za-z0-9._-]{3,64}")
NAME_PREFIX = "urn:dev:foyer:"
MAX_FUTURE_S = 300.0  # PROTOCOL.md: records more than 5 minutes in the future are refused


def check_device_id(device_id: str) -> None:
    if not DEVICE_ID.fullmatch(device_id):
        raise Refused("bad_device_id", "device_id must be 3-64 characters of A-Z a-z 0-9 - _ .")


def interpret(
    msg: RawMessage,
    lookup: DeviceLookup,
    rules: Mapping[str, RecordRule],
    horizon_s: float,
) -> Accepted:
    """Accept a whole pack or refuse it with a diagnostic (PROTOCOL.md)."""
    check_device_id(msg.device_id)
    kind = lookup(msg.device_id)
    if kind is None:
        raise Refused("unknown_device", f"device {msg.device_id} is not commissioned")
    if kind not in PATH_KINDS.get(msg.family, frozenset()):
        raise Refused("wrong_topic", f"a {kind} does not publish under {msg.family}/")
    senml = decode(msg.payload, msg.fmt or sniff_format(msg.payload), msg.received_at)
    accepted = Accepted()
    for index, record in enumerate(senml):
        _interpret_one(index, record, msg, kind, lookup, rules, horizon_s, accepted)
    return accepted


def _interpret_one(
    index: int,
    record: SenmlRecord,
    msg: RawMessage,
    kind: str,
    lookup: DeviceLookup,
    rules: Mapping[str, RecordRule],
    horizon_s: float,
    accepted: Accepted,
) -> None:
    subject, name = split_name(record.name, msg.device_id, index)
    if subject != msg.device_id:
        if kind != "truck":
            raise Refused(
                "wrong_subject", f"record {index}: bn must name the sender {msg.device_id}"
            )
        if lookup(subject) != "bin":
            # A truck read a chip we do not know: drop that record, keep the rest of the round.
            accepted.dropped["unknown_bin"] = accepted.dropped.get("unknown_bin", 0) + 1
            return
    check_time(record.time, msg.received_at, horizon_s, index)
    ctx = RecordContext(msg.device_id, kind, subject, to_ns(record.time))
    stored = rules[kind](name, record, ctx)
    if stored is None:
        accepted.ignored += 1
    else:
        accepted.records.append(stored)


def split_name(name: str, sender: str, index: int) -> tuple[str, str]:
    """`urn:dev:foyer:<device_id>:<name>` -> (device_id, name); a bare name is the sender's."""
    if not name.startswith(NAME_PREFIX):
        if ":" in name:
            raise Refused("bad_name", f"record {index}: bn must be urn:dev:foyer:<device_id>:")
        return sender, name
    subject, sep, rest = name[len(NAME_PREFIX) :].partition(":")
    if not sep or not rest or not DEVICE_ID.fullmatch(subject):
        raise Refused("bad_name", f"record {index}: bad name {name[:80]!r}")
    return subject, rest


def check_time(time: float, now: float, horizon_s: float, index: int) -> None:
    if time > now + MAX_FUTURE_S:
        raise Refused("future_time", f"record {index}: time is more than 5 min in the future")
    if time < now - horizon_s:
        raise Refused(
            "too_old", f"record {index}: time is older than the {horizon_s:.0f} s horizon"
        )


def to_ns(time: float) -> int:
    """Epoch seconds to integer nanoseconds at microsecond resolution.

    A float near 1.7e9 s carries ~0.24 µs of precision, so rounding to the
    microsecond keeps every timestamp sent with up to 6 decimals exact.
    """
    return round(time * 1_000_000) * 1000
