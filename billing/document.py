"""The issued document (avis des sommes à payer): what is numbered, stored, printed (pure).

An ``InvoiceDoc`` is a snapshot: everything printed on the bill, fixed at issue time
(issuer, debtor, lines as computed, totals, legal mentions). It is stored once as its
canonical JSON and never rewritten; the PDF, the CSV and the treasury export are all
rendered from it, so a re-export years later prints the same bill. Corrections are
credit notes (``kind="credit_note"``, negative amounts, ``cancels`` = the number
they cancel), never edits.

Numbering: one continuous series per budget and calendar year of issue, without
gaps (``{year}-{budget}-{seq:06d}``); the registry hands out ``seq`` in the same
transaction that stores the document, so a failed issue leaves no hole.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal
from typing import Any, Literal

from billing.errors import BillingInputError, TariffError
from billing.model import Bill, LineTotals

DocKind = Literal["invoice", "credit_note"]
DebtorKind = Literal["person", "manager"]
SCHEMA = 1  # of the stored JSON; bump when a field changes meaning

# The appeal route printed on every bill. The incentive fee (REOM/RI) pays for a public
# industrial and commercial service, so disputes go to the judicial court, within two
# months of receiving the bill (CGCT L1617-5 2°).
APPEAL_FR = (
    "Vous pouvez contester cette somme dans un délai de deux mois suivant la réception "
    "du présent avis, en saisissant le tribunal judiciaire compétent "
    "(article L1617-5 du code général des collectivités territoriales)."
)


@dataclass(frozen=True)
class Issuer:
    """The territory issuing the bill, for one budget (e.g. the waste annex budget)."""

    name: str
    budget_code: str  # printed and used in the number series; PES V2 CodBud
    budget_name: str
    siret: str  # 14 digits; PES V2 IdColl
    address: tuple[str, ...]
    deliberation: str  # legal basis: the tariff deliberation, number and date
    payment: tuple[str, ...]  # payment means, one per printed line
    treasury: str = ""  # the public accountant who collects (poste comptable)
    collectivity_code: str = ""  # PES V2 CodCol
    post_code: str = ""  # PES V2 IdPost (poste comptable)
    appeal: str = APPEAL_FR


@dataclass(frozen=True)
class Debtor:
    """Who owes: a household, or a building's manager for collective housing."""

    ref: str  # household id or manager id in the registry
    name: str
    address: tuple[str, ...]
    kind: DebtorKind = "person"


@dataclass(frozen=True)
class PrintedLine:
    kind: str
    period: str
    explanation: str
    quantity: Decimal
    unit_price: Decimal
    amount: Decimal  # before VAT
    vat_rate: Decimal
    vat: Decimal
    bin_id: str | None = None
    volume_l: int | None = None
    days: int | None = None
    period_days: int | None = None

    @property
    def total(self) -> Decimal:
        return self.amount + self.vat


@dataclass(frozen=True)
class InvoiceDoc(LineTotals):
    kind: DocKind
    number: str
    year: int
    budget: str
    seq: int
    issued_on: date
    due_on: date
    period: str  # "2013-S1" or "2013"
    tariff: str  # the tariff's name, for the legal basis
    issuer: Issuer
    debtor: Debtor
    lines: tuple[PrintedLine, ...]
    language: str = "fr"
    cancels: str | None = None  # credit note: the number of the invoice it cancels
    reason: str | None = None  # credit note: why (required)
    run_id: int | None = None
    split: tuple[tuple[str, Decimal], ...] = field(default=())

    def __post_init__(self) -> None:
        if self.kind == "credit_note" and not (self.cancels and self.reason):
            raise BillingInputError("a credit note names the invoice it cancels and why")


def number(year: int, budget: str, seq: int) -> str:
    return f"{year}-{budget}-{seq:06d}"


def printed_lines(bill: Bill) -> tuple[PrintedLine, ...]:
    return tuple(
        PrintedLine(
            kind=line.kind.value,
            period=line.period.label,
            explanation=line.explanation,
            quantity=line.quantity,
            unit_price=line.unit_price,
            amount=line.amount,
            vat_rate=line.vat_rate,
            vat=line.vat,
            bin_id=line.bin_id,
            volume_l=line.volume_l,
            days=line.days,
            period_days=line.period_days,
        )
        for line in bill.lines
    )


def credit_note(
    original: InvoiceDoc, *, seq: int, issued_on: date, due_on: date, reason: str
) -> InvoiceDoc:
    """The credit note cancelling ``original`` in full: every line negated."""
    negated = tuple(
        PrintedLine(
            **{**_line_fields(line), "amount": -line.amount, "vat": -line.vat},
        )
        for line in original.lines
    )
    # the same budget, period, tariff, issuer, debtor, language and run as the original
    return replace(
        original,
        kind="credit_note",
        number=number(issued_on.year, original.budget, seq),
        year=issued_on.year,
        seq=seq,
        issued_on=issued_on,
        due_on=due_on,
        lines=negated,
        cancels=original.number,
        reason=reason,
        split=tuple((name, -amount) for name, amount in original.split),
    )


def _line_fields(line: PrintedLine) -> dict[str, Any]:
    return {k: getattr(line, k) for k in PrintedLine.__dataclass_fields__}


# ---- canonical JSON: amounts as strings, keys sorted, so the hash is stable --------


def to_json(doc: InvoiceDoc) -> str:
    return json.dumps(_as_dict(doc), ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def digest(doc: InvoiceDoc) -> str:
    """SHA-256 of the canonical JSON: stored next to it, checked on every read."""
    return hashlib.sha256(to_json(doc).encode()).hexdigest()


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def _as_dict(doc: InvoiceDoc) -> dict[str, Any]:
    out: dict[str, Any] = {"schema": SCHEMA}
    for name in InvoiceDoc.__dataclass_fields__:
        value = getattr(doc, name)
        if name in ("issuer", "debtor"):
            value = {k: _plain(getattr(value, k)) for k in type(value).__dataclass_fields__}
        elif name == "lines":
            value = [{k: _plain(v) for k, v in _line_fields(line).items()} for line in value]
        out[name] = _plain(value)
    return out


def from_json(text: str) -> InvoiceDoc:
    raw = json.loads(text)
    if raw.get("schema") != SCHEMA:
        raise BillingInputError(f"invoice document schema {raw.get('schema')!r} is not {SCHEMA}")
    return InvoiceDoc(
        kind=raw["kind"],
        number=raw["number"],
        year=int(raw["year"]),
        budget=raw["budget"],
        seq=int(raw["seq"]),
        issued_on=date.fromisoformat(raw["issued_on"]),
        due_on=date.fromisoformat(raw["due_on"]),
        period=raw["period"],
        tariff=raw["tariff"],
        issuer=_issuer(raw["issuer"]),
        debtor=_debtor(raw["debtor"]),
        lines=tuple(_line(x) for x in raw["lines"]),
        language=raw["language"],
        cancels=raw["cancels"],
        reason=raw["reason"],
        run_id=raw["run_id"],
        split=tuple((name, Decimal(amount)) for name, amount in raw["split"]),
    )


def _issuer(raw: Mapping[str, Any]) -> Issuer:
    tuples = {"address", "payment"}
    values: dict[str, Any] = {k: tuple(v) if k in tuples else v for k, v in raw.items()}
    return Issuer(**values)


def _debtor(raw: Mapping[str, Any]) -> Debtor:
    return Debtor(ref=raw["ref"], name=raw["name"], address=tuple(raw["address"]), kind=raw["kind"])


_DECIMALS = ("quantity", "unit_price", "amount", "vat_rate", "vat")


def _line(raw: Mapping[str, Any]) -> PrintedLine:
    values: dict[str, Any] = {k: Decimal(v) if k in _DECIMALS else v for k, v in raw.items()}
    return PrintedLine(**values)


def issuer_from_toml(raw: Mapping[str, Any], source: str) -> Issuer:
    """The ``[issuer]`` table of a territory's billing file (docs/billing.md)."""
    required = ("name", "budget_code", "budget_name", "siret", "address", "deliberation", "payment")
    missing = [k for k in required if k not in raw]
    if missing:
        raise TariffError(source, f"issuer.{missing[0]}", "required")
    unknown = set(raw) - set(Issuer.__dataclass_fields__)
    if unknown:
        raise TariffError(source, f"issuer.{sorted(unknown)[0]}", "unknown key")
    siret = str(raw["siret"])
    if not (len(siret) == 14 and siret.isdigit()):
        raise TariffError(source, "issuer.siret", "14 digits expected")
    values: dict[str, Any] = {}
    for k, v in raw.items():
        if k in ("address", "payment"):
            if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
                raise TariffError(source, f"issuer.{k}", "a list of strings expected")
            values[k] = tuple(v)
        elif not isinstance(v, str):
            raise TariffError(source, f"issuer.{k}", "a string expected")
        else:
            values[k] = v
    return Issuer(**values)


def doc_for(
    bill: Bill,
    *,
    seq: int,
    issued_on: date,
    due_on: date,
    tariff_name: str,
    issuer: Issuer,
    debtor: Debtor,
    run_id: int | None = None,
    split: Sequence[tuple[str, Decimal]] = (),
) -> InvoiceDoc:
    """The invoice for a computed bill, numbered ``seq`` in its budget's yearly series."""
    return InvoiceDoc(
        kind="invoice",
        number=number(issued_on.year, issuer.budget_code, seq),
        year=issued_on.year,
        budget=issuer.budget_code,
        seq=seq,
        issued_on=issued_on,
        due_on=due_on,
        period=bill.period.label,
        tariff=tariff_name,
        issuer=issuer,
        debtor=debtor,
        lines=printed_lines(bill),
        language=bill.language,
        run_id=run_id,
        split=tuple(split),
    )
