"""A billing run as a PES V2 "ORMC" file for the public treasury (DGFiP, Hélios) (pure).

``ormc_xml(docs, issuer, bordereau_id, created_on)`` writes one ``PES_Aller`` holding a
``PES_RecetteAller`` with one ``Bordereau`` of type 06, "ordre de recette
multi-créanciers": one ``Piece`` (titre ORMC, an article of the role) per invoice, one
``LigneDePiece`` per VAT rate of the invoice (a sub-article: PES V2 subdivides a title
by imputation, not by printed line; the detail stays on the bill), and the debtor as
the line's ``Tiers``.

What was checked, against which sources, and what could not be checked against the
DGFiP schema is listed in docs/billing.md, "Exports". In short: the element names, their
order and the codes come from public producers of this file and a public transcription
of the PES V2 recette specification, not from the XSD itself, which is not reachable
here. Values that Hélios would reject are refused here with an error naming the
document, rather than written into a file the treasury bounces back weeks later.
"""

from __future__ import annotations

import re
import unicodedata
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from datetime import date
from decimal import Decimal

from billing.document import InvoiceDoc, Issuer
from billing.errors import BillingInputError

NS = "http://www.minefi.gouv.fr/cp/helios/pes_v2/Rev0/aller"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
ENCODING = "ISO-8859-1"  # what the known producers declare; the values are ASCII anyway

TYP_FIC = "PESORMC"  # Enveloppe/Parametres/TypFic of an ORMC file
TYP_BORD = "06"  # ordres de recette multi-créanciers (ORMC)
TYP_PCE = "15"  # titre ORMC
NAT_PCE = "01"  # fonctionnement
NATURE = "588"  # "pour les titres ORMC : proposition de valorisation à 588"
TYP_TIERS = "01"  # débiteur principal
# CatTiers / NatJur pairs: a household is a natural person, a private individual; a
# building's manager (syndic, landlord) is taken as a private company.
TIERS_CODES = {"person": ("01", "01"), "manager": ("60", "03")}

_CENT = Decimal("0.01")
_MAX_AMOUNT = Decimal("999999999999.99")  # 12 digits before the point
_POSTCODE = re.compile(r"^\s*(\d{5})\s+(\S.*)$")
_LIGATURES = str.maketrans({"Œ": "OE", "œ": "OE", "Æ": "AE", "æ": "AE", "ß": "SS"})


def ormc_xml(
    docs: Sequence[InvoiceDoc],
    issuer: Issuer,
    bordereau_id: int,
    created_on: date,
    *,
    product_code: str = "REOM",
    software: str = "Foyer",
) -> bytes:
    """The PES V2 ORMC file of ``docs``, all invoices of ``issuer``'s budget and one year.

    ``bordereau_id`` is the role number (IdBord, 7 digits, sequential per budget, year and
    type in Hélios); ``product_code`` the local product code (CodProdLoc) the accountant
    maps to the national product in Hélios.
    """
    _check_issuer(issuer)
    year = _check_docs(docs, issuer)
    if not 0 < bordereau_id <= 9_999_999:
        raise BillingInputError(f"bordereau id {bordereau_id}: 1 to 9999999 (IdBord, 7 digits)")
    if not re.fullmatch(r"[0-9A-Za-z]{1,4}", product_code):
        raise BillingInputError(f"product code {product_code!r}: 1 to 4 letters or digits")
    id_bord = f"{bordereau_id:07d}"
    pieces = [(doc, _imputations(doc)) for doc in docs]
    total_ht = sum((ht for _, lines in pieces for _, ht, _ in lines), Decimal("0.00"))
    total_vat = sum((vat for _, lines in pieces for _, _, vat in lines), Decimal("0.00"))

    root = ET.Element("n:PES_Aller", {"xmlns:n": NS, "xmlns:xsi": XSI})
    root.set("xsi:schemaLocation", f"{NS} PES_Aller.xsd")
    _envelope(root, f"ORMC{year}{id_bord}.xml", software)
    _header(root, issuer, created_on)
    recette = ET.SubElement(root, "PES_RecetteAller")
    head = ET.SubElement(recette, "EnTeteRecette")
    _v(head, "IdVer", "2")
    _v(head, "InfoDematerialisee", "0")  # 1 needs an electronic signature of the bordereau
    bordereau = ET.SubElement(recette, "Bordereau")
    block = ET.SubElement(bordereau, "BlocBordereau")
    _v(block, "Exer", str(year))
    _v(block, "IdBord", id_bord)
    _v(block, "DteBordEm", created_on.isoformat())
    _v(block, "TypBord", TYP_BORD)
    _v(block, "NbrPce", str(len(pieces)))
    _v(block, "MtBordHt", _amount(total_ht))
    if total_vat:
        _v(block, "MtBordTVA", _amount(total_vat))
    _v(block, "DteAsp", created_on.isoformat())
    periods = " ".join(sorted({doc.period for doc in docs}))
    _v(block, "Objet", _text(f"Redevance incitative {periods}", 160))
    for index, (doc, lines) in enumerate(pieces, start=1):
        _piece(bordereau, doc, lines, index, id_bord, issuer, product_code)
    ET.indent(root, space="  ")
    body = ET.tostring(root, encoding="unicode")
    declaration = f'<?xml version="1.0" encoding="{ENCODING}"?>\n'
    return (declaration + body + "\n").encode(ENCODING, errors="xmlcharrefreplace")


# ---- blocks -------------------------------------------------------------------------


def _envelope(root: ET.Element, file_name: str, software: str) -> None:
    envelope = ET.SubElement(root, "Enveloppe")
    params = ET.SubElement(envelope, "Parametres")
    _v(params, "Version", "2")
    _v(params, "TypFic", TYP_FIC)
    _v(params, "NomFic", file_name)
    sender = ET.SubElement(envelope, "Emetteur")
    _v(sender, "Sigle", _text(software, 32))
    _v(sender, "Adresse", _text(software, 38))


def _header(root: ET.Element, issuer: Issuer, created_on: date) -> None:
    head = ET.SubElement(root, "EnTetePES")
    _v(head, "DteStr", created_on.isoformat())
    _v(head, "IdPost", issuer.post_code)
    _v(head, "IdColl", issuer.siret)
    _v(head, "CodCol", issuer.collectivity_code)
    _v(head, "CodBud", issuer.budget_code)
    _v(head, "LibelleColBud", _text(issuer.name, 38))


def _piece(
    bordereau: ET.Element,
    doc: InvoiceDoc,
    lines: list[tuple[Decimal, Decimal, Decimal]],
    index: int,
    id_bord: str,
    issuer: Issuer,
    product_code: str,
) -> None:
    piece = ET.SubElement(bordereau, "Piece")
    block = ET.SubElement(piece, "BlocPiece")
    debt, period = _debt_number(doc), _period_code(doc)
    year2 = f"{doc.year % 100:02d}"
    _v(block, "IdPce", str(index))  # the article's number in the role
    _v(block, "TypPce", TYP_PCE)
    _v(block, "NatPce", NAT_PCE)
    _v(block, "ObjPce", _text(f"Redevance incitative {doc.period} avis {doc.number}", 160))
    _v(block, "NumDette", debt)
    _v(block, "Per", period)
    _v(block, "Cle1", key_mod11(issuer.collectivity_code + id_bord + year2 + period + debt))
    _v(block, "Cle2", key_mod23(year2 + period + "00" + debt.zfill(13)))
    _v(block, "NumeroFacture", doc.number[:20])
    for line_no, (rate, ht, vat) in enumerate(lines, start=1):
        line = ET.SubElement(piece, "LigneDePiece")
        info = ET.SubElement(ET.SubElement(line, "BlocLignePiece"), "InfoLignePiece")
        _v(info, "IdLigne", str(line_no))
        subject = f"{doc.tariff} {doc.period}" + (f" TVA {rate:f} %" if rate else "")
        _v(info, "ObjLignePce", _text(subject, 160))
        _v(info, "CodProdLoc", product_code)
        _v(info, "Nature", NATURE)
        _v(info, "Majo", "0")
        _v(info, "TvaIntraCom", "0")
        _v(info, "MtHT", _amount(ht))
        if vat:
            _v(info, "MtTVA", _amount(vat))
        _tiers(line, doc)


def _tiers(line: ET.Element, doc: InvoiceDoc) -> None:
    debtor = doc.debtor
    street, postcode, town = _address(doc)
    category, legal = TIERS_CODES[debtor.kind]
    tiers = ET.SubElement(line, "Tiers")
    info = ET.SubElement(tiers, "InfoTiers")
    _v(info, "CatTiers", category)
    _v(info, "NatJur", legal)
    _v(info, "TypTiers", TYP_TIERS)
    _v(info, "Nom", _text(debtor.name, 38))
    address = ET.SubElement(tiers, "Adresse")
    _v(address, "TypAdr", "1")  # principal
    _v(address, "Adr2", _text(street, 38))
    _v(address, "CP", postcode)
    _v(address, "Ville", _text(town, 38))
    _v(address, "CodRes", "0")  # resident in France


# ---- values -------------------------------------------------------------------------


def _imputations(doc: InvoiceDoc) -> list[tuple[Decimal, Decimal, Decimal]]:
    """(VAT rate, amount before VAT, VAT) per rate; zero groups left out (Hélios refuses
    a line of 0,00), negative ones refused (an ORMC line cannot carry a credit)."""
    groups: dict[Decimal, tuple[Decimal, Decimal]] = {}
    for line in doc.lines:
        ht, vat = groups.get(line.vat_rate, (Decimal("0.00"), Decimal("0.00")))
        groups[line.vat_rate] = (ht + line.amount, vat + line.vat)
    out = [(rate, ht, vat) for rate, (ht, vat) in sorted(groups.items()) if ht or vat]
    for rate, ht, vat in out:
        if ht <= 0 or vat < 0:
            raise BillingInputError(
                f"{doc.number}: the lines at VAT {rate:f} % add up to {ht:f} (VAT {vat:f}); "
                "an ORMC line must be positive"
            )
    if not out:
        raise BillingInputError(f"{doc.number}: nothing to collect (total 0.00)")
    return out


def _debt_number(doc: InvoiceDoc) -> str:
    """NumDette (digits, at most 15): the year and the number in the budget's series."""
    text = f"{doc.year}{doc.seq:06d}"
    if len(text) > 15:
        raise BillingInputError(f"{doc.number}: sequence {doc.seq} too long for NumDette")
    return text


def _period_code(doc: InvoiceDoc) -> str:
    """Per (one digit): the half-year of a semestrial bill, 0 for a yearly one."""
    _, _, half = doc.period.partition("-S")
    return half if half in ("1", "2") else "0"


def _address(doc: InvoiceDoc) -> tuple[str, str, str]:
    """(street, postcode, town) from the debtor's printed address lines."""
    lines = [x for x in doc.debtor.address if x.strip()]
    for i in range(len(lines) - 1, 0, -1):
        match = _POSTCODE.match(lines[i])
        if match:
            return lines[i - 1], match.group(1), match.group(2)
    raise BillingInputError(
        f"{doc.number}: debtor {doc.debtor.ref} needs a street line and a '12345 Town' line "
        f"for the treasury (address {list(doc.debtor.address)!r})"
    )


def key_mod11(digits: str) -> str:
    """Cle1: weights 2..7 from the right, 11 - sum mod 11, 10 and 11 written 1.

    As computed by Noethys (UTILS_Pes.GetCle_modulo11); non-digits count as 0.
    """
    total = sum(
        (int(c) if c.isdigit() else 0) * (2 + i % 6) for i, c in enumerate(reversed(digits))
    )
    key = 11 - total % 11
    return str(1 if key > 9 else key)


def key_mod23(digits: str) -> str:
    """Cle2: (number mod 23) as a letter of A..Y without I, O (and Z)."""
    return "ABCDEFGHJKLMNPQRSTUVWXY"[int(digits) % 23]


def _amount(value: Decimal) -> str:
    if value != value.quantize(_CENT) or not 0 <= value <= _MAX_AMOUNT:
        raise BillingInputError(f"amount {value}: PES V2 writes 0.00 to 999999999999.99")
    return f"{value:.2f}"


def _text(value: str, limit: int) -> str:
    """Upper-case ASCII letters, digits, spaces and hyphens, cut to ``limit``.

    Postal-norm capitals without accents, as the known producers write names and
    objects; other signs (apostrophes, commas, €) become spaces.
    """
    plain = unicodedata.normalize("NFKD", value.translate(_LIGATURES))
    ascii_only = "".join(c for c in plain if not unicodedata.combining(c)).upper()
    cleaned = re.sub(r"[^A-Z0-9 -]+", " ", ascii_only)
    return " ".join(cleaned.split())[:limit].strip()


def _v(parent: ET.Element, tag: str, value: str) -> ET.Element:
    """PES V2 carries every value in a ``V`` attribute: ``<Exer V="2013"/>``."""
    return ET.SubElement(parent, tag, {"V": value})


# ---- checks -------------------------------------------------------------------------

_ISSUER_CODES = (
    ("post_code", "IdPost", r"\d{6,7}|02[AB]\d{3,4}", "the accountant's codique, 6 or 7 digits"),
    ("siret", "IdColl", r"\d{14}", "14 digits"),
    ("collectivity_code", "CodCol", r"\d{3}", "3 digits"),
    ("budget_code", "CodBud", r"[0-9A-Z][0-9]", "2 characters, e.g. 01"),
)


def _check_issuer(issuer: Issuer) -> None:
    for field, tag, pattern, expected in _ISSUER_CODES:
        value = getattr(issuer, field)
        if not re.fullmatch(pattern, value):
            raise BillingInputError(
                f"issuer.{field} {value!r}: PES V2 {tag} needs {expected} (docs/billing.md)"
            )


def _check_docs(docs: Sequence[InvoiceDoc], issuer: Issuer) -> int:
    """The one budget year of the bordereau; refuses what one ORMC bordereau cannot hold."""
    if not docs:
        raise BillingInputError("an ORMC bordereau holds at least one invoice")
    if len(docs) > 99_999:
        raise BillingInputError(f"{len(docs)} invoices: a bordereau holds at most 99999")
    seen: set[str] = set()
    for doc in docs:
        if doc.kind != "invoice":
            raise BillingInputError(
                f"{doc.number}: a credit note is not an ORMC title; the treasury takes it "
                "as an annulation-réduction (TypBord 02), which this export does not write"
            )
        if (doc.issuer.siret, doc.budget) != (issuer.siret, issuer.budget_code):
            raise BillingInputError(
                f"{doc.number}: issued by {doc.issuer.siret} budget {doc.budget}, "
                f"not {issuer.siret} budget {issuer.budget_code}"
            )
        if doc.number in seen:
            raise BillingInputError(f"{doc.number}: twice in the bordereau")
        seen.add(doc.number)
    years = {doc.year for doc in docs}
    if len(years) != 1:
        raise BillingInputError(f"invoices of years {sorted(years)}: one bordereau per year")
    return years.pop()
