"""What bins, containers and trucks report (PROTOCOL.md, bin/container/truck rows)."""

from __future__ import annotations

from core.errors import Refused
from core.ingest.common_rules import battery, require_value
from core.ingest.model import RecordContext
from core.records import BIN_EVENT, FieldValue, Record
from core.senml import SenmlRecord

MAX_LIFT_KG = 1000.0  # a 770 L bin full of glass weighs ~400 kg; above is a scale fault
MAX_BADGE_LEN = 64
SENDERS = {"lift": {"bin", "truck"}, "deposit": {"container"}, "fill": {"bin", "container"}}


def bin_rule(name: str, record: SenmlRecord, ctx: RecordContext) -> Record | None:
    if name == "battery":
        return battery(record, ctx)
    if name not in SENDERS:
        return None
    if ctx.sender_kind not in SENDERS[name]:
        raise Refused("bad_record", f"a {ctx.sender_kind} does not send {name}")
    fields = {"lift": _lift, "deposit": _deposit, "fill": _fill}[name](record)
    fields = (("source", ctx.sender), *fields)  # which device (bin itself or truck) saw it
    return Record(BIN_EVENT, ctx.subject, ctx.time_ns, fields, (("kind", name),))


def _lift(record: SenmlRecord) -> tuple[tuple[str, FieldValue], ...]:
    if record.value is None:
        return ()
    if record.unit != "kg":
        raise Refused("bad_unit", f"lift weight unit must be kg, not {record.unit!r}")
    if not 0 <= record.value <= MAX_LIFT_KG:
        raise Refused("bad_value", f"lift weight must be within 0..{MAX_LIFT_KG:.0f} kg")
    return (("weight_kg", record.value),)


def _deposit(record: SenmlRecord) -> tuple[tuple[str, FieldValue], ...]:
    if not record.string or len(record.string) > MAX_BADGE_LEN:
        raise Refused("bad_value", "deposit needs the badge id as vs")
    fields: tuple[tuple[str, FieldValue], ...] = (("badge", record.string),)
    if record.value is not None:
        if record.unit not in ("l", "L") or record.value < 0:
            raise Refused("bad_unit", "deposit volume must be a non-negative value in l")
        fields += (("volume_l", record.value),)
    return fields


def _fill(record: SenmlRecord) -> tuple[tuple[str, FieldValue], ...]:
    value = require_value(record, "fill")
    if record.unit != "%":
        raise Refused("bad_unit", f"fill unit must be %, not {record.unit!r}")
    if not 0 <= value <= 100:
        raise Refused("bad_value", "fill must be within 0..100 %")
    return (("fill_pct", value),)
