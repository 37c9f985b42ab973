"""The printed bill (avis des sommes à payer) as PDF: pure, fast, reproducible byte for byte.

``render(doc)`` draws one issued document on A4 pages; ``render_many(docs)`` draws a
whole run into one file for the printer, each document starting on a new page. Both
read only the ``InvoiceDoc`` snapshot (docs/billing.md, "Exports"), so re-rendering a
document years later gives the same bill.

Why ReportLab: it draws straight onto a canvas, registers the fonts once per process
and subsets them cheaply: a one-page bill takes about 12 ms on one core with its C
helpers (``rl_accel``), where fpdf2 parses and subsets the TrueType font again for every
document (50 to 200 ms). Rates measured are in docs/billing.md, "Exports".
Its ``invariant`` mode gives a fixed file ID derived from the content, and the
creation date is set to the issue date, so the same document always gives the same
bytes.

The font is DejaVu Sans (Debian ``fonts-dejavu-core``), embedded and subset, which
covers French (é à ç œ €, the × and − signs of the explanations); where it is not
installed, Bitstream Vera, shipped inside ReportLab, is used instead (it covers the same
characters of a French bill but prints other bytes).
"""

# ruff: noqa: RUF002  (the typographic signs of a printed bill are meant)
from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from functools import cache
from pathlib import Path

import reportlab
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.lib.utils import simpleSplit
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas

from billing.document import InvoiceDoc, PrintedLine
from billing.errors import BillingInputError
from billing.explain import Words
from billing.model import Period

_DEJAVU = Path("/usr/share/fonts/truetype/dejavu")
_VERA = Path(reportlab.__file__).parent / "fonts"
REGULAR = "FoyerSans"
BOLD = "FoyerSans-Bold"

PAGE_W, PAGE_H = A4
LEFT = 20 * mm
RIGHT = PAGE_W - 20 * mm
BOTTOM = 22 * mm  # the footer sits below this line

# Address window of the usual French DL envelope (110 x 220 mm, window 45 x 100 mm on
# the right, 20 mm from the right edge and 15 mm from the bottom): on an A4 sheet folded
# in three it shows the sheet from about 95 to 195 mm across and 50 to 95 mm down. The
# block keeps a few millimetres inside it for the sheet's play in the envelope.
WINDOW_X = 110 * mm
WINDOW_TOP = 55 * mm
WINDOW_W = 80 * mm
WINDOW_LINES = 6

# Table columns: right edges of the number columns; the explanation takes the rest.
_DETAIL_W = 93 * mm
_QTY_R = LEFT + 113 * mm
_UNIT_R = LEFT + 133 * mm
_AMOUNT_R = LEFT + 153 * mm
_VAT_R = RIGHT

_LABELS: dict[str, dict[str, str]] = {
    "fr": {
        "invoice": "AVIS DES SOMMES À PAYER",
        "credit_note": "AVOIR",
        "number": "N°",
        "issued": "Date d'émission",
        "due": "À payer avant le",
        "due_credit": "Date",
        "period": "Période",
        "debtor_ref": "Référence redevable",
        "tariff": "Tarif",
        "siret": "SIRET",
        "cancels": "Cet avoir annule l'avis des sommes à payer n° {cancels}. Motif : {reason}",
        "detail": "Détail du calcul",
        "qty": "Quantité",
        "days": "j",
        "unit": "Prix unitaire",
        "amount": "Montant HT",
        "vat": "TVA",
        "total_before_vat": "Total hors TVA",
        "total_vat": "TVA",
        "total": "Total à payer",
        "total_credit": "Total de l'avoir, en votre faveur",
        "split": "Répartition entre les logements",
        "legal": "Base légale : {deliberation}. Tarif appliqué : {tariff}.",
        "payment": "Modes de paiement",
        "no_payment": "Aucune somme n'est à payer au titre de cet avoir.",
        "treasury": "Comptable public chargé du recouvrement : {treasury}",
        "appeal": "Voies et délais de recours",
        "footer": "{number} — page {page}",
        "continued": "{title} n° {number} (suite)",
    },
    "en": {
        "invoice": "BILL (AVIS DES SOMMES À PAYER)",
        "credit_note": "CREDIT NOTE",
        "number": "No.",
        "issued": "Issued on",
        "due": "Pay before",
        "due_credit": "Date",
        "period": "Period",
        "debtor_ref": "Customer reference",
        "tariff": "Tariff",
        "siret": "SIRET",
        "cancels": "This credit note cancels bill no. {cancels}. Reason: {reason}",
        "detail": "Basis of calculation",
        "qty": "Quantity",
        "days": "d",
        "unit": "Unit price",
        "amount": "Amount",
        "vat": "VAT",
        "total_before_vat": "Total before VAT",
        "total_vat": "VAT",
        "total": "Total due",
        "total_credit": "Total credited to you",
        "split": "Split between the dwellings",
        "legal": "Legal basis: {deliberation}. Tariff applied: {tariff}.",
        "payment": "How to pay",
        "no_payment": "Nothing is to be paid for this credit note.",
        "treasury": "Public accountant collecting the sum: {treasury}",
        "appeal": "How to appeal",
        "footer": "{number} — page {page}",
        "continued": "{title} no. {number} (continued)",
    },
}


@cache
def fonts() -> tuple[str, str]:
    """Register the embedded fonts once per process; returns the files used."""
    regular, bold = _DEJAVU / "DejaVuSans.ttf", _DEJAVU / "DejaVuSans-Bold.ttf"
    if not (regular.is_file() and bold.is_file()):
        regular, bold = _VERA / "Vera.ttf", _VERA / "VeraBd.ttf"
    pdfmetrics.registerFont(TTFont(REGULAR, str(regular)))
    pdfmetrics.registerFont(TTFont(BOLD, str(bold)))
    return str(regular), str(bold)


def render(doc: InvoiceDoc) -> bytes:
    """One issued document as a PDF file."""
    return render_many([doc])


def render_many(docs: Sequence[InvoiceDoc]) -> bytes:
    """Documents into one file for printing, each starting on a new page.

    The file's creation date is the latest issue date, so the same run gives the same
    bytes whenever it is printed again.
    """
    if not docs:
        raise BillingInputError("no document to print")
    fonts()
    out = io.BytesIO()
    canvas = Canvas(out, pagesize=A4, invariant=1, pageCompression=1)
    stamp = _pdf_date(max(doc.issued_on for doc in docs))
    canvas.setDateFormatter(lambda *_: stamp)
    canvas.setCreator("Foyer")
    canvas.setTitle(docs[0].number if len(docs) == 1 else f"{len(docs)} documents")
    canvas.setAuthor(docs[0].issuer.name)
    for doc in docs:
        _Sheet(canvas, doc).draw()
    canvas.save()
    return out.getvalue()


def _pdf_date(day: date) -> str:
    return f"D:{day:%Y%m%d}000000+00'00'"


@dataclass
class _Sheet:
    """Draws one document; ``y`` is the distance from the top of the page, in points."""

    canvas: Canvas
    doc: InvoiceDoc
    y: float = 0.0
    page: int = 1

    def __post_init__(self) -> None:
        self.words = Words(self.doc.language)
        self.labels = _LABELS[self.doc.language]

    def draw(self) -> None:
        self._issuer()
        self._debtor()
        self._references()
        self.y = 100 * mm
        if self.doc.kind == "credit_note":
            self._paragraph(
                self.labels["cancels"].format(cancels=self.doc.cancels, reason=self.doc.reason),
                BOLD,
                9.5,
            )
            self.y += 2 * mm
        self._table()
        self._totals()
        if self.doc.split:
            self._split()
        self._mentions()
        self._footer()
        self.canvas.showPage()

    # ---- blocks -----------------------------------------------------------------------

    def _issuer(self) -> None:
        issuer = self.doc.issuer
        self.y = 15 * mm
        self._line(LEFT, issuer.name, BOLD, 11)
        lines = [issuer.budget_name, *issuer.address, f"{self.labels['siret']} {issuer.siret}"]
        for text in lines:
            self._line(LEFT, text, REGULAR, 8.5)

    def _debtor(self) -> None:
        debtor = self.doc.debtor
        lines = [debtor.name, *debtor.address][:WINDOW_LINES]
        self.y = WINDOW_TOP
        for i, text in enumerate(lines):
            font = BOLD if i == 0 else REGULAR
            self._line(WINDOW_X, _fit(text, font, 10, WINDOW_W), font, 10, leading=4.6 * mm)

    def _references(self) -> None:
        doc, labels, words = self.doc, self.labels, self.words
        self.y = 55 * mm
        self._line(LEFT, self._title(), BOLD, 12, leading=7 * mm)
        due = labels["due_credit"] if doc.kind == "credit_note" else labels["due"]
        rows = [
            (labels["number"], doc.number),
            (labels["issued"], words.day(doc.issued_on)),
            (due, words.day(doc.due_on)),
            (labels["period"], words.period(Period.parse(doc.period))),
            (labels["debtor_ref"], doc.debtor.ref),
            (labels["tariff"], doc.tariff),
        ]
        for label, value in rows:
            self._text(LEFT, f"{label} :" if doc.language == "fr" else f"{label}:", REGULAR, 9)
            self._text(LEFT + 36 * mm, _fit(value, BOLD, 9, 48 * mm), BOLD, 9)
            self.y += 4.6 * mm

    def _title(self) -> str:
        return self.labels[self.doc.kind]

    def _table(self) -> None:
        self._table_header()
        for line in self.doc.lines:
            detail = simpleSplit(line.explanation, REGULAR, 8, _DETAIL_W)
            height = max(len(detail), 1) * 3.6 * mm + 1.6 * mm
            if self._room() < height:
                self._new_page()
                self._table_header()
            top = self.y
            for text in detail:
                self._text(LEFT, text, REGULAR, 8)
                self.y += 3.6 * mm
            self.y = top
            self._right(_QTY_R, self._quantity(line), REGULAR, 8)
            self._right(_UNIT_R, self.words.unit_price(line.unit_price), REGULAR, 8)
            self._right(_AMOUNT_R, self.words.money(line.amount), REGULAR, 8)
            self._right(_VAT_R, self.words.money(line.vat), REGULAR, 8)
            self.y = top + height
            self._rule(0.3)

    def _quantity(self, line: PrintedLine) -> str:
        # A fixed part's quantity is its days: printed as the fraction of the period it
        # is multiplied by, so the columns read as the explanation does.
        if line.kind.endswith("_fixed") and line.days is not None and line.period_days:
            return f"{line.days}/{line.period_days} {self.labels['days']}"
        return self.words.number(line.quantity)

    def _table_header(self) -> None:
        labels = self.labels
        self.y += 2 * mm
        self._text(LEFT, labels["detail"], BOLD, 8)
        self._right(_QTY_R, labels["qty"], BOLD, 8)
        self._right(_UNIT_R, labels["unit"], BOLD, 8)
        self._right(_AMOUNT_R, labels["amount"], BOLD, 8)
        self._right(_VAT_R, labels["vat"], BOLD, 8)
        self.y += 1.5 * mm
        self._rule(0.8)
        self.y += 3.2 * mm

    def _totals(self) -> None:
        doc, labels = self.doc, self.labels
        total = labels["total_credit"] if doc.kind == "credit_note" else labels["total"]
        rows = [
            (labels["total_before_vat"], doc.total_before_vat, REGULAR, 9.0),
            (labels["total_vat"], doc.total_vat, REGULAR, 9.0),
            (total, doc.total, BOLD, 11.0),
        ]
        self._ensure(len(rows) * 6 * mm + 4 * mm)
        self.y += 3 * mm
        for label, amount, font, size in rows:
            self._right(_AMOUNT_R - 25 * mm, label, font, size)
            self._right(_VAT_R, self.words.money(amount), font, size)
            self.y += 5.5 * mm

    def _split(self) -> None:
        self._heading(self.labels["split"])
        for name, amount in self.doc.split:
            self._ensure(5 * mm)
            self._text(LEFT, _fit(name, REGULAR, 9, 110 * mm), REGULAR, 9)
            self._right(_VAT_R, self.words.money(amount), REGULAR, 9)
            self.y += 4.4 * mm

    def _mentions(self) -> None:
        doc, labels, issuer = self.doc, self.labels, self.doc.issuer
        self.y += 3 * mm
        self._paragraph(
            labels["legal"].format(deliberation=issuer.deliberation, tariff=doc.tariff),
            REGULAR,
            8.5,
        )
        self._heading(labels["payment"])
        if doc.kind == "credit_note":
            self._paragraph(labels["no_payment"], REGULAR, 8.5)
        else:
            for means in issuer.payment:
                self._paragraph(means, REGULAR, 8.5)
        if issuer.treasury:
            self._paragraph(labels["treasury"].format(treasury=issuer.treasury), REGULAR, 8.5)
        self._heading(labels["appeal"])
        self._paragraph(issuer.appeal, REGULAR, 8.5)

    # ---- primitives -------------------------------------------------------------------

    def _heading(self, text: str) -> None:
        self._ensure(12 * mm)
        self.y += 2.5 * mm
        self._line(LEFT, text, BOLD, 9.5, leading=5 * mm)

    def _paragraph(self, text: str, font: str, size: float) -> None:
        for part in simpleSplit(text, font, size, RIGHT - LEFT):
            self._ensure(size * 0.45 * mm)
            self._line(LEFT, part, font, size, leading=size * 0.45 * mm)

    def _line(self, x: float, text: str, font: str, size: float, leading: float = 0) -> None:
        self._text(x, text, font, size)
        self.y += leading or size * 0.42 * mm

    def _text(self, x: float, text: str, font: str, size: float) -> None:
        self.canvas.setFont(font, size)
        self.canvas.drawString(x, self._baseline(size), text)

    def _right(self, x: float, text: str, font: str, size: float) -> None:
        self.canvas.setFont(font, size)
        self.canvas.drawRightString(x, self._baseline(size), text)

    def _rule(self, width: float) -> None:
        y = PAGE_H - self.y + 0.8 * mm
        self.canvas.setLineWidth(width)
        self.canvas.line(LEFT, y, RIGHT, y)

    def _baseline(self, size: float) -> float:
        return PAGE_H - self.y - size * 0.8

    def _room(self) -> float:
        return PAGE_H - BOTTOM - self.y

    def _ensure(self, height: float) -> None:
        if self._room() < height:
            self._new_page()

    def _new_page(self) -> None:
        self._footer()
        self.canvas.showPage()
        self.page += 1
        self.y = 15 * mm
        title = self.labels["continued"].format(title=self._title(), number=self.doc.number)
        self._line(LEFT, title, BOLD, 10, leading=8 * mm)

    def _footer(self) -> None:
        text = self.labels["footer"].format(number=self.doc.number, page=self.page)
        self.canvas.setFont(REGULAR, 7.5)
        self.canvas.drawRightString(RIGHT, 12 * mm, text)


def _fit(text: str, font: str, size: float, width: float) -> str:
    """Cut a single-line field to its box, with an ellipsis, rather than overprint."""
    if pdfmetrics.stringWidth(text, font, size) <= width:
        return text
    while text and pdfmetrics.stringWidth(text + "…", font, size) > width:
        text = text[:-1]
    return text + "…"


def amount_text(value: Decimal, language: str = "fr") -> str:
    """An amount as the PDF prints it (``55,41 €``), for callers and tests."""
    return Words(language).money(value)
