"""`foyer devices commission|show|swap|retire` as a technician runs them on a laptop,
on each registry backend."""

from __future__ import annotations

import json
from pathlib import Path

from tests.integration.test_cli_staff import foyer_cli


def test_commission_prints_credentials_once_then_show_swap_and_retire(
    tmp_path: Path, registry_url: str
) -> None:
    foyer = foyer_cli(tmp_path, registry_url)
    assert foyer("households", "add", "h-1", "--address", "1 rue Haute").returncode == 0
    out = foyer(
        "devices", "commission", "m-1", "--kind", "meter", "--dwelling", "d-h-1", "--serial", "SN-1"
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["device"]["status"] == "pending"
    assert result["credentials"]["mqtt"] is None  # no broker admin configured
    secret = result["credentials"]["oscore"]["master_secret"]
    shown = foyer("devices", "show", "m-1")
    assert secret not in shown.stdout and json.loads(shown.stdout)["serial"] == "SN-1"
    swap = foyer("devices", "swap", "m-1", "m-2", "--final-index", "5000", "--initial-index", "3")
    assert json.loads(swap.stdout)["device"]["dwelling_id"] == "d-h-1", swap.stderr
    retire = foyer("devices", "retire", "m-2")
    assert json.loads(retire.stdout)["device"]["status"] == "retired"


def test_a_meter_swap_without_indexes_is_refused_with_the_reason(
    tmp_path: Path, registry_url: str
) -> None:
    foyer = foyer_cli(tmp_path, registry_url)
    foyer("households", "add", "h-1")
    foyer("devices", "commission", "m-1", "--kind", "meter", "--dwelling", "d-h-1")
    out = foyer("devices", "swap", "m-1", "m-2")
    assert out.returncode == 1
    assert "old_final_index_l and new_initial_index_l" in out.stderr
