"""The commissioning sub-service of the registry: places, swaps, retirement, derived status."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core.registry import Registry, UnknownDevice
from core.registry.devices import SILENT_AFTER_PERIODS, Devices
from core.registry.errors import DuplicateDevice, InvalidCommissioning, UnknownPlace
from core.registry.models import CollectionPoint
from tests.clock import Clock

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def registry(tmp_path: Path, clock: Clock) -> Iterator[Registry]:
    reg = Registry(f"sqlite:///{tmp_path / 'r.db'}", clock=clock)
    reg.upgrade()
    reg.add_household("h-1", address="3 chemin des Vignes")
    with reg.transaction() as session:
        session.add(CollectionPoint(id="cp-1", address="Place de la Mairie"))
    yield reg
    reg.close()


@pytest.fixture
def devices(registry: Registry) -> Devices:
    return Devices(registry)


def test_commissioned_meter_is_pending_at_its_dwelling_with_a_default_interval(
    devices: Devices,
) -> None:
    view = devices.commission("m-1", "meter", actor="tech", dwelling_id="d-h-1", serial="S1")
    assert (view["status"], view["dwelling_id"], view["report_interval_s"]) == (
        "pending",
        "d-h-1",
        3600,
    )


@pytest.mark.parametrize(
    ("kind", "place", "problem"),
    [
        ("meter", {}, "give dwelling_id"),
        ("meter", {"collection_point_id": "cp-1"}, "give dwelling_id"),
        ("container", {"dwelling_id": "d-h-1"}, "give collection_point_id"),
        ("truck", {"dwelling_id": "d-h-1"}, "not bound to a place"),
    ],
)
def test_a_device_must_be_installed_where_its_kind_belongs(
    devices: Devices, kind: str, place: dict[str, str], problem: str
) -> None:
    with pytest.raises(InvalidCommissioning, match=problem):
        devices.commission("x-1", kind, actor="tech", **place)
    assert devices.list()[1] == 0


def test_unknown_place_and_duplicate_ids_are_refused(devices: Devices) -> None:
    with pytest.raises(UnknownPlace):
        devices.commission("m-1", "meter", actor="tech", dwelling_id="d-nowhere")
    devices.commission("c-1", "container", actor="tech", collection_point_id="cp-1", volume_l=660)
    with pytest.raises(DuplicateDevice):
        devices.commission("c-1", "container", actor="tech", collection_point_id="cp-1")


def test_volume_is_for_bins_and_containers_only(devices: Devices) -> None:
    with pytest.raises(InvalidCommissioning, match="volume_l"):
        devices.commission("m-1", "meter", actor="tech", dwelling_id="d-h-1", volume_l=120)


def test_active_device_turns_silent_after_three_missed_reports_and_back(
    devices: Devices, registry: Registry, clock: Clock
) -> None:
    devices.commission("m-1", "meter", actor="tech", dwelling_id="d-h-1", report_interval_s=900)
    registry.record_seen({"m-1": T0})
    assert devices.get("m-1")["status"] == "active"
    clock.now = T0 + timedelta(seconds=SILENT_AFTER_PERIODS * 900 + 1)
    assert devices.get("m-1")["status"] == "silent"
    assert [d["device_id"] for d in devices.list(status="silent")[0]] == ["m-1"]
    registry.record_seen({"m-1": clock.now})
    assert devices.get("m-1")["status"] == "active"


def test_trucks_never_go_silent(devices: Devices, registry: Registry, clock: Clock) -> None:
    devices.commission("t-1", "truck", actor="tech")
    registry.record_seen({"t-1": T0})
    clock.now = T0 + timedelta(days=30)
    assert devices.get("t-1")["status"] == "active"


def test_meter_swap_keeps_both_indexes_and_moves_the_place_to_the_new_meter(
    devices: Devices, clock: Clock
) -> None:
    devices.commission("m-old", "meter", actor="tech", dwelling_id="d-h-1")
    clock.now = T0 + timedelta(days=400)
    new = devices.swap(
        "m-old", "m-new", actor="tech", old_final_index_l=412_345, new_initial_index_l=12
    )
    assert (new["status"], new["dwelling_id"]) == ("pending", "d-h-1")
    old = devices.get("m-old")
    assert old["status"] == "retired"
    assert old["bindings"][0]["valid_to"] == clock.now.isoformat()
    assert old["swaps"] == [
        {
            "old_device_id": "m-old",
            "new_device_id": "m-new",
            "at": clock.now.isoformat(),
            "old_final_index_l": 412_345,
            "new_initial_index_l": 12,
        }
    ]


def test_meter_swap_needs_both_indexes_and_changes_nothing_without_them(
    devices: Devices,
) -> None:
    devices.commission("m-old", "meter", actor="tech", dwelling_id="d-h-1")
    with pytest.raises(InvalidCommissioning, match="old_final_index_l"):
        devices.swap("m-old", "m-new", actor="tech", old_final_index_l=10)
    assert devices.get("m-old")["status"] == "pending"
    with pytest.raises(UnknownDevice):
        devices.get("m-new")


def test_bin_swap_keeps_the_dwelling_so_lifts_stay_with_it(devices: Devices) -> None:
    devices.commission("b-old", "bin", actor="tech", dwelling_id="d-h-1", volume_l=120)
    new = devices.swap("b-old", "b-new", actor="tech", volume_l=240)
    assert (new["dwelling_id"], new["volume_l"]) == ("d-h-1", 240)


def test_a_retired_device_cannot_be_swapped_or_given_credentials(devices: Devices) -> None:
    devices.commission("b-1", "bin", actor="tech", dwelling_id="d-h-1")
    devices.retire("b-1", actor="tech")
    with pytest.raises(InvalidCommissioning, match="retired"):
        devices.swap("b-1", "b-2", actor="tech")
    with pytest.raises(InvalidCommissioning, match="retired"):
        devices.record_credentials("b-1", "hash", actor="tech")


def test_every_change_is_in_the_device_history(devices: Devices) -> None:
    devices.commission("b-1", "bin", actor="alice", dwelling_id="d-h-1")
    devices.record_credentials("b-1", "hash", actor="alice")
    devices.retire("b-1", actor="bob")
    history = [(e["actor"], e["action"]) for e in devices.get("b-1")["history"]]
    assert history == [
        ("bob", "device.retire"),
        ("alice", "device.credentials"),
        ("alice", "device.commission"),
    ]


def test_list_filters_by_kind_text_and_pages(devices: Devices) -> None:
    for i in range(5):
        devices.commission(f"m-{i}", "meter", actor="t", dwelling_id="d-h-1", serial=f"SN{i}")
    devices.commission("b-1", "bin", actor="t", dwelling_id="d-h-1")
    rows, total = devices.list(kind="meter", limit=2, offset=1)
    assert ([r["device_id"] for r in rows], total) == (["m-1", "m-2"], 5)
    assert [r["device_id"] for r in devices.list(q="SN3")[0]] == ["m-3"]


def test_settings_change_is_checked_and_audited(devices: Devices) -> None:
    devices.commission("m-1", "meter", actor="t", dwelling_id="d-h-1")
    assert devices.update_settings("m-1", 900, actor="alice")["report_interval_s"] == 900
    with pytest.raises(InvalidCommissioning, match="at least 60"):
        devices.update_settings("m-1", 5, actor="alice")
    entry = devices.get("m-1")["history"][0]
    assert (entry["action"], entry["details"]) == (
        "device.settings",
        {"report_interval_s": [3600, 900]},
    )
