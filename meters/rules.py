"""What a water meter's records mean (PROTOCOL.md, meter rows)."""

from __future__ import annotations

from decimal import ROUND_FLOOR, Decimal

from core.errors import Refused
from core.ingest.common_rules import battery, require_value
from core.ingest.model import RecordContext
from core.records import METER_ALARM, METER_INDEX, Record
from core.senml import SenmlRecord

LITRES_PER_UNIT = {"m3": Decimal(1000), "l": Decimal(1), "L": Decimal(1)}
KNOWN_ALARMS = frozenset({"leak", "backflow", "tamper", "battery_low", "dry"})
MAX_ALARM_LEN = 64


def index_litres(value: float, unit: str | None) -> int:
    """A cumulative index in whole litres, floored as a meter's register shows it.

    The float goes through its shortest repr so 123.456 m3 is exactly 123456 L.
    """
    if unit not in LITRES_PER_UNIT:
        raise Refused("bad_unit", f"volume unit must be m3, l or L, not {unit!r}")
    if value < 0:
        raise Refused("bad_value", "a meter index cannot be negative")
    litres = Decimal(repr(value)) * LITRES_PER_UNIT[unit]
    return int(litres.to_integral_value(rounding=ROUND_FLOOR))


class MeterRules:
    """Interprets meter records; remembers each meter's latest index to flag regressions."""

    def __init__(self) -> None:
        self._latest: dict[str, tuple[int, int]] = {}  # device -> (time_ns, index_l)

    def __call__(self, name: str, record: SenmlRecord, ctx: RecordContext) -> Record | None:
        if name == "volume":
            return self._volume(record, ctx)
        if name == "alarm":
            return _alarm(record, ctx)
        if name == "battery":
            return battery(record, ctx)
        return None

    def _volume(self, record: SenmlRecord, ctx: RecordContext) -> Record:
        index = index_litres(require_value(record, "volume"), record.unit)
        fields: tuple[tuple[str, int | str], ...] = (("index_l", index),)
        if self._went_backwards(ctx.subject, ctx.time_ns, index):
            # Kept, never turned into negative consumption: rollover, swap or tampering.
            fields += (("flag", "backwards"),)
        return Record(METER_INDEX, ctx.subject, ctx.time_ns, fields)

    def _went_backwards(self, device: str, time_ns: int, index: int) -> bool:
        previous = self._latest.get(device)
        if previous is None or time_ns >= previous[0]:
            self._latest[device] = (time_ns, index)
        # Late records are compared with nothing: only a newer lower index is a regression.
        return previous is not None and time_ns > previous[0] and index < previous[1]


def _alarm(record: SenmlRecord, ctx: RecordContext) -> Record:
    if not record.string or len(record.string) > MAX_ALARM_LEN:
        raise Refused("bad_value", f"alarm needs a string vs of 1..{MAX_ALARM_LEN} characters")
    return Record(METER_ALARM, ctx.subject, ctx.time_ns, (("alarm", record.string),))
