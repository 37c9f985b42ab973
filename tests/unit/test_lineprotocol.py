"""Our line-protocol serializer against influxdb-client's Point: identical bytes."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from influxdb_client import Point, WritePrecision

from core.records import Record
from core.store.lineprotocol import to_line

_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12)
_value = (
    st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.booleans()
    | st.text(max_size=12)
)


@settings(max_examples=500, deadline=None)
@given(
    measurement=_text.filter(lambda s: not s.startswith("#")),
    device=_text,
    tags=st.dictionaries(_text.filter(lambda k: k != "device_id"), st.text(max_size=8), max_size=3),
    fields=st.dictionaries(_text, _value, min_size=1, max_size=4),
    time_ns=st.integers(min_value=0, max_value=2**62),
)
def test_to_line_escapes_exactly_like_point(
    measurement: str, device: str, tags: dict[str, str], fields: dict[str, object], time_ns: int
) -> None:
    point = Point(measurement).tag("device_id", device).time(time_ns, WritePrecision.NS)
    for key, value in tags.items():
        point = point.tag(key, value)
    for key, value in fields.items():
        point = point.field(key, value)
    expected = point.to_line_protocol()
    record = Record(measurement, device, time_ns, tuple(fields.items()), tuple(tags.items()))  # type: ignore[arg-type]
    if expected == "":  # Point drops a line with no writable field; we never build one
        return
    assert to_line(record) == expected
