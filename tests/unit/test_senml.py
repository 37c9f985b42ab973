"""SenML decoding (RFC 8428) and protocol interpretation: pure, no servers."""

from __future__ import annotations

import json

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bins.rules import bin_rule
from core.errors import Refused
from core.ingest.interpret import interpret, to_ns
from core.ingest.model import RawMessage
from core.records import BIN_EVENT, METER_INDEX
from core.senml import Format, decode, sniff_format
from meters.rules import MeterRules, index_litres

NOW = 1_760_000_000.0
DEVICES = {"m-1": "meter", "m-2": "meter", "b-1": "bin", "c-1": "container", "t-1": "truck"}


def rules() -> dict[str, object]:
    return {"meter": MeterRules(), "bin": bin_rule, "container": bin_rule, "truck": bin_rule}


def msg(device: str, pack: object, family: str = "meters", fmt: Format | None = None) -> RawMessage:
    payload = cbor2.dumps(pack) if fmt is Format.CBOR else json.dumps(pack).encode()
    return RawMessage("test", family, device, payload, fmt, NOW)


def run(m: RawMessage):  # type: ignore[no-untyped-def]
    return interpret(m, DEVICES.get, rules(), 35 * 86400)  # type: ignore[arg-type]


def test_base_values_resolve_per_rfc8428() -> None:
    pack = [
        {"bn": "urn:dev:foyer:m-1:", "bt": NOW - 60, "bu": "m3", "n": "volume", "v": 1.5},
        {"n": "volume", "t": 30, "v": 1.501},
    ]
    records = decode(json.dumps(pack).encode(), Format.JSON, NOW)
    assert [(r.name, r.time, r.unit, r.value) for r in records] == [
        ("urn:dev:foyer:m-1:volume", NOW - 60, "m3", 1.5),
        ("urn:dev:foyer:m-1:volume", NOW - 30, "m3", 1.501),
    ]


def test_relative_time_is_relative_to_receipt() -> None:
    records = decode(b'[{"n":"volume","u":"m3","v":1,"t":-10}]', Format.JSON, NOW)
    assert records[0].time == NOW - 10


def test_cbor_integer_labels_decode_like_json() -> None:
    pack = [{-2: "urn:dev:foyer:m-1:", -3: NOW, 0: "volume", 1: "m3", 2: 12.345}]
    accepted = run(msg("m-1", pack, fmt=Format.CBOR))
    assert accepted.records[0].fields == (("index_l", 12345),)
    assert accepted.records[0].time_ns == to_ns(NOW)


def test_meter_index_is_whole_litres_and_exact_time() -> None:
    accepted = run(msg("m-1", [{"n": "volume", "u": "m3", "v": 123.456, "t": NOW - 0.123}]))
    (record,) = accepted.records
    assert record.measurement == METER_INDEX
    assert record.fields == (("index_l", 123456),)
    assert record.time_ns == 1_759_999_999_877_000_000


@pytest.mark.parametrize(
    ("value", "unit", "litres"), [(1.0, "m3", 1000), (12.9, "l", 12), (7, "L", 7)]
)
def test_index_units(value: float, unit: str, litres: int) -> None:
    assert index_litres(value, unit) == litres


def test_backwards_index_is_kept_and_flagged() -> None:
    pack = [
        {"n": "volume", "u": "m3", "v": 10.0, "t": NOW - 20},
        {"n": "volume", "u": "m3", "v": 9.0, "t": NOW - 10},
    ]
    accepted = run(msg("m-1", pack))
    assert [r.field("flag") for r in accepted.records] == [None, "backwards"]
    assert accepted.records[1].field("index_l") == 9000


def test_unknown_names_are_ignored_and_counted() -> None:
    accepted = run(msg("m-1", [{"n": "volume", "u": "m3", "v": 1}, {"n": "temperature", "v": 3}]))
    assert len(accepted.records) == 1
    assert accepted.ignored == 1


@pytest.mark.parametrize(
    ("pack", "reason"),
    [
        ([{"n": "volume", "u": "kg", "v": 1}], "bad_unit"),
        ([{"n": "volume", "u": "m3", "vs": "1"}], "bad_value"),
        ([{"n": "volume", "u": "m3", "v": -1}], "bad_value"),
        ([{"n": "volume", "u": "m3", "v": 1, "t": NOW + 600}], "future_time"),
        ([{"n": "volume", "u": "m3", "v": 1, "t": NOW - 40 * 86400}], "too_old"),
        ([{"bn": "urn:dev:foyer:m-2:", "n": "volume", "u": "m3", "v": 1}], "wrong_subject"),
        ([{"n": "volume", "u": "m3", "v": 1, "foo_": 1}], "bad_record"),
        ([], "bad_payload"),
    ],
)
def test_bad_packs_are_refused_whole_with_a_reason(pack: object, reason: str) -> None:
    good_then_bad = [{"n": "volume", "u": "m3", "v": 1}, *pack] if pack else pack
    with pytest.raises(Refused) as info:
        run(msg("m-1", good_then_bad))
    assert info.value.reason == reason
    assert info.value.diagnostic


def test_unknown_device_and_wrong_family_are_refused() -> None:
    with pytest.raises(Refused) as unknown:
        run(msg("m-9", [{"n": "volume", "u": "m3", "v": 1}]))
    assert unknown.value.reason == "unknown_device"
    with pytest.raises(Refused) as wrong:
        run(msg("b-1", [{"n": "lift"}], family="meters"))
    assert wrong.value.reason == "wrong_topic"


def test_truck_reports_lifts_for_known_bins_and_drops_unknown_chips() -> None:
    pack = [
        {"bn": "urn:dev:foyer:b-1:", "n": "lift", "u": "kg", "v": 12.5, "t": NOW - 5},
        {"bn": "urn:dev:foyer:b-404:", "n": "lift", "t": NOW - 4},
    ]
    accepted = run(msg("t-1", pack, family="bins"))
    (lift,) = accepted.records
    assert (lift.measurement, lift.device_id, lift.tags) == (BIN_EVENT, "b-1", (("kind", "lift"),))
    assert dict(lift.fields) == {"source": "t-1", "weight_kg": 12.5}
    assert accepted.dropped == {"unknown_bin": 1}


def test_container_deposit_carries_badge_and_volume() -> None:
    accepted = run(msg("c-1", [{"n": "deposit", "vs": "badge-7", "v": 40, "u": "l"}], "bins"))
    assert dict(accepted.records[0].fields) == {"source": "c-1", "badge": "badge-7", "volume_l": 40}


def test_a_bin_cannot_report_a_deposit() -> None:
    with pytest.raises(Refused):
        run(msg("b-1", [{"n": "deposit", "vs": "x"}], "bins"))


def test_sniffing_follows_the_first_byte() -> None:
    assert sniff_format(b' [{"n":1}]') is Format.JSON
    assert sniff_format(cbor2.dumps([{0: "x"}])) is Format.CBOR


_json = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=20,
)
_record = st.fixed_dictionaries(
    {},
    optional={
        "bn": st.sampled_from(["urn:dev:foyer:m-1:", "urn:dev:foyer:b-1:", "x:", ""]) | st.text(),
        "bt": st.floats() | st.integers() | st.text(max_size=3),
        "n": st.sampled_from(["volume", "alarm", "battery", "lift", "fill", "deposit"]) | st.text(),
        "u": st.sampled_from(["m3", "l", "kg", "%", "%EL", "V"]) | st.integers(),
        "v": st.floats() | st.integers() | st.booleans() | st.text(max_size=3),
        "vs": st.text(max_size=70) | st.integers(),
        "t": st.floats(min_value=-1e6, max_value=1e6) | st.floats() | st.none(),
    },
)


@settings(max_examples=300, deadline=None)
@given(payload=st.binary(max_size=200) | _json.map(lambda v: json.dumps(v).encode()))
def test_no_payload_crashes_the_decoder(payload: bytes) -> None:
    for fmt in Format:
        try:
            decode(payload, fmt, NOW)
        except Refused as err:
            assert err.reason and err.diagnostic


@settings(max_examples=300, deadline=None)
@given(
    pack=st.lists(_record, max_size=5), cbor=st.booleans(), device=st.sampled_from(sorted(DEVICES))
)
def test_every_refusal_of_a_pack_has_a_diagnostic(
    pack: list[dict[str, object]], cbor: bool, device: str
) -> None:
    family = "meters" if DEVICES[device] == "meter" else "bins"
    try:
        payload = cbor2.dumps(pack) if cbor else json.dumps(pack).encode()
    except (ValueError, TypeError):
        return
    fmt = Format.CBOR if cbor else Format.JSON
    try:
        run(RawMessage("test", family, device, payload, fmt, NOW))
    except Refused as err:
        assert err.reason and err.diagnostic
