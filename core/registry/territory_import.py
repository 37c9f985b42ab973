"""Bulk import of territory CSV files: all rows or none, every problem reported.

``territory_csv`` judges the file on its own (pure); here come the checks that need
the registry (ids already taken, unknown references, stored occupancies), each one
query per chunk of ids rather than one per row, then bulk inserts and one audit
entry for the whole import.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import Any, Final

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import InstrumentedAttribute, Session

from core.registry import audit
from core.registry.errors import (
    DuplicateTerritory,
    ImportProblem,
    InvalidTerritory,
    TerritoryImportError,
)
from core.registry.models import Badge, Building, CollectionPoint, Dwelling, Household, Occupancy
from core.registry.service import Registry
from core.registry.territory_csv import KINDS, Row, Value, overlaps, parse_csv

log = logging.getLogger(__name__)

# Ids per `IN (...)` query: far below SQLite's bound-parameter limit, and a few dozen
# queries for the 30,000 households of a 75,000-inhabitant territory.
CHUNK: Final = 500

NOUNS: Final[Mapping[type[Any], str]] = {
    Dwelling: "dwelling",
    CollectionPoint: "collection point",
    Household: "household",
    Badge: "badge",
    Building: "building",
}
MODELS: Final[Mapping[str, type[Any]]] = {
    "dwellings": Dwelling,
    "households": Household,
    "collection_points": CollectionPoint,
    "badges": Badge,
    "buildings": Building,
}


def occupied_reason(occ: Occupancy) -> str:
    until = occ.end.isoformat() if occ.end else "no move-out yet"
    return (
        f"dwelling {occ.dwelling_id} is occupied then by household {occ.household_id} "
        f"(from {occ.start.isoformat()}, {until})"
    )


def _existing(
    session: Session, column: InstrumentedAttribute[str], keys: Iterable[Value]
) -> set[str]:
    wanted = sorted({k for k in keys if isinstance(k, str)})
    found: set[str] = set()
    for i in range(0, len(wanted), CHUNK):
        found.update(session.scalars(select(column).where(column.in_(wanted[i : i + CHUNK]))))
    return found


def _taken(session: Session, model: type[Any], rows: list[Row]) -> list[ImportProblem]:
    taken = _existing(session, model.id, (r.values.get("id") for r in rows))
    return [
        ImportProblem(r.number, "id", f"{NOUNS[model]} {r.values['id']} is already registered")
        for r in rows
        if r.values.get("id") in taken
    ]


def _unknown(
    session: Session, model: type[Any], column: str, rows: list[Row]
) -> list[ImportProblem]:
    known = _existing(session, model.id, (r.values.get(column) for r in rows))
    return [
        ImportProblem(
            r.number, column, f"unknown {NOUNS[model]}: {r.values[column]} is not registered"
        )
        for r in rows
        if r.values.get(column) is not None and r.values[column] not in known
    ]


def _stored_occupancies(session: Session, rows: list[Row]) -> dict[str, list[Occupancy]]:
    dwellings = sorted({str(r.values["dwelling_id"]) for r in rows if r.values.get("dwelling_id")})
    stored: dict[str, list[Occupancy]] = {}
    for i in range(0, len(dwellings), CHUNK):
        stmt = select(Occupancy).where(Occupancy.dwelling_id.in_(dwellings[i : i + CHUNK]))
        for occupancy in session.scalars(stmt):
            stored.setdefault(occupancy.dwelling_id, []).append(occupancy)
    return stored


def _occupied(session: Session, rows: list[Row]) -> list[ImportProblem]:
    """Rows moving into a dwelling during a stored occupancy of it (one occupant at a time)."""
    stored = _stored_occupancies(session, rows)
    out: list[ImportProblem] = []
    for row in rows:
        start, end = row.values.get("move_in"), row.values.get("move_out")
        if not isinstance(start, date) or "move_out" not in row.values:
            continue  # its dates were refused already
        for occ in stored.get(str(row.values.get("dwelling_id")), []):
            if overlaps(occ.start, occ.end, start, end if isinstance(end, date) else None):
                out.append(ImportProblem(row.number, "move_in", occupied_reason(occ)))
                break
    return out


def _common_parts(session: Session, rows: list[Row]) -> list[ImportProblem]:
    """Nobody lives in a building's common parts: its shared bins are billed to the
    manager, not to an occupant (docs/billing.md, "Collective housing")."""
    ids = sorted({str(r.values["dwelling_id"]) for r in rows if r.values.get("dwelling_id")})
    common: set[str] = set()
    for i in range(0, len(ids), CHUNK):
        stmt = select(Dwelling.id).where(Dwelling.id.in_(ids[i : i + CHUNK]), Dwelling.collective)
        common.update(session.scalars(stmt))
    return [
        ImportProblem(
            r.number,
            "dwelling_id",
            f"dwelling {r.values['dwelling_id']} is a building's common parts: nobody lives there",
        )
        for r in rows
        if r.values.get("dwelling_id") in common
    ]


def _household_ids(session: Session, rows: list[Row]) -> list[ImportProblem]:
    """A building's id is the debtor reference of its manager's invoices, next to the
    households' ids: the two must not meet."""
    taken = _existing(session, Household.id, (r.values.get("id") for r in rows))
    return [
        ImportProblem(r.number, "id", f"{r.values['id']} is a household's id; choose another")
        for r in rows
        if r.values.get("id") in taken
    ]


def registry_problems(session: Session, kind: str, rows: list[Row]) -> list[ImportProblem]:
    """What the file gets wrong against the registry's current content."""
    problems = _taken(session, MODELS[kind], rows)
    if kind == "households":
        problems += _unknown(session, Dwelling, "dwelling_id", rows)
        problems += _common_parts(session, rows)
        problems += _occupied(session, rows)
    elif kind == "badges":
        problems += _unknown(session, Household, "household_id", rows)
    elif kind == "dwellings":
        problems += _unknown(session, Building, "building_id", rows)
    elif kind == "buildings":
        problems += _household_ids(session, rows)
    return problems


def _insert_rows(session: Session, kind: str, rows: list[Row]) -> None:
    """Bulk inserts (executemany): one statement per table, not one per row."""
    values = [r.values for r in rows]
    if kind != "households":
        columns = KINDS[kind].columns
        session.execute(insert(MODELS[kind]), [{c: v[c] for c in columns} for v in values])
        return
    session.execute(
        insert(Household), [{k: v[k] for k in ("id", "name", "size", "kind")} for v in values]
    )
    session.execute(
        insert(Occupancy),
        [
            {"household_id": v["id"], "dwelling_id": v["dwelling_id"], "start": v["move_in"],
             "end": v["move_out"]}
            for v in values
        ],
    )  # fmt: skip


def _write(
    session: Session, kind: str, rows: list[Row], actor: str, filename: str, now: datetime
) -> dict[str, Any]:
    _insert_rows(session, kind, rows)
    counts = {"imported": len(rows)}
    if kind == "households":
        counts["occupancies"] = len(rows)
    details = {"file": filename, "kind": kind, **counts}
    audit.record(session, actor, "territory.import", f"import:{kind}", now, details)
    return {"kind": kind, **counts}


def import_csv(
    registry: Registry, kind: str, data: bytes, *, actor: str, filename: str
) -> dict[str, Any]:
    """Import the whole file or nothing; TerritoryImportError names every bad row."""
    if kind not in KINDS:
        raise InvalidTerritory(f"unknown import kind {kind!r}; expected one of {', '.join(KINDS)}")
    parsed = parse_csv(kind, data)
    now = registry.now()
    try:
        with registry.transaction() as session:
            problems = parsed.problems + registry_problems(session, kind, parsed.rows)
            if not problems and not parsed.rows:
                problems = [ImportProblem(2, "", "no data rows below the header")]
            if problems:
                log.info("import of %s (%s) refused: %d problems", filename, kind, len(problems))
                raise TerritoryImportError(kind, parsed.in_file_order(problems))
            return _write(session, kind, parsed.rows, actor, filename, now)
    except IntegrityError as err:
        # A concurrent writer took an id between our checks and the commit.
        raise DuplicateTerritory(
            f"{kind}: the registry changed during the import; nothing was imported, try again"
        ) from err
