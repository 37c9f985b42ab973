"""A billing run as CSV for the accounting software (pure: documents in, text out).

``run_csv(docs)``: one row per document (invoice or credit note) with its totals;
``lines_csv(docs)``: one row per printed line. Conventions (docs/billing.md, "Exports"):

- semicolon-separated, CRLF line ends, a header row, fields quoted only when needed;
- decimal comma (``55,41``, ``-55,41``), the way French accounting imports and the
  French FEC (Fichier des écritures comptables) write amounts; amounts are the
  snapshot's ``Decimal`` written exactly, never through a float;
- dates ISO 8601 (``2013-07-15``), unambiguous and read as dates by spreadsheets;
- UTF-8 with a byte-order mark: without it, Excel on Windows reads a CSV as
  Windows-1252 and prints "Ã©" for "é" in names and explanations.

Text cells that a spreadsheet would take for a formula (starting with ``=``, ``+``,
``-``, ``@``) get a leading apostrophe, so a debtor's name cannot run as a formula in
the accountant's spreadsheet (CSV injection); amounts are numbers and left as they are.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from decimal import Decimal

from billing.document import InvoiceDoc, PrintedLine

BOM = "\ufeff"

RUN_COLUMNS = (
    "number",
    "kind",
    "cancels",
    "issued_on",
    "due_on",
    "budget",
    "debtor_ref",
    "debtor_name",
    "period",
    "total_before_vat",
    "vat",
    "total",
)

LINE_COLUMNS = (
    "number",
    "line",
    "kind",
    "period",
    "bin_id",
    "volume_l",
    "quantity",
    "unit_price",
    "days",
    "period_days",
    "amount",
    "vat_rate",
    "vat",
    "total",
    "explanation",
)


def run_csv(docs: Iterable[InvoiceDoc]) -> str:
    """One row per document: number, kind, what it cancels, dates, debtor, totals."""
    return _write(RUN_COLUMNS, (_run_row(doc) for doc in docs))


def lines_csv(docs: Iterable[InvoiceDoc]) -> str:
    """One row per printed line, numbered from 1 within its document."""
    rows = (_line_row(doc, i, line) for doc in docs for i, line in enumerate(doc.lines, start=1))
    return _write(LINE_COLUMNS, rows)


def amount(value: Decimal) -> str:
    """``Decimal("-55.41")`` -> ``"-55,41"``: exact, positional, decimal comma."""
    return f"{value:f}".replace(".", ",")


def parse_amount(text: str) -> Decimal:
    """The inverse of ``amount``, for readers of these files (and the tests)."""
    return Decimal(text.replace(",", "."))


def _run_row(doc: InvoiceDoc) -> list[str]:
    return [
        doc.number,
        doc.kind,
        doc.cancels or "",
        doc.issued_on.isoformat(),
        doc.due_on.isoformat(),
        doc.budget,
        _text(doc.debtor.ref),
        _text(doc.debtor.name),
        doc.period,
        amount(doc.total_before_vat),
        amount(doc.total_vat),
        amount(doc.total),
    ]


def _line_row(doc: InvoiceDoc, index: int, line: PrintedLine) -> list[str]:
    return [
        doc.number,
        str(index),
        line.kind,
        line.period,
        _text(line.bin_id or ""),
        _optional(line.volume_l),
        amount(line.quantity),
        amount(line.unit_price),
        _optional(line.days),
        _optional(line.period_days),
        amount(line.amount),
        amount(line.vat_rate),
        amount(line.vat),
        amount(line.total),
        _text(line.explanation),
    ]


def _optional(value: int | None) -> str:
    return "" if value is None else str(value)


def _text(value: str) -> str:
    return "'" + value if value[:1] in ("=", "+", "-", "@") else value


def _write(columns: Sequence[str], rows: Iterable[list[str]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    writer.writerow(columns)
    writer.writerows(rows)
    return BOM + out.getvalue()
