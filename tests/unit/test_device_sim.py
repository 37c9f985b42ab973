"""Pure tests of the device simulator: no network, no backend imports."""

from __future__ import annotations

import ast
import json
import random
from pathlib import Path

import cbor2

from device_sim import behaviour
from device_sim.clock import SimClock
from device_sim.faults import Fault, FaultConfig, choose_fault
from device_sim.fleet import build_fleet, write_csv
from device_sim.senml import CBOR_LABELS, Measure, build_pack, encode, volume
from device_sim.simulation import Simulation

DEVICE_SIM = Path(__file__).resolve().parents[2] / "device_sim"
BACKEND = {"core", "meters", "bins", "alerts", "billing"}
NOW = 1_700_000_000.0


def test_fleet_is_deterministic_for_a_seed(tmp_path: Path) -> None:
    assert build_fleet(300, 7) == build_fleet(300, 7)
    assert build_fleet(300, 7) != build_fleet(300, 8)
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    write_csv(build_fleet(300, 7), a)
    write_csv(build_fleet(300, 7), b)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_text().splitlines()[0] == "device_id,kind,household"


def test_fleet_composition() -> None:
    fleet = build_fleet(300, 1)
    kinds = [kind for _, kind, _ in fleet.devices()]
    assert kinds.count("meter") == 300
    assert 200 < kinds.count("bin") < 280
    assert kinds.count("container") == 10 and kinds.count("truck") == 2
    ids = [d for d, _, _ in fleet.devices()]
    assert len(ids) == len(set(ids))
    flats = [h for h in fleet.households if h.bin_id is None]
    assert all(h.badge_id and h.container_id for h in flats)


def _decode_cbor(data: bytes) -> list[dict[str, object]]:
    names = {v: k for k, v in CBOR_LABELS.items()}
    return [{names[k]: v for k, v in rec.items()} for rec in cbor2.loads(data)]


def _meter_pack() -> list[dict[str, object]]:
    return build_pack(
        "m-1", [volume(NOW, 123_456.9), volume(NOW + 900, 123_500), volume(NOW + 1800.25, 123_501)]
    )


def test_meter_pack_json_and_cbor_decode_to_documented_structure() -> None:
    pack = _meter_pack()
    for decoded in (json.loads(encode(pack, "json")), _decode_cbor(encode(pack, "cbor"))):
        assert decoded[0] == {
            "bn": "urn:dev:foyer:m-1:",
            "bt": int(NOW),
            "n": "volume",
            "u": "m3",
            "v": 123.456,
        }
        assert decoded[1] == {"n": "volume", "t": 900, "u": "m3", "v": 123.5}
        assert decoded[2]["t"] == 1800.25
        assert all("bn" not in r for r in decoded[1:])


def test_cbor_uses_integer_labels() -> None:
    raw = cbor2.loads(encode(_meter_pack(), "cbor"))
    assert raw[0][-2] == "urn:dev:foyer:m-1:" and raw[0][-3] == int(NOW) and raw[0][0] == "volume"


def test_truck_pack_names_the_bins() -> None:
    pack = build_pack(
        "t-1",
        [
            Measure("lift", NOW, "kg", v=12.5, about="b-1"),
            Measure("lift", NOW + 60, "kg", v=30.0, about="b-2"),
        ],
    )
    for decoded in (json.loads(encode(pack, "json")), _decode_cbor(encode(pack, "cbor"))):
        assert [r["bn"] for r in decoded] == ["urn:dev:foyer:b-1:", "urn:dev:foyer:b-2:"]
        assert all(r["n"] == "lift" and r["u"] == "kg" for r in decoded)


def test_simulation_packs_name_their_device_and_indexes_never_go_back() -> None:
    fleet = build_fleet(200, 3)
    sim = Simulation(fleet, NOW - 8 * 86_400, 900, seed=3)
    last: dict[str, float] = {}
    kinds: set[str] = set()
    for step in range(8 * 96):
        for out in sim.due(NOW - 8 * 86_400 + (step + 1) * 900):
            first = out.pack[0]
            if out.device_id.startswith("t-"):
                assert all(
                    str(r.get("bn", "urn:dev:foyer:b-")).startswith("urn:dev:foyer:b-")
                    for r in out.pack
                )
            else:
                assert first["bn"] == f"urn:dev:foyer:{out.device_id}:"
            kinds.add({"m": "meter", "b": "bin", "c": "container", "t": "truck"}[out.device_id[0]])
            for rec in out.pack:
                if rec["n"] == "volume":
                    assert float(rec["v"]) >= last.get(out.device_id, 0.0)
                    last[out.device_id] = float(rec["v"])
    assert kinds == {"meter", "bin", "container", "truck"}


def test_clock_never_exceeds_real_now_and_catches_up() -> None:
    real = [NOW]
    clock = SimClock(speed=60, backfill_s=3600, now=lambda: real[0])
    assert clock.now() == NOW - 3600
    real[0] += 30
    assert clock.now() == NOW - 3600 + 30 * 60
    for _ in range(500):
        real[0] += 7.3
        assert clock.now() <= real[0]
    assert clock.now() == real[0] and clock.lag() == 0


def _mean_use(hour: int, days: int = 400) -> float:
    rng = random.Random(5)
    t0 = NOW - NOW % 86_400
    total = sum(
        behaviour.litres_used(
            t0 + d * 86_400 + hour * 3600, t0 + d * 86_400 + (hour + 1) * 3600, 1.0, rng
        )
        for d in range(days)
    )
    return total / days


def test_night_use_is_near_zero_and_mornings_are_busy() -> None:
    night, morning = _mean_use(3), _mean_use(7)
    assert night < 1.0
    assert morning > 10 * night
    daily = sum(_mean_use(h, 50) for h in range(24))
    assert 150 < daily < 400


def test_each_lift_is_found_once_whatever_the_windows() -> None:
    week = [
        t
        for d in range(7)
        for t, _ in behaviour.lifts_in("b-9", 2, NOW + d * 86_400, NOW + (d + 1) * 86_400)
    ]
    assert week == [t for t, _ in behaviour.lifts_in("b-9", 2, NOW, NOW + 7 * 86_400)]
    assert len(week) == 1 and behaviour.weekday(week[0]) == 2


def test_fault_choice_follows_probabilities() -> None:
    rng = random.Random(1)
    cfg = FaultConfig(dup=0.1, late=0.1, garbage=0.1)
    counts = {f: 0 for f in Fault}
    for _ in range(10_000):
        counts[choose_fault(rng, cfg)] += 1
    assert 6500 < counts[Fault.NONE] < 7500
    assert all(800 < counts[f] < 1200 for f in (Fault.DUPLICATE, Fault.LATE, Fault.GARBAGE))


def test_device_sim_imports_nothing_from_the_backend() -> None:
    for path in DEVICE_SIM.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                roots = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                roots = {node.module.split(".")[0]}
            else:
                continue
            assert not roots & BACKEND, f"{path.name} imports {roots & BACKEND}"
