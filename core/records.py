"""The telemetry model every store speaks: one `Record` is one time-series point.

Identity (what makes a retransmission overwrite instead of duplicate) is
(measurement, device_id, tags, time_ns), as PROTOCOL.md's "idempotent storage on
(device, record name, time)" asks; the record name is the measurement (plus the
`kind` tag for bin events).
"""

from __future__ import annotations

from dataclasses import dataclass

FieldValue = int | float | str | bool

# Public schema (docs/schema.md); dashboards are built on these names.
METER_INDEX = "meter_index"
METER_ALARM = "meter_alarm"
BIN_EVENT = "bin_event"
DEVICE_BATTERY = "device_battery"
DEVICE_STATUS = "device_status"


@dataclass(frozen=True, slots=True)
class Record:
    measurement: str
    device_id: str
    time_ns: int
    fields: tuple[tuple[str, FieldValue], ...]
    tags: tuple[tuple[str, str], ...] = ()

    def key(self) -> tuple[str, str, tuple[tuple[str, str], ...], int]:
        return (self.measurement, self.device_id, self.tags, self.time_ns)

    def field(self, name: str) -> FieldValue | None:
        for key, value in self.fields:
            if key == name:
                return value
        return None

    def to_json(self) -> dict[str, object]:
        return {
            "m": self.measurement,
            "d": self.device_id,
            "t": self.time_ns,
            "f": [list(f) for f in self.fields],
            "g": [list(t) for t in self.tags],
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Record:
        fields = data["f"]
        tags = data["g"]
        assert isinstance(fields, list) and isinstance(tags, list)
        return cls(
            measurement=str(data["m"]),
            device_id=str(data["d"]),
            time_ns=int(str(data["t"])),
            fields=tuple((str(k), v) for k, v in fields),
            tags=tuple((str(k), str(v)) for k, v in tags),
        )
