"""Territory CSV import on a real SQLite registry in a temp dir: all rows or none, and a
report naming every bad row as a spreadsheet user sees it (header = row 1)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from core.cli_territory import register
from core.registry import Registry
from core.registry.errors import (
    DuplicateTerritory,
    ImportProblem,
    InvalidTerritory,
    OccupancyConflict,
    TerritoryImportError,
)
from core.registry.models import (
    AuditEntry,
    Badge,
    Building,
    CollectionPoint,
    Dwelling,
    Household,
    Occupancy,
)
from core.registry.territory import Territory
from core.registry.territory_csv import overlaps, parse_csv, sniff_delimiter
from core.settings import Settings

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)

DWELLINGS = b"id,address,commune\nd-001,1 rue des Lilas,Valence\nd-002,2 rue des Lilas,\n"


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    reg = Registry(f"sqlite:///{tmp_path / 'registry.sqlite'}", clock=lambda: T0)
    reg.upgrade()
    yield reg
    reg.close()


@pytest.fixture
def territory(registry: Registry) -> Territory:
    return Territory(registry)


def _import(territory: Territory, kind: str, text: str | bytes) -> dict[str, object]:
    data = text.encode() if isinstance(text, str) else text
    return territory.import_csv(kind, data, actor="alice", filename=f"{kind}.csv")


def _refused(territory: Territory, kind: str, text: str | bytes) -> list[ImportProblem]:
    with pytest.raises(TerritoryImportError) as caught:
        _import(territory, kind, text)
    return list(caught.value.problems)


def _count(registry: Registry, model: type[object]) -> int:
    with registry.reading() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def _with_dwellings(territory: Territory) -> None:
    _import(territory, "dwellings", DWELLINGS)


def _with_households(territory: Territory) -> None:
    _with_dwellings(territory)
    _import(territory, "households", "id,name,dwelling_id,move_in\nh-001,Dupont,d-001,2024-01-01\n")


# --- good files ----------------------------------------------------------------------------


def test_dwellings_import_with_their_commune_and_an_empty_one_as_none(
    territory: Territory, registry: Registry
) -> None:
    assert _import(territory, "dwellings", DWELLINGS) == {"kind": "dwellings", "imported": 2}
    with registry.reading() as session:
        d1, d2 = session.get(Dwelling, "d-001"), session.get(Dwelling, "d-002")
        assert d1 is not None and (d1.address, d1.commune) == ("1 rue des Lilas", "Valence")
        assert d2 is not None and d2.commune is None


def test_collection_points_import(territory: Territory, registry: Registry) -> None:
    _import(territory, "collection_points", "id,address\ncp-01,Place du Marché\n")
    with registry.reading() as session:
        point = session.get(CollectionPoint, "cp-01")
        assert point is not None and point.address == "Place du Marché"


def test_households_import_creates_each_household_and_its_occupancy(
    territory: Territory, registry: Registry
) -> None:
    _with_dwellings(territory)
    counts = _import(
        territory,
        "households",
        "id,name,size,kind,dwelling_id,move_in,move_out\n"
        "h-001,Dupont,3,primary,d-001,2024-01-01,2025-01-01\n"
        "h-002,Martin,,secondary,d-001,2025-01-01,\n"
        "h-003,,,,d-002,2024-06-01,\n",
    )
    assert counts == {"kind": "households", "imported": 3, "occupancies": 3}
    with registry.reading() as session:
        h3 = session.get(Household, "h-003")
        assert h3 is not None and (h3.name, h3.size, h3.kind) == (None, None, "primary")
        stays = session.scalars(select(Occupancy).where(Occupancy.household_id == "h-001"))
        assert [(o.dwelling_id, o.start, o.end) for o in stays] == [
            ("d-001", date(2024, 1, 1), date(2025, 1, 1))
        ]


def test_badges_import_for_registered_households(territory: Territory, registry: Registry) -> None:
    _with_households(territory)
    _import(
        territory,
        "badges",
        "id,household_id,valid_from,valid_to\nb-0001,h-001,2024-01-01,\nb-0002,h-001,2024-01-01,2024-06-01\n",
    )
    with registry.reading() as session:
        badge = session.get(Badge, "b-0002")
        assert badge is not None and badge.valid_to == date(2024, 6, 1)


def test_semicolons_bom_crlf_and_header_case_are_read_as_french_spreadsheets_export_them(
    territory: Territory, registry: Registry
) -> None:
    data = "\ufeffId ; Address;Commune\r\nd-010;3, rue Pasteur;Romans\r\n;;\r\n".encode()
    assert _import(territory, "dwellings", data)["imported"] == 1
    with registry.reading() as session:
        dwelling = session.get(Dwelling, "d-010")
        assert dwelling is not None and dwelling.address == "3, rue Pasteur"


def test_ten_thousand_dwellings_import(territory: Territory, registry: Registry) -> None:
    lines = [f"dw-{i:05d},{i} avenue de la République,Valence" for i in range(10_000)]
    data = ("id,address,commune\n" + "\n".join(lines) + "\n").encode()
    assert _import(territory, "dwellings", data)["imported"] == 10_000
    assert _count(registry, Dwelling) == 10_000


def test_an_import_writes_one_audit_entry_with_counts_and_file_name(
    territory: Territory, registry: Registry
) -> None:
    _with_dwellings(territory)
    with registry.reading() as session:
        entries = list(session.scalars(select(AuditEntry)))
    assert len(entries) == 1
    entry = entries[0]
    assert (entry.actor, entry.action, entry.target) == (
        "alice",
        "territory.import",
        "import:dwellings",
    )
    assert json.loads(entry.details) == {
        "file": "dwellings.csv",
        "kind": "dwellings",
        "imported": 2,
    }


# --- refused files ------------------------------------------------------------------------


def test_a_file_with_bad_rows_is_refused_whole_with_each_bad_row_named(
    territory: Territory, registry: Registry
) -> None:
    _with_dwellings(territory)
    problems = _refused(
        territory,
        "households",
        "id;name;size;kind;dwelling_id;move_in;move_out\n"
        "h-001;Dupont;3;primary;d-001;2024-01-01;\n"  # good: must not be imported alone
        "h-002;Martin;0;tenant;d-002;2024-02-01;\n"
        "h 3;Durand;2;primary;d-999;01/02/2024;\n"
        "h-004;Petit;1;primary;d-002;2024-01-01;2023-12-01\n",
    )
    assert [(p.row, p.column) for p in problems] == [
        (3, "size"),
        (3, "kind"),
        (4, "id"),
        (4, "dwelling_id"),
        (4, "move_in"),
        (5, "move_out"),
    ]
    reasons = {(p.row, p.column): p.reason for p in problems}
    assert "1 to 99" in reasons[(3, "size")]
    assert "unknown dwelling: d-999" in reasons[(4, "dwelling_id")]
    assert "YYYY-MM-DD" in reasons[(4, "move_in")] and "01/02/2024" in reasons[(4, "move_in")]
    assert "after move_in" in reasons[(5, "move_out")]
    assert _count(registry, Household) == 0
    assert _count(registry, Occupancy) == 0
    assert _count(registry, AuditEntry) == 1  # the dwellings import only


def test_duplicate_ids_in_the_file_name_the_first_occurrence(territory: Territory) -> None:
    problems = _refused(territory, "dwellings", "id,address\nd-1a,x\nd-1b,y\nd-1a,z\n")
    assert problems == [ImportProblem(4, "id", "duplicate id: already on row 2")]


def test_ids_already_in_the_registry_are_refused(territory: Territory, registry: Registry) -> None:
    _with_dwellings(territory)
    problems = _refused(territory, "dwellings", "id,address\nd-003,x\nd-002,y\n")
    assert problems == [ImportProblem(3, "id", "dwelling d-002 is already registered")]
    assert _count(registry, Dwelling) == 2


def test_badges_of_unknown_households_are_refused(territory: Territory) -> None:
    _with_households(territory)
    problems = _refused(territory, "badges", "id,household_id,valid_from\nb-1x,h-404,2024-01-01\n")
    assert problems == [
        ImportProblem(2, "household_id", "unknown household: h-404 is not registered")
    ]


def test_two_households_of_the_file_in_one_dwelling_at_once_are_refused(
    territory: Territory,
) -> None:
    _with_dwellings(territory)
    problems = _refused(
        territory,
        "households",
        "id,dwelling_id,move_in,move_out\n"
        "h-001,d-001,2024-01-01,\n"
        "h-002,d-002,2024-01-01,2024-06-01\n"
        "h-003,d-002,2024-06-01,\n"  # starts the day h-002 leaves: no overlap
        "h-004,d-001,2025-01-01,2025-02-01\n",
    )
    assert [(p.row, p.column) for p in problems] == [(5, "move_in")]
    assert "row 2" in problems[0].reason


def test_a_move_in_during_a_stored_occupancy_is_refused(territory: Territory) -> None:
    _with_households(territory)  # h-001 in d-001 from 2024-01-01, no move-out
    problems = _refused(territory, "households", "id,dwelling_id,move_in\nh-009,d-001,2023-06-01\n")
    assert [(p.row, p.column) for p in problems] == [(2, "move_in")]
    assert "household h-001" in problems[0].reason


def test_header_problems_are_reported_once_as_row_1(territory: Territory) -> None:
    problems = _refused(territory, "dwellings", "id,adress,commune\nd-001,x,y\nd-002,,\n")
    assert problems == [
        ImportProblem(1, "address", "missing column"),
        ImportProblem(
            1,
            "adress",
            "unknown column; expected: id, address, commune, building_id, shares, collective",
        ),
    ]


def test_a_row_with_more_cells_than_columns_is_named(territory: Territory) -> None:
    problems = _refused(territory, "dwellings", "id,address\nd-001,1 rue A,Valence\n")
    assert problems == [ImportProblem(2, "", "3 cells for 2 columns")]


def test_a_quoted_cell_spanning_lines_counts_as_one_spreadsheet_row(territory: Territory) -> None:
    problems = _refused(territory, "dwellings", 'id,address\nd-001,"1 rue A\nbâtiment B"\nx,y\n')
    assert [(p.row, p.column) for p in problems] == [(3, "id")]


def test_a_file_that_is_not_utf8_is_refused_with_its_line(territory: Territory) -> None:
    problems = _refused(
        territory, "dwellings", "id,address\nd-001,1 rue Hérault\n".encode("cp1252")
    )
    assert [(p.row, p.column) for p in problems] == [(2, "")]
    assert "UTF-8" in problems[0].reason


def test_a_header_without_rows_is_refused(territory: Territory) -> None:
    assert _refused(territory, "dwellings", "id,address\n") == [
        ImportProblem(2, "", "no data rows below the header")
    ]


def test_the_report_is_capped_and_says_how_many_more(territory: Territory) -> None:
    data = "id,address\n" + "".join(f"bad id {i},\n" for i in range(1500))  # no address
    with pytest.raises(TerritoryImportError) as caught:
        _import(territory, "dwellings", data)
    report = caught.value.report()
    assert len(report["problems"]) == 1000  # type: ignore[arg-type]
    assert report["more"] == 2000  # two problems per row, 3000 in all


def test_an_unknown_kind_is_refused(territory: Territory) -> None:
    with pytest.raises(InvalidTerritory, match="dwellings"):
        _import(territory, "meters", DWELLINGS)


# --- pure helpers -------------------------------------------------------------------------


def test_semicolon_is_chosen_only_when_it_outnumbers_commas() -> None:
    assert sniff_delimiter("id;address;commune") == ";"
    assert sniff_delimiter("id,address,commune") == ","
    assert sniff_delimiter("id") == ","


def test_periods_are_half_open_and_none_is_an_open_end() -> None:
    jan, feb, mar = date(2024, 1, 1), date(2024, 2, 1), date(2024, 3, 1)
    assert not overlaps(jan, feb, feb, mar)
    assert overlaps(jan, None, feb, mar)
    assert overlaps(feb, mar, jan, None)
    assert not overlaps(feb, None, jan, feb)


def test_parse_keeps_bad_rows_so_that_cross_row_checks_still_see_them() -> None:
    parsed = parse_csv("dwellings", b"id,address\nd-001,\nd-001,x\n")
    assert [(p.row, p.column) for p in parsed.problems] == [(2, "address"), (3, "id")]


# --- edits: the same rules one record at a time ------------------------------------------


def test_a_household_lives_in_one_dwelling_at_a_time(territory: Territory) -> None:
    _with_households(territory)
    with pytest.raises(OccupancyConflict, match="move-out first"):
        territory.move_in("h-001", {"dwelling_id": "d-002", "move_in": "2024-06-01"}, actor="bob")
    ended = territory.move_out("h-001", {"move_out": "2024-06-01"}, actor="bob")
    assert ended["move_out"] == "2024-06-01"
    moved = territory.move_in(
        "h-001", {"dwelling_id": "d-002", "move_in": "2024-06-01"}, actor="bob"
    )
    assert moved == {
        "household_id": "h-001",
        "dwelling_id": "d-002",
        "move_in": "2024-06-01",
        "move_out": None,
    }


def test_creating_a_taken_id_is_a_duplicate(territory: Territory) -> None:
    _with_dwellings(territory)
    with pytest.raises(DuplicateTerritory):
        territory.create_dwelling({"id": "d-001", "address": "x"}, actor="bob")


def test_revoking_a_badge_keeps_an_earlier_end(territory: Territory) -> None:
    _with_households(territory)
    territory.issue_badge(
        {"id": "b-0001", "household_id": "h-001", "valid_from": "2024-01-01"}, actor="bob"
    )
    assert (
        territory.revoke_badge("b-0001", {"valid_to": "2024-05-01"}, actor="bob")["valid_to"]
        == "2024-05-01"
    )
    assert (
        territory.revoke_badge("b-0001", {"valid_to": "2024-09-01"}, actor="bob")["valid_to"]
        == "2024-05-01"
    )


# --- command line -------------------------------------------------------------------------


def _cli(tmp_path: Path, *argv: str) -> int:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(required=True))
    args = parser.parse_args(argv)
    code: int = args.func(args, Settings(data_dir=tmp_path / "data"))
    return code


def test_cli_prints_the_report_as_a_table_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "dwellings.csv"
    bad.write_text("id;address\nd-001;\nd-001;2 rue B\n")
    assert _cli(tmp_path, "territory", "import", "dwellings", str(bad)) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[1].split() == ["row", "column", "reason"]
    assert err[2].split(None, 2) == ["2", "address", "a value is required"]
    assert err[3].split(None, 2) == ["3", "id", "duplicate id: already on row 2"]


def test_cli_imports_then_lists(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "dwellings.csv"
    good.write_bytes(DWELLINGS)
    assert _cli(tmp_path, "territory", "import", "dwellings", str(good), "--actor", "ops") == 0
    assert capsys.readouterr().out == "imported 2 dwellings\n"
    assert _cli(tmp_path, "territory", "list", "dwellings") == 0
    assert capsys.readouterr().out.splitlines() == [
        "id\taddress\tcommune",
        "d-001\t1 rue des Lilas\tValence",
        "d-002\t2 rue des Lilas\t",
    ]


# --- collective housing: buildings and the dwellings in them ---------------------------------

BUILDINGS = (
    "id;name;manager_name;manager_address;split_key\n"
    'bat-A;Résidence des Tilleuls;Syndic Durand;"4 avenue Victor Hugo\n26000 Valence";shares\n'
    "bat-B;Les Cèdres;Habitat Drôme;12 rue Bayard | 26000 Valence;\n"
    "bat-C;Le Clos;;;persons\n"
)


def test_buildings_import_with_manager_address_lines_and_split_key(
    territory: Territory, registry: Registry
) -> None:
    assert _import(territory, "buildings", BUILDINGS) == {"kind": "buildings", "imported": 3}
    with registry.reading() as session:
        a, b, c = (session.get(Building, k) for k in ("bat-A", "bat-B", "bat-C"))
        assert a is not None and b is not None and c is not None
        assert (a.manager_name, a.manager_address, a.split_key) == (
            "Syndic Durand",
            "4 avenue Victor Hugo\n26000 Valence",
            "shares",
        )
        assert (b.manager_address, b.split_key) == ("12 rue Bayard\n26000 Valence", "none")
        assert (c.manager_name, c.manager_address, c.split_key) == (None, None, "persons")


def test_dwellings_import_into_a_building_with_shares_and_common_parts(
    territory: Territory, registry: Registry
) -> None:
    _import(territory, "buildings", BUILDINGS)
    counts = _import(
        territory,
        "dwellings",
        "id,address,building_id,shares,collective\n"
        "bat-A-cp,4 av. Victor Hugo (parties communes),bat-A,,oui\n"
        "bat-A-01,4 av. Victor Hugo apt 1,bat-A,120,\n"
        "d-003,3 rue des Lilas,,,no\n",
    )
    assert counts == {"kind": "dwellings", "imported": 3}
    with registry.reading() as session:
        common, flat, house = (session.get(Dwelling, k) for k in ("bat-A-cp", "bat-A-01", "d-003"))
        assert common is not None and (common.building_id, common.collective) == ("bat-A", True)
        assert flat is not None and (flat.building_id, flat.shares, flat.collective) == (
            "bat-A",
            120,
            False,
        )
        assert house is not None and (house.building_id, house.collective) == (None, False)


def test_bad_building_and_dwelling_rows_are_refused_whole_with_row_column_reason(
    territory: Territory, registry: Registry
) -> None:
    _with_households(territory)
    buildings = _refused(
        territory,
        "buildings",
        "id,name,split_key\nbat-1,Le Clos,tantiemes\nh-001,Homonyme,\nbat-3,,none\n",
    )
    assert [(p.row, p.column) for p in buildings] == [
        (2, "split_key"),
        (3, "id"),
        (4, "name"),
    ]
    assert "none, persons, shares" in buildings[0].reason
    assert "household's id" in buildings[1].reason
    _import(territory, "buildings", "id,name\nbat-1,Le Clos\n")
    dwellings = _refused(
        territory,
        "dwellings",
        "id,address,building_id,shares,collective\n"
        "d-010,x,bat-9,,\n"
        "d-011,x,bat-1,0,\n"
        "d-012,x,,,yes\n"
        "d-013,x,bat-1,,peut-être\n",
    )
    assert [(p.row, p.column, p.reason.split(" (got")[0]) for p in dwellings] == [
        (2, "building_id", "unknown building: bat-9 is not registered"),
        (3, "shares", "shares are 1 to 1000000"),
        (4, "collective", "the common parts of a building need its building_id"),
        (5, "collective", "expected yes or no"),
    ]
    assert _count(registry, Building) == 1
    assert _count(registry, Dwelling) == 2


def test_nobody_moves_into_a_buildings_common_parts(territory: Territory) -> None:
    _import(territory, "buildings", "id,name\nbat-1,Le Clos\n")
    _import(territory, "dwellings", "id,address,building_id,collective\nbat-1-cp,x,bat-1,yes\n")
    problems = _refused(
        territory, "households", "id,dwelling_id,move_in\nh-100,bat-1-cp,2024-01-01\n"
    )
    assert problems == [
        ImportProblem(
            2, "dwelling_id", "dwelling bat-1-cp is a building's common parts: nobody lives there"
        )
    ]
