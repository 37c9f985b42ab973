"""SenML (RFC 8428) decoding to resolved records: pure, no I/O.

Every failure raises `Refused` with a diagnostic; nothing else escapes for any input
(property-tested in tests/unit/test_senml.py).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from enum import Enum
from typing import Any

import cbor2

from core.errors import Refused

# RFC 8428 §6: CBOR representation uses integer labels for the keys.
_CBOR_LABELS: dict[int, str] = {
    -1: "bver", -2: "bn", -3: "bt", -4: "bu", -5: "bv", -6: "bs", -16: "bs",
    0: "n", 1: "u", 2: "v", 3: "vs", 4: "vb", 5: "s", 6: "t", 7: "ut", 8: "vd",
}  # fmt: skip
_KNOWN_KEYS = frozenset(_CBOR_LABELS.values())
_RECORD_KEYS = frozenset({"n", "v", "vs", "vb", "vd", "s", "t", "u"})
SENML_VERSION = 10  # RFC 8428 §4.4
RELATIVE_TIME_LIMIT = 2**28  # RFC 8428 §4.5.3: smaller times are relative to "now"
MAX_PACK_BYTES = 64 * 1024  # a meter's day of 15-min readings is ~4 KiB; refuse floods
MAX_RECORDS = 2000


class Format(Enum):
    JSON = "application/senml+json"
    CBOR = "application/senml+cbor"


COAP_FORMATS = {110: Format.JSON, 112: Format.CBOR}  # RFC 8428 §12.3


@dataclass(frozen=True, slots=True)
class SenmlRecord:
    """A resolved record (RFC 8428 §4.6): base values applied, time absolute."""

    name: str
    time: float
    unit: str | None
    value: float | None = None
    string: str | None = None
    boolean: bool | None = None
    data: str | None = None


def sniff_format(payload: bytes) -> Format:
    """PROTOCOL.md: `[` (after optional JSON whitespace) means JSON, else CBOR."""
    return Format.JSON if payload.lstrip(b" \t\r\n")[:1] == b"[" else Format.CBOR


def decode(payload: bytes, fmt: Format, now: float) -> list[SenmlRecord]:
    """Decode and resolve one pack; `now` (epoch seconds) stamps relative times."""
    if len(payload) > MAX_PACK_BYTES:
        raise Refused("too_large", f"pack larger than {MAX_PACK_BYTES} bytes")
    raw = _parse(payload, fmt)
    if not isinstance(raw, list) or not raw:
        raise Refused("bad_payload", "a SenML pack must be a non-empty array of records")
    if len(raw) > MAX_RECORDS:
        raise Refused("too_large", f"pack has more than {MAX_RECORDS} records")
    return _resolve([_normalise(item, i, fmt) for i, item in enumerate(raw)], now)


def _parse(payload: bytes, fmt: Format) -> Any:
    try:
        if fmt is Format.JSON:
            return json.loads(payload)
        return cbor2.loads(payload)
    except (ValueError, cbor2.CBORDecodeError, RecursionError, OverflowError) as err:
        raise Refused("bad_payload", f"not valid {fmt.value}: {_short(err)}") from err
    except Exception as err:
        raise Refused("bad_payload", f"not valid {fmt.value}: {_short(err)}") from err


def _short(err: BaseException) -> str:
    return str(err).splitlines()[0][:120] if str(err) else type(err).__name__


def _normalise(item: Any, index: int, fmt: Format) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise Refused("bad_record", f"record {index}: not a map")
    out: dict[str, Any] = {}
    for key, value in item.items():
        label = _CBOR_LABELS.get(key) if fmt is Format.CBOR and isinstance(key, int) else key
        if not isinstance(label, str):
            raise Refused("bad_record", f"record {index}: unknown key {key!r}")
        if label.endswith("_"):  # RFC 8428 §4.4: must-understand field we do not know
            raise Refused("bad_record", f"record {index}: unsupported must-understand {label!r}")
        if label in _KNOWN_KEYS:
            out[label] = value
    return out


def _resolve(items: list[dict[str, Any]], now: float) -> list[SenmlRecord]:
    base: dict[str, Any] = {"bn": "", "bt": 0.0, "bu": None, "bv": 0.0}
    records = []
    for index, item in enumerate(items):
        _update_base(base, item, index)
        if not (item.keys() & _RECORD_KEYS):
            continue  # a record carrying only base fields sets context, measures nothing
        records.append(_resolve_one(base, item, index, now))
    if not records:
        raise Refused("bad_payload", "the pack has no record with a name or value")
    return records


def _update_base(base: dict[str, Any], item: dict[str, Any], index: int) -> None:
    if "bver" in item and (not _is_int(item["bver"]) or item["bver"] > SENML_VERSION):
        raise Refused("bad_record", f"record {index}: unsupported SenML version {item['bver']!r}")
    for key, kind in (("bn", str), ("bu", str)):
        if key in item:
            if not isinstance(item[key], kind):
                raise Refused("bad_record", f"record {index}: {key} must be a string")
            base[key] = item[key]
    for key in ("bt", "bv"):
        if key in item:
            base[key] = _number(item[key], index, key)


def _resolve_one(base: dict[str, Any], item: dict[str, Any], index: int, now: float) -> SenmlRecord:
    name = base["bn"] + _string(item.get("n", ""), index, "n")
    if not name:
        raise Refused("bad_record", f"record {index}: no name")
    time = base["bt"] + _number(item.get("t", 0), index, "t")
    if time < RELATIVE_TIME_LIMIT:
        time = now + time
    unit = _string(item["u"], index, "u") if "u" in item else base["bu"]
    record = SenmlRecord(name=name, time=time, unit=unit)
    # RFC 8428 wants one value per record; PROTOCOL.md's `deposit` carries the badge
    # in vs and the volume in v, so every value field present is kept.
    for key in ("v", "vs", "vb", "vd"):
        if key in item:
            record = _with_value(record, base, item, key, index)
    return record


def _with_value(
    record: SenmlRecord, base: dict[str, Any], item: dict[str, Any], key: str, index: int
) -> SenmlRecord:
    raw = item[key]
    if key == "v":
        value = base["bv"] + _number(raw, index, "v")
        return _replace(record, value=value)
    if key == "vb":
        if not isinstance(raw, bool):
            raise Refused("bad_record", f"record {index}: vb must be a boolean")
        return _replace(record, boolean=raw)
    if key == "vd":
        return _replace(
            record, data=raw.hex() if isinstance(raw, bytes) else _string(raw, index, key)
        )
    return _replace(record, string=_string(raw, index, key))


def _replace(record: SenmlRecord, **changes: Any) -> SenmlRecord:
    return SenmlRecord(**{**_asdict(record), **changes})


def _asdict(record: SenmlRecord) -> dict[str, Any]:
    return {f: getattr(record, f) for f in SenmlRecord.__slots__}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: Any, index: int, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Refused("bad_record", f"record {index}: {key} must be a number")
    number = float(value) if abs(value) < 1e300 else math.inf
    if not math.isfinite(number):
        raise Refused("bad_record", f"record {index}: {key} must be finite")
    return number


def _string(value: Any, index: int, key: str) -> str:
    if not isinstance(value, str):
        raise Refused("bad_record", f"record {index}: {key} must be a string")
    return value
