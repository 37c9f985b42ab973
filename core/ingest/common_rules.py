"""Record names every device kind may send (PROTOCOL.md: `battery`)."""

from __future__ import annotations

from core.errors import Refused
from core.ingest.model import RecordContext
from core.records import DEVICE_BATTERY, Record
from core.senml import SenmlRecord


def battery(record: SenmlRecord, ctx: RecordContext) -> Record:
    value = require_value(record, "battery")
    if record.unit == "%EL":
        if not 0 <= value <= 100:
            raise Refused("bad_value", "battery %EL must be within 0..100")
        return Record(DEVICE_BATTERY, ctx.subject, ctx.time_ns, (("level_pct", value),))
    if record.unit == "V":
        if not 0 <= value <= 50:
            raise Refused("bad_value", "battery voltage must be within 0..50 V")
        return Record(DEVICE_BATTERY, ctx.subject, ctx.time_ns, (("voltage_v", value),))
    raise Refused("bad_unit", f"battery unit must be %EL or V, not {record.unit!r}")


def require_value(record: SenmlRecord, name: str) -> float:
    if record.value is None:
        raise Refused("bad_value", f"{name} needs a numeric value v")
    return record.value
