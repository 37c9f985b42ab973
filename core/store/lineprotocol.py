"""InfluxDB line protocol, escaped exactly as influxdb-client's `Point` does.

Our own serializer because it is ~10x faster than building `Point`s; the
differential test (tests/unit/test_lineprotocol.py) proves identical output.
"""

from __future__ import annotations

import math

from core.records import FieldValue, Record

_MEASUREMENT = str.maketrans({",": r"\,", " ": r"\ ", "\n": r"\n", "\t": r"\t", "\r": r"\r"})
_KEY = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ ", "\n": r"\n", "\t": r"\t", "\r": r"\r"})
_STRING = str.maketrans({'"': r"\"", "\\": "\\\\"})


def to_line(record: Record) -> str:
    tags = sorted(((k, v) for k, v in (("device_id", record.device_id), *record.tags) if v))
    head = record.measurement.translate(_MEASUREMENT)
    tag_part = "".join(f",{k.translate(_KEY)}={_tag_value(v)}" for k, v in tags)
    fields = ",".join(
        f"{k.translate(_KEY)}={_value(v)}"
        for k, v in sorted(record.fields, key=_first)
        if _writable(v)
    )
    return f"{head}{tag_part} {fields} {record.time_ns}"


def _tag_value(value: str) -> str:
    escaped = value.translate(_KEY)
    # A trailing backslash would escape the separating space; Point pads it the same way.
    return escaped + " " if escaped.endswith("\\") else escaped


def _writable(value: FieldValue) -> bool:
    return not (isinstance(value, float) and not math.isfinite(value))


def _value(value: FieldValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        text = repr(value)
        return text[:-2] if text.endswith(".0") else text
    return '"' + value.translate(_STRING) + '"'


def _first(item: tuple[str, FieldValue]) -> str:
    return item[0]
