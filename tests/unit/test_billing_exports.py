"""Exports of issued documents: the printed PDF, the accounting CSV, the PES V2 ORMC file."""

from __future__ import annotations

import csv
import io
import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pypdf
import pytest

from billing import document, export_csv, pdf, pes, rules, tariff
from billing.errors import BillingInputError
from billing.model import Account, Correction, Equipment, Lift, Occupancy, Period
from tests.billing_fixtures import ISSUER

HOUSEHOLD = document.Debtor(
    ref="h-1", name="M. Étienne Müller", address=("2 rue des Lilas", "67170 Batzendorf")
)
MANAGER = document.Debtor(
    ref="m-7",
    name="Syndic Œuvre & Cie",
    address=("Résidence des Tilleuls", "4 avenue de la Gare", "67500 Haguenau"),
    kind="manager",
)
BIN = Equipment("bac-1", "d-1", 120, date(2010, 1, 1))


def _at(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 6, tzinfo=UTC)


def _batzendorf(*, language: str = "fr", corrections: int = 0) -> document.InvoiceDoc:
    # The move-in example of docs/billing.md: 25.96 + 9.85 + 19.60 = 55.41.
    lifts = tuple(Lift(_at(date(2013, 4, d)), "bac-1") for d in range(1, 8))
    fixes = tuple(Correction(Decimal("1.00"), "agent", f"geste n° {i}") for i in range(corrections))
    account = Account(
        "h-1", (Occupancy("d-1", date(2013, 3, 15)),), (BIN,), lifts, corrections=fixes
    )
    bill = rules.compute(
        tariff.bundled("batzendorf-2013"), account, Period.semester(2013, 1), language=language
    )
    return document.doc_for(
        bill,
        seq=7,
        issued_on=date(2013, 7, 15),
        due_on=date(2013, 8, 15),
        tariff_name="Batzendorf 2013",
        issuer=ISSUER,
        debtor=HOUSEHOLD,
    )


def _weighed(seq: int = 11) -> document.InvoiceDoc:
    # docs/billing.md weight example: 185.64 before VAT, VAT 10 % 18.56, total 204.20.
    weighed = tuple(
        Lift(_at(date(2024, 1, 3) + timedelta(days=14 * i)), "bac-1", Decimal("27.35"))
        for i in range(14)
    )
    light = Lift(_at(date(2024, 12, 20)), "bac-1", Decimal("8.0"))
    account = Account("h-1", (Occupancy("d-1", date(2020, 1, 1)),), (BIN,), (*weighed, light))
    bill = rules.compute(tariff.bundled("illustrative-weight-2024"), account, Period.year(2024))
    return document.doc_for(
        bill,
        seq=seq,
        issued_on=date(2025, 2, 3),
        due_on=date(2025, 3, 3),
        tariff_name="Exemple pesée 2024",
        issuer=ISSUER,
        debtor=HOUSEHOLD,
    )


def _collective() -> document.InvoiceDoc:
    # A building's bill (1137.70, tests/unit/test_billing_examples.py) split by persons.
    bins = (
        Equipment("A", "BLDG", 660, date(2020, 1, 1)),
        Equipment("B", "BLDG", 660, date(2020, 1, 1)),
    )
    lifts = tuple(
        Lift(_at(date(2024, 1, 2) + timedelta(days=7 * i)), b) for i in range(20) for b in "AB"
    )
    account = Account("m-7", (Occupancy("BLDG", date(2019, 1, 1)),), bins, lifts)
    t = tariff.bundled("illustrative-collective-2024")
    bill = rules.compute(t, account, Period.semester(2024, 2))
    shares = rules.split(bill, [("Appartement 1", Decimal(1)), ("Appartement 2", Decimal(3))])
    return document.doc_for(
        bill,
        seq=12,
        issued_on=date(2025, 2, 3),
        due_on=date(2025, 3, 3),
        tariff_name="Exemple collectif 2024",
        issuer=ISSUER,
        debtor=MANAGER,
        split=shares,
    )


def _credit_note(original: document.InvoiceDoc) -> document.InvoiceDoc:
    return document.credit_note(
        original, seq=8, issued_on=date(2013, 9, 2), due_on=date(2013, 9, 2), reason="déménagé"
    )


def _pages(data: bytes) -> list[str]:
    """Each page's text, whitespace collapsed (explanations wrap over several lines)."""
    reader = pypdf.PdfReader(io.BytesIO(data))
    return [" ".join(page.extract_text().split()) for page in reader.pages]


def _flat(text: str) -> str:
    return " ".join(text.split())


# ---- PDF ------------------------------------------------------------------------------


def test_the_bill_prints_number_basis_lines_legal_mentions_and_the_french_total() -> None:
    doc = _batzendorf()
    (text,) = _pages(pdf.render(doc))
    assert "AVIS DES SOMMES À PAYER" in text
    assert "2013-01-000007" in text
    assert "Communauté de communes d'exemple" in text and "SIRET 20001234500017" in text
    assert "M. Étienne Müller" in text and "67170 Batzendorf" in text
    assert "Délibération n° 2012-45 du 10 décembre 2012" in text
    assert _flat(document.APPEAL_FR) in text
    assert "tribunal judiciaire" in text
    for means in ISSUER.payment:
        assert means in text
    for line in doc.lines:
        assert _flat(line.explanation) in text
    assert "108/181 j" in text  # a fixed part's quantity is its share of the period
    assert "Total à payer 55,41 €" in text
    assert "À payer avant le : 15/08/2013" in text


def test_the_same_document_renders_to_the_same_bytes_dated_on_its_issue_day() -> None:
    doc = _batzendorf()
    first = pdf.render(doc)
    assert pdf.render(doc) == first
    assert pdf.render(_weighed()) != first
    created = pypdf.PdfReader(io.BytesIO(first)).metadata
    assert created is not None and created.creation_date is not None
    assert created.creation_date.date() == doc.issued_on


def test_english_bills_use_english_labels_and_amounts() -> None:
    (text,) = _pages(pdf.render(_batzendorf(language="en")))
    assert "Total due 55.41 EUR" in text
    assert "Pay before: 2013-08-15" in text
    assert "How to appeal" in text


def test_a_long_bill_continues_on_a_new_page_and_the_merged_file_adds_up_pages() -> None:
    long = _batzendorf(corrections=45)
    long_pages = _pages(pdf.render(long))
    assert len(long_pages) >= 2
    assert "(suite)" in long_pages[1]
    assert "Total à payer 100,41 €" in long_pages[-1]  # 55.41 + 45 x 1.00
    docs = [_batzendorf(), long, _credit_note(_batzendorf()), _collective()]
    single = [len(_pages(pdf.render(d))) for d in docs]
    merged = _pages(pdf.render_many(docs))
    assert len(merged) == sum(single)
    starts = [sum(single[:i]) for i in range(len(docs))]
    for doc, first_page in zip(docs, starts, strict=True):
        assert merged[first_page].startswith("Communauté de communes")
        assert doc.number in merged[first_page]


def test_a_credit_note_says_so_and_names_the_invoice_it_cancels() -> None:
    original = _batzendorf()
    (text,) = _pages(pdf.render(_credit_note(original)))
    assert "AVOIR" in text and "AVIS DES SOMMES" not in text.replace("l'avis des sommes", "")
    assert f"annule l'avis des sommes à payer n° {original.number}" in text
    assert "Motif : déménagé" in text
    assert "Total de l'avoir, en votre faveur -55,41 €" in text
    assert "Aucune somme n'est à payer" in text and ISSUER.payment[0] not in text


def test_a_collective_bill_prints_its_split_between_dwellings() -> None:
    doc = _collective()
    (text,) = _pages(pdf.render(doc))
    assert "Répartition entre les logements" in text
    for name, amount in doc.split:
        assert f"{name} {pdf.amount_text(amount)}" in text
    assert sum(a for _, a in doc.split) == doc.total


def test_printing_nothing_is_an_error() -> None:
    with pytest.raises(BillingInputError, match="no document"):
        pdf.render_many([])


# ---- CSV ------------------------------------------------------------------------------


def _rows(text: str) -> list[dict[str, str]]:
    assert text.startswith(export_csv.BOM)
    return list(csv.DictReader(io.StringIO(text[1:], newline=""), delimiter=";"))


def test_the_run_csv_parses_back_and_its_totals_add_up_to_the_cent() -> None:
    docs = [_batzendorf(), _weighed(), _collective(), _credit_note(_batzendorf())]
    rows = _rows(export_csv.run_csv(docs))
    assert [r["number"] for r in rows] == [d.number for d in docs]
    assert rows[0]["total"] == "55,41" and rows[1]["vat"] == "18,56"
    assert rows[3]["kind"] == "credit_note" and rows[3]["cancels"] == docs[0].number
    assert rows[3]["total"] == "-55,41"
    for column, attribute in (("total_before_vat", "total_before_vat"), ("vat", "total_vat")):
        parsed = sum(export_csv.parse_amount(r[column]) for r in rows)
        assert parsed == sum(getattr(d, attribute) for d in docs)
    assert sum(export_csv.parse_amount(r["total"]) for r in rows) == sum(d.total for d in docs)
    assert rows[0]["debtor_name"] == "M. Étienne Müller"
    assert rows[0]["issued_on"] == "2013-07-15"


def test_the_lines_csv_has_one_row_per_printed_line_adding_up_to_each_document() -> None:
    docs = [_batzendorf(), _weighed()]
    rows = _rows(export_csv.lines_csv(docs))
    assert len(rows) == sum(len(d.lines) for d in docs)
    for doc in docs:
        mine = [r for r in rows if r["number"] == doc.number]
        assert [r["line"] for r in mine] == [str(i) for i in range(1, len(doc.lines) + 1)]
        assert sum(export_csv.parse_amount(r["total"]) for r in mine) == doc.total
        assert [r["explanation"] for r in mine] == [x.explanation for x in doc.lines]
    assert rows[0]["days"] == "108" and rows[0]["period_days"] == "181"
    assert rows[-1]["vat_rate"] == "10"


def test_csv_text_cells_cannot_run_as_spreadsheet_formulas() -> None:
    doc = _batzendorf()
    evil = document.Debtor(ref="h-9", name='=HYPERLINK("http://x")', address=())
    rows = _rows(export_csv.run_csv([document.InvoiceDoc(**{**doc.__dict__, "debtor": evil})]))
    assert rows[0]["debtor_name"] == '\'=HYPERLINK("http://x")'


# ---- PES V2 ORMC ----------------------------------------------------------------------


def _parse(data: bytes) -> ET.Element:
    return ET.fromstring(data)  # noqa: S314  (our own output, in a test)


def _v(node: ET.Element, path: str) -> str:
    found = node.find(path)
    assert found is not None, path
    return found.attrib["V"]


def test_the_ormc_file_parses_and_its_totals_and_pieces_match_the_invoices() -> None:
    docs = [_weighed(11), _collective(), _weighed(13)]
    data = pes.ormc_xml(docs, ISSUER, 42, date(2025, 2, 10))
    assert data.startswith(b'<?xml version="1.0" encoding="ISO-8859-1"?>')
    root = _parse(data)
    assert root.tag == f"{{{pes.NS}}}PES_Aller"
    assert _v(root, "Enveloppe/Parametres/TypFic") == "PESORMC"
    assert _v(root, "EnTetePES/IdColl") == ISSUER.siret
    assert _v(root, "EnTetePES/CodBud") == "01"
    block = root.find("PES_RecetteAller/Bordereau/BlocBordereau")
    assert block is not None
    assert _v(block, "TypBord") == "06" and _v(block, "Exer") == "2025"
    assert _v(block, "IdBord") == "0000042"
    pieces = root.findall("PES_RecetteAller/Bordereau/Piece")
    assert int(_v(block, "NbrPce")) == len(pieces) == len(docs)
    assert Decimal(_v(block, "MtBordHt")) == sum(d.total_before_vat for d in docs)
    assert Decimal(_v(block, "MtBordTVA")) == sum(d.total_vat for d in docs)
    lines = [line for p in pieces for line in p.findall("LigneDePiece")]
    assert sum(Decimal(_v(x, "BlocLignePiece/InfoLignePiece/MtHT")) for x in lines) == Decimal(
        _v(block, "MtBordHt")
    )
    assert [_v(p, "BlocPiece/NumeroFacture") for p in pieces] == [d.number for d in docs]
    assert [_v(p, "BlocPiece/TypPce") for p in pieces] == ["15"] * 3
    for element in root.iter():
        if len(element) == 0:  # every value sits in a V attribute
            assert list(element.attrib) == ["V"], element.tag


def test_ormc_values_are_postal_capitals_and_debtors_are_typed() -> None:
    data = pes.ormc_xml([_weighed(), _collective()], ISSUER, 1, date(2025, 2, 10))
    data.decode("ascii")  # accents and signs are folded: the file is plain ASCII
    root = _parse(data)
    tiers = root.findall(".//Tiers")
    assert _v(tiers[0], "InfoTiers/Nom") == "M ETIENNE MULLER"
    assert _v(tiers[0], "InfoTiers/CatTiers") == "01"
    manager = tiers[-1]
    assert _v(manager, "InfoTiers/Nom") == "SYNDIC OEUVRE CIE"
    assert (_v(manager, "InfoTiers/CatTiers"), _v(manager, "InfoTiers/NatJur")) == ("60", "03")
    assert _v(manager, "Adresse/Adr2") == "4 AVENUE DE LA GARE"
    assert (_v(manager, "Adresse/CP"), _v(manager, "Adresse/Ville")) == ("67500", "HAGUENAU")
    assert _v(root, "EnTetePES/LibelleColBud") == "COMMUNAUTE DE COMMUNES D EXEMPLE"


def test_ormc_check_keys_follow_the_modulo_rules() -> None:
    # modulo 11, weights 2, 3, ... from the right: "12" -> 2x2 + 1x3 = 7, 11 - 7 = 4;
    # a remainder of 0 or 1 (key 11 or 10) is written 1.
    assert pes.key_mod11("12") == "4"
    assert pes.key_mod11("0") == "1"
    # modulo 23 as letters without I and O: 46 -> 0 -> A, 31 -> 8 -> J (not I)
    assert (pes.key_mod23("46"), pes.key_mod23("47"), pes.key_mod23("31")) == ("A", "B", "J")
    piece = _parse(pes.ormc_xml([_weighed()], ISSUER, 1, date(2025, 2, 10))).find(".//BlocPiece")
    assert piece is not None
    # NumDette 2025000011, Per 0 (a yearly bill): Cle2 on "25" "0" "00" + 13 digits
    assert (_v(piece, "NumDette"), _v(piece, "Per")) == ("2025000011", "0")
    assert _v(piece, "Cle2") == pes.key_mod23("25" + "0" + "00" + "0002025000011")


def test_ormc_refuses_what_one_bordereau_cannot_hold_naming_the_document() -> None:
    invoice = _batzendorf()
    with pytest.raises(BillingInputError, match="2013-01-000008: a credit note"):
        pes.ormc_xml([invoice, _credit_note(invoice)], ISSUER, 1, date(2013, 9, 5))
    with pytest.raises(BillingInputError, match="one bordereau per year"):
        pes.ormc_xml([invoice, _weighed()], ISSUER, 1, date(2025, 2, 10))
    with pytest.raises(BillingInputError, match="twice"):
        pes.ormc_xml([invoice, invoice], ISSUER, 1, date(2013, 9, 5))
    other = document.Issuer(**{**ISSUER.__dict__, "budget_code": "02"})
    with pytest.raises(BillingInputError, match="budget 01, not"):
        pes.ormc_xml([invoice], other, 1, date(2013, 9, 5))
    no_post = document.Issuer(**{**ISSUER.__dict__, "post_code": ""})
    with pytest.raises(BillingInputError, match=r"issuer\.post_code"):
        pes.ormc_xml([invoice], no_post, 1, date(2013, 9, 5))
    homeless = document.Debtor(ref="h-2", name="X", address=("2 rue des Lilas",))
    bad = document.InvoiceDoc(**{**invoice.__dict__, "debtor": homeless})
    with pytest.raises(BillingInputError, match="h-2 needs a street line"):
        pes.ormc_xml([bad], ISSUER, 1, date(2013, 9, 5))
    with pytest.raises(BillingInputError, match="IdBord"):
        pes.ormc_xml([invoice], ISSUER, 10_000_000, date(2013, 9, 5))
