"""Territory values and CSV files, judged without I/O: text in, clean rows and problems out.

The bulk import and the API's edits share these field rules, so a value is accepted or
refused by the same rule whichever way it arrives. What needs the registry (ids
already taken, unknown references, occupancies already stored) is checked by
``core.registry.territory``; everything a file can get wrong on its own is here.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Final

from core.registry.errors import ImportProblem
from core.registry.models import HOUSEHOLD_KINDS, SPLIT_KEYS
from core.registry.service import DEVICE_ID_RE

Value = str | int | date | None
Parser = Callable[[object], Value]

HEADER_ROW: Final = 1
MAX_HOUSEHOLD_SIZE: Final = 99
MAX_SHARES: Final = 1_000_000  # tantièmes: a building's total is usually 1,000 or 10,000
MAX_ADDRESS_LINES: Final = 6
YES: Final = ("yes", "true", "1", "oui", "y")
NO: Final = ("no", "false", "0", "non", "n")
# (start column, end column): periods are [start, end) and never empty (DESIGN.md).
PERIODS: Final = (("move_in", "move_out"), ("valid_from", "valid_to"))


def _text(max_len: int) -> Parser:
    def parse(value: object) -> Value:
        if not isinstance(value, str):
            raise ValueError("expected text")
        text = value.strip()
        if len(text) > max_len:
            raise ValueError(f"at most {max_len} characters")
        return text or None

    return parse


def _id(value: object) -> Value:
    # Same rule as device ids (PROTOCOL.md, "Identity"): ids travel in URLs and topics.
    if not isinstance(value, str) or not DEVICE_ID_RE.fullmatch(value.strip()):
        raise ValueError("an id is 3 to 64 characters of A-Z a-z 0-9 - _ .")
    return value.strip()


def _size(value: object) -> Value:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("expected a whole number of persons")
    if not 1 <= value <= MAX_HOUSEHOLD_SIZE:
        raise ValueError(f"a household has 1 to {MAX_HOUSEHOLD_SIZE} persons")
    return value


def _kind(value: object) -> Value:
    if value not in HOUSEHOLD_KINDS:
        raise ValueError(f"expected one of {', '.join(HOUSEHOLD_KINDS)}")
    return str(value)


def _shares(value: object) -> Value:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("expected a whole number of shares (tantièmes)")
    if not 1 <= value <= MAX_SHARES:
        raise ValueError(f"shares are 1 to {MAX_SHARES}")
    return value


def _split_key(value: object) -> Value:
    if value not in SPLIT_KEYS:
        raise ValueError(f"expected one of {', '.join(SPLIT_KEYS)}")
    return str(value)


def _flag(value: object) -> Value:
    # Stored as a boolean; bool is an int, so it fits ``Value``.
    if isinstance(value, bool):
        return value
    text = value.strip().lower() if isinstance(value, str) else value
    if text in YES:
        return True
    if text in NO:
        return False
    raise ValueError("expected yes or no")


def _address_lines(value: object) -> Value:
    """Printed lines, one per line of a multi-line cell or separated by ``|``; the
    bill prints them as given (the last one is usually ``26000 Valence``)."""
    if not isinstance(value, str):
        raise ValueError("expected text")
    lines = [part.strip() for part in value.replace("|", "\n").splitlines()]
    lines = [line for line in lines if line]
    if len(lines) > MAX_ADDRESS_LINES or any(len(line) > 255 for line in lines):
        raise ValueError(f"at most {MAX_ADDRESS_LINES} lines of 255 characters")
    return "\n".join(lines) or None


def _date(value: object) -> Value:
    try:
        if not isinstance(value, str):
            raise TypeError
        return date.fromisoformat(value.strip())
    except (TypeError, ValueError):
        raise ValueError("expected an ISO date YYYY-MM-DD, e.g. 2025-03-01") from None


FIELDS: Final[Mapping[str, Parser]] = {
    "id": _id,
    "address": _text(255),
    "commune": _text(128),
    "name": _text(255),
    "size": _size,
    "kind": _kind,
    "dwelling_id": _id,
    "household_id": _id,
    "move_in": _date,
    "move_out": _date,
    "valid_from": _date,
    "valid_to": _date,
    "building_id": _id,
    "shares": _shares,
    "collective": _flag,
    "manager_name": _text(255),
    "manager_address": _address_lines,
    "split_key": _split_key,
}
DEFAULTS: Final[Mapping[str, Value]] = {"kind": "primary", "split_key": "none", "collective": False}


@dataclass(frozen=True)
class Shape:
    """The columns of one kind of record: the ones that need a value, and the others."""

    required: tuple[str, ...]
    optional: tuple[str, ...] = ()

    @property
    def columns(self) -> tuple[str, ...]:
        return self.required + self.optional


# The CSV kinds (docs/schema.md, "Territory CSV files"). A household row also creates
# its occupancy, so the dwelling and the move-in date are required there.
KINDS: Final[Mapping[str, Shape]] = {
    "dwellings": Shape(("id", "address"), ("commune", "building_id", "shares", "collective")),
    "households": Shape(("id", "dwelling_id", "move_in"), ("name", "size", "kind", "move_out")),
    "collection_points": Shape(("id", "address"), ("commune",)),
    "badges": Shape(("id", "household_id", "valid_from"), ("valid_to",)),
    "buildings": Shape(("id", "name"), ("manager_name", "manager_address", "split_key")),
}

Problems = list[tuple[str, str]]  # (column, reason) within one record


def clean(shape: Shape, raw: Mapping[str, object]) -> tuple[dict[str, Value], Problems]:
    """Every column of ``shape`` parsed; absent or empty optional values become defaults."""
    values: dict[str, Value] = {}
    problems: Problems = []
    for column in shape.columns:
        given = raw.get(column)
        try:
            value = None if given is None or given == "" else FIELDS[column](given)
        except ValueError as err:
            problems.append((column, f"{err} (got {_shown(given)})"))
            continue
        if value is None and column in shape.required:
            problems.append((column, "a value is required"))
        values[column] = DEFAULTS.get(column) if value is None else value
    refused = _period_problems(values) + _common_parts_problems(values)
    for column, _reason in refused:
        del values[column]  # a refused value is absent, so later checks skip the period
    return values, problems + refused


def clean_changes(
    editable: Shape, changes: Mapping[str, object]
) -> tuple[dict[str, Value], Problems]:
    """A partial update: only the given columns, each judged by its field rule."""
    allowed = ", ".join(editable.columns)
    unknown = sorted(set(changes) - set(editable.columns))
    if unknown:
        return {}, [(c, f"cannot be changed; editable: {allowed}") for c in unknown]
    values, problems = clean(Shape((), editable.columns), changes)
    blanked = [c for c in editable.required if c in changes and values[c] is None]
    problems += [(c, "a value is required") for c in blanked]
    return {c: v for c, v in values.items() if c in changes}, problems


def _period_problems(values: Mapping[str, Value]) -> Problems:
    out: Problems = []
    for start_col, end_col in PERIODS:
        start, end = values.get(start_col), values.get(end_col)
        if isinstance(start, date) and isinstance(end, date) and end <= start:
            out.append((end_col, f"must be after {start_col} ({start.isoformat()})"))
    return out


def _common_parts_problems(values: Mapping[str, Value]) -> Problems:
    """A building's common parts (where its shared bins are bound) belong to it."""
    # A refused building_id is absent: its own problem is reported already.
    if values.get("collective") is True and "building_id" in values and not values["building_id"]:
        return [("collective", "the common parts of a building need its building_id")]
    return []


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# --- CSV files --------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    number: int  # as the spreadsheet shows it (header = 1)
    values: dict[str, Value]  # a column whose value was refused is absent


@dataclass(frozen=True)
class ParsedFile:
    rows: list[Row]
    problems: list[ImportProblem]
    header: tuple[str, ...] = ()

    def in_file_order(self, problems: Iterable[ImportProblem]) -> list[ImportProblem]:
        """Problems by row, then as the columns stand in the file (whole-row ones first)."""
        place = {name: index for index, name in enumerate(self.header)}
        return sorted(problems, key=lambda p: (p.row, place.get(p.column, -1)))


def parse_csv(kind: str, data: bytes) -> ParsedFile:
    """Decode, split and judge every row of a territory CSV; collect every problem."""
    shape = KINDS[kind]
    problems: list[ImportProblem] = []
    text = _decode(data, problems)
    if text is None:
        return ParsedFile([], problems)
    records = _records(text, problems)
    first = next(records, None)
    header = _header(first[1] if first else [], shape, problems)
    if header is None:
        return ParsedFile([], problems)
    rows = list(_rows(records, header, shape, problems))
    problems += duplicate_ids(rows)
    if kind == "households":
        problems += overlapping_occupancies(rows)
    return ParsedFile(rows, problems, tuple(header))


def _decode(data: bytes, problems: list[ImportProblem]) -> str | None:
    # utf-8-sig drops the byte-order mark Excel writes in "CSV UTF-8" exports.
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        problems.append(ImportProblem(line, "", 'not UTF-8 text: save the file as "CSV UTF-8"'))
        return None


def sniff_delimiter(first_line: str) -> str:
    """`;` when the header has more of them than commas: French spreadsheets export `;`."""
    return ";" if first_line.count(";") > first_line.count(",") else ","


def _records(text: str, problems: list[ImportProblem]) -> Iterator[tuple[int, list[str]]]:
    """(spreadsheet row, cells); a quoted cell may span lines but is still one row."""
    delimiter = sniff_delimiter(text.split("\n", 1)[0])
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    number = 0
    try:
        for number, cells in enumerate(reader, start=HEADER_ROW):
            yield number, [c.strip() for c in cells]
    except csv.Error as err:
        problems.append(ImportProblem(number + 1, "", f"unreadable CSV: {err}"))


def _header(cells: list[str], shape: Shape, problems: list[ImportProblem]) -> list[str] | None:
    """Column names (case and spaces ignored); None when the file cannot be read by them."""
    names = [c.lower() for c in cells]
    while names and not names[-1]:
        names.pop()  # a trailing delimiter is not a column
    found = _header_problems(names, shape)
    problems += [ImportProblem(HEADER_ROW, col, reason) for col, reason in found]
    return None if found else names


def _header_problems(names: list[str], shape: Shape) -> Problems:
    if not names:
        return [("", f"empty file: the first row names the columns: {', '.join(shape.columns)}")]
    found: Problems = [(c, "missing column") for c in shape.required if c not in names]
    expected = ", ".join(shape.columns)
    for index, name in enumerate(names):
        if not name:
            found.append((f"#{index + 1}", "column without a name"))
        elif name not in shape.columns:
            found.append((name, f"unknown column; expected: {expected}"))
        elif name in names[:index]:
            found.append((name, "column given twice"))
    return found


def _rows(
    records: Iterable[tuple[int, list[str]]],
    header: list[str],
    shape: Shape,
    problems: list[ImportProblem],
) -> Iterator[Row]:
    for number, cells in records:
        if not any(cells):
            continue  # spreadsheets export blank rows after the data
        if any(cells[len(header) :]):
            problems.append(
                ImportProblem(number, "", f"{len(cells)} cells for {len(header)} columns")
            )
            continue
        values, found = clean(shape, dict(zip(header, cells, strict=False)))
        problems += [ImportProblem(number, col, reason) for col, reason in found]
        # Bad rows are still yielded (without their bad values) so that the checks
        # across rows and against the registry report them too.
        yield Row(number, values)


def duplicate_ids(rows: Iterable[Row]) -> list[ImportProblem]:
    first: dict[object, int] = {}
    out: list[ImportProblem] = []
    for row in rows:
        if row.values.get("id") is None:
            continue
        seen = first.setdefault(row.values["id"], row.number)
        if seen != row.number:
            out.append(ImportProblem(row.number, "id", f"duplicate id: already on row {seen}"))
    return out


def overlaps(a_start: date, a_end: date | None, b_start: date, b_end: date | None) -> bool:
    """Do [a_start, a_end) and [b_start, b_end) share a day? None is an open end."""
    return (b_end is None or a_start < b_end) and (a_end is None or b_start < a_end)


def overlapping_occupancies(rows: Iterable[Row]) -> list[ImportProblem]:
    """Two households of the file in one dwelling at the same time (one occupant at a time)."""
    by_dwelling: dict[object, list[Row]] = {}
    for row in rows:
        if _has_period(row):
            by_dwelling.setdefault(row.values["dwelling_id"], []).append(row)
    out: list[ImportProblem] = []
    for group in by_dwelling.values():
        out += _overlaps_in(sorted(group, key=lambda r: _as_date(r.values["move_in"])))
    return out


def _has_period(row: Row) -> bool:
    """A row whose dwelling or dates were refused has nothing to compare."""
    v = row.values
    return (
        v.get("dwelling_id") is not None and isinstance(v.get("move_in"), date) and "move_out" in v
    )


def _overlaps_in(group: list[Row]) -> list[ImportProblem]:
    """Rows sorted by move-in: each is compared with the one that stays longest before it."""
    out: list[ImportProblem] = []
    longest = group[0]
    for row in group[1:]:
        start, end = _as_date(row.values["move_in"]), _opt_date(row.values.get("move_out"))
        held_until = _opt_date(longest.values.get("move_out"))
        if overlaps(_as_date(longest.values["move_in"]), held_until, start, end):
            reason = (
                f"dwelling {row.values['dwelling_id']} is occupied then by the household "
                f"of row {longest.number}"
            )
            out.append(ImportProblem(row.number, "move_in", reason))
        if held_until is not None and (end is None or end > held_until):
            longest = row
    return out


def _as_date(value: Value) -> date:
    assert isinstance(value, date)  # a clean row holds a date in its required date columns
    return value


def _opt_date(value: Value) -> date | None:
    return value if isinstance(value, date) else None
