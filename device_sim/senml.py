"""SenML (RFC 8428) packs as PROTOCOL.md specifies them, in JSON and CBOR (pure)."""

from __future__ import annotations

import json
from dataclasses import dataclass

import cbor2

Record = dict[str, "str | int | float"]
Pack = list[Record]

CONTENT_TYPES = {"json": "application/senml+json", "cbor": "application/senml+cbor"}
CONTENT_FORMATS = {"json": 110, "cbor": 112}
# RFC 8428 section 6: integer labels used in the CBOR representation.
CBOR_LABELS = {"bn": -2, "bt": -3, "n": 0, "u": 1, "v": 2, "vs": 3, "t": 6}


@dataclass(frozen=True)
class Measure:
    name: str
    t: float
    unit: str | None = None
    v: float | None = None
    vs: str | None = None
    about: str | None = None  # device the record names; a truck names the bin


def base_name(device_id: str) -> str:
    return f"urn:dev:foyer:{device_id}:"


def seconds(t: float) -> int | float:
    """Time with at most 3 decimals, and as int when whole (shorter on the wire)."""
    r = round(t, 3)
    return int(r) if r == int(r) else r


def build_pack(device_id: str, measures: list[Measure]) -> Pack:
    """bn/bt on the first record; bn repeated only when the named device changes."""
    if not measures:
        raise ValueError("empty pack")
    bt = seconds(measures[0].t)
    pack: Pack = []
    current_bn: str | None = None
    for m in measures:
        rec: Record = {}
        bn = base_name(m.about or device_id)
        if bn != current_bn:
            rec["bn"] = current_bn = bn
        if not pack:
            rec["bt"] = bt
        rec["n"] = m.name
        if pack:
            rec["t"] = seconds(m.t - bt)
        if m.unit is not None:
            rec["u"] = m.unit
        if m.v is not None:
            rec["v"] = m.v
        if m.vs is not None:
            rec["vs"] = m.vs
        pack.append(rec)
    return pack


def volume(t: float, index_l: float) -> Measure:
    # The index is whole litres, sent in m3 with 3 decimals.
    return Measure("volume", t, "m3", v=round(int(index_l) / 1000, 3))


def encode(pack: Pack, fmt: str) -> bytes:
    if fmt == "json":
        return json.dumps(pack, separators=(",", ":")).encode()
    if fmt == "cbor":
        return cbor2.dumps([{CBOR_LABELS[k]: v for k, v in rec.items()} for rec in pack])
    raise ValueError(f"unknown format {fmt!r}")
