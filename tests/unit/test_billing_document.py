"""The issued document: a canonical snapshot, numbered, cancelled only by a credit note."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from billing import document, rules, tariff
from billing.errors import BillingInputError, TariffError
from billing.model import Account, Bill, Equipment, Lift, Occupancy, Period
from tests.billing_fixtures import ISSUER

DEBTOR = document.Debtor(ref="h-1", name="M. Martin", address=("2 rue des Lilas",))


def _bill() -> Bill:
    t = tariff.bundled("batzendorf-2013")
    lifts = tuple(Lift(datetime(2013, 4, d, 7, tzinfo=UTC), "bac-1") for d in range(1, 8))
    account = Account(
        "h-1",
        (Occupancy("d-1", date(2013, 3, 15)),),
        (Equipment("bac-1", "d-1", 120, date(2010, 1, 1)),),
        lifts,
    )
    return rules.compute(t, account, Period.semester(2013, 1))


def _doc(seq: int = 7) -> document.InvoiceDoc:
    return document.doc_for(
        _bill(),
        seq=seq,
        issued_on=date(2013, 7, 15),
        due_on=date(2013, 8, 15),
        tariff_name="Batzendorf 2013",
        issuer=ISSUER,
        debtor=DEBTOR,
    )


def test_the_snapshot_round_trips_exactly_and_its_digest_is_stable() -> None:
    doc = _doc()
    assert doc.number == "2013-01-000007"
    assert doc.total == Decimal("55.41")  # the Batzendorf move-in example
    again = document.from_json(document.to_json(doc))
    assert again == doc
    assert document.digest(again) == document.digest(doc)
    assert '"total"' not in document.to_json(doc)  # totals are derived, never stored twice


def test_a_credit_note_negates_every_line_and_names_what_it_cancels() -> None:
    doc = _doc()
    cn = document.credit_note(
        doc, seq=8, issued_on=date(2013, 9, 1), due_on=date(2013, 9, 1), reason="moved out"
    )
    assert cn.kind == "credit_note" and cn.cancels == doc.number
    assert cn.total == -doc.total
    assert [x.amount for x in cn.lines] == [-x.amount for x in doc.lines]
    with pytest.raises(BillingInputError):
        document.InvoiceDoc(**{**doc.__dict__, "kind": "credit_note"})


def test_the_issuer_table_is_validated_naming_the_key() -> None:
    raw = {k: getattr(ISSUER, k) for k in ("name", "budget_code", "budget_name", "deliberation")}
    raw |= {"siret": "123", "address": ["a"], "payment": ["b"]}
    with pytest.raises(TariffError, match=r"issuer\.siret"):
        document.issuer_from_toml(raw, "t.toml")
    raw["siret"] = ISSUER.siret
    assert document.issuer_from_toml(raw, "t.toml").budget_code == "01"
    with pytest.raises(TariffError, match=r"issuer\.payment"):
        document.issuer_from_toml({**raw, "payment": "cash"}, "t.toml")
