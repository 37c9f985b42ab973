"""`foyer territory ...`: bulk import of the territory from CSV, and listings.

``core.cli`` calls ``register`` with its sub-parsers; each command takes the parsed
arguments and the settings and returns the exit code, as the other commands do.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

from core.registry import Registry
from core.registry.errors import TerritoryImportError
from core.registry.models import CollectionPoint, Dwelling
from core.registry.territory import Territory
from core.registry.territory_csv import KINDS
from core.settings import Settings

# The columns `list` prints per kind (CSV column names, so output can be read back).
LIST_COLUMNS: Final = {
    "dwellings": ("id", "address", "commune"),
    "households": ("id", "name", "size", "kind", "dwelling_id"),
    "collection_points": ("id", "address", "commune"),
    "badges": ("id", "household_id", "valid_from", "valid_to"),
}
PAGE: Final = 1000


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    t = sub.add_parser("territory", help="dwellings, households, collection points, badges")
    actions = t.add_subparsers(required=True, metavar="ACTION")
    imp = actions.add_parser("import", help="import a CSV, all rows or none")
    imp.add_argument("kind", choices=sorted(KINDS))
    imp.add_argument("file", type=Path)
    imp.add_argument("--actor", default=_login(), help="name in the audit log")
    imp.set_defaults(func=_import)
    lst = actions.add_parser("list", help="list records, one per line, tab-separated")
    lst.add_argument("kind", choices=sorted(LIST_COLUMNS))
    lst.add_argument("--q", help="id, address or name contains this (badges: household id)")
    lst.set_defaults(func=_list)


def _login() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no login name in a bare container
        return "cli"


@contextmanager
def _territory(settings: Settings) -> Iterator[Territory]:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    registry = Registry(settings.registry)
    try:
        registry.upgrade()
        yield Territory(registry)
    finally:
        registry.close()


def _import(args: argparse.Namespace, settings: Settings) -> int:
    data = args.file.read_bytes()
    with _territory(settings) as territory:
        try:
            counts = territory.import_csv(
                args.kind, data, actor=args.actor, filename=args.file.name
            )
        except TerritoryImportError as err:
            print(f"foyer: {args.file}: {err}", file=sys.stderr)
            print(format_report(err), file=sys.stderr)
            return 1
    extra = "".join(f", {v} {k}" for k, v in counts.items() if k not in ("kind", "imported"))
    print(f"imported {counts['imported']} {args.kind}{extra}")
    return 0


def format_report(err: TerritoryImportError) -> str:
    """The report as a table: row, column, reason."""
    rows = [("row", "column", "reason")] + [(str(p.row), p.column, p.reason) for p in err.problems]
    width = [max(len(r[i]) for r in rows) for i in (0, 1)]
    lines = [f"{r[0]:>{width[0]}}  {r[1]:<{width[1]}}  {r[2]}" for r in rows]
    if err.more:
        lines.append(f"... and {err.more} more problem(s)")
    return "\n".join(lines)


def _list(args: argparse.Namespace, settings: Settings) -> int:
    columns = LIST_COLUMNS[args.kind]
    print("\t".join(columns))
    with _territory(settings) as territory:
        for row in _all(territory, args.kind, args.q):
            print("\t".join("" if row[c] is None else str(row[c]) for c in columns))
    return 0


def _all(territory: Territory, kind: str, q: str | None) -> Iterator[dict[str, Any]]:
    """Every matching record, fetched page by page."""
    offset = 0
    while True:
        rows = _fetch(territory, kind, q, offset)
        yield from rows
        if len(rows) < PAGE:
            return
        offset += PAGE


def _fetch(territory: Territory, kind: str, q: str | None, offset: int) -> Sequence[dict[str, Any]]:
    read = territory.read
    if kind == "dwellings":
        return read.places(Dwelling, q=q, limit=PAGE, offset=offset)[0]
    if kind == "collection_points":
        return read.places(CollectionPoint, q=q, limit=PAGE, offset=offset)[0]
    if kind == "households":
        return read.households(q=q, limit=PAGE, offset=offset)[0]
    return read.badges(household_id=q, limit=PAGE, offset=offset)[0]
