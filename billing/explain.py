"""The words of a fee line, in French (default) or English.

Each line must be explainable to a household on the phone: which period, which bin,
how many lifts were counted, the unit price and the pro-rata days, in that order.
"""

# ruff: noqa: RUF001  (the x and minus signs of a printed bill are meant)
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from fractions import Fraction
from zoneinfo import ZoneInfo

from billing.errors import BillingInputError
from billing.model import Exclusion, Period

LANGUAGES = ("fr", "en")

_TEMPLATES: dict[str, dict[str, str]] = {
    "fr": {
        "household_fixed": "Part fixe du foyer, {period} : {price}{prorata} = {amount}",
        "size_fixed": "Part fixe pour un foyer de {persons} personne(s), {period} : "
        "{price}{prorata} = {amount}",
        "bin_fixed": "Part fixe du bac {volume} L ({bin}), {period} : {price}{prorata} = {amount}",
        "lifts": "Levées du bac {volume} L ({bin}), {period} : {counted} levée(s) comptée(s)"
        "{minimum}{included} ; {billed} facturée(s) × {price} = {amount}",
        "minimum": ", minimum {count} par {per}",
        "minimum_prorated": ", minimum {full} par {per}{prorata}, soit {count}",
        "included": ", {count} incluse(s) dans la part fixe",
        "weight": "Poids du bac {volume} L ({bin}), {period} : {lifts} pesée(s), {gross} kg brut"
        " − tare {tare} kg par levée = {net} kg net × {price}/kg = {amount}",
        "weight_floor": " (pesées sous la tare comptées 0 kg)",
        "openings": "Ouvertures de conteneur au badge, {period} : {counted} comptée(s)"
        "{included} ; {billed} facturée(s) × {price} = {amount}",
        "openings_included": ", {count} incluse(s)",
        "correction": "Correction manuelle par {operator} : {reason} = {amount}",
        "carried_over": "Solde précédent reporté (sous le seuil de recouvrement) = {amount}",
        "prorata": " × {days}/{period_days} jours (du {first} au {last})",
        "vat": " ; TVA {rate} % = {vat}",
        "semester": "semestre",
        "year": "an",
        "total": "Total : {amount}{vat}",
        "total_vat": " dont TVA {vat}",
        "issue": "mis en recouvrement",
        "carry_over": "sous le seuil de {threshold} : reporté sur la prochaine facture",
        "cancel": "sous le seuil de {threshold} : non mis en recouvrement",
        "excluded": "Non facturé : {kind} {ref} le {at}, {reason}",
        "kind_lift": "levée",
        "kind_deposit": "ouverture",
        "kind_weight": "pesée",
        "reason_unread_chip": "puce non lue",
        "reason_refused": "refusée par l'équipage",
        "reason_duplicate": "doublon de lecture",
        "reason_outside_period": "hors de la période",
        "reason_outside_occupancy": "hors de l'occupation du foyer",
        "reason_unknown_bin": "bac non installé au logement",
        "reason_unweighed": "levée sans pesée, aucun poids facturé",
        "share": "Part du logement {name} : {amount}",
    },
    "en": {
        "household_fixed": "Fixed part per household, {period}: {price}{prorata} = {amount}",
        "size_fixed": "Fixed part for a household of {persons}, {period}: "
        "{price}{prorata} = {amount}",
        "bin_fixed": "Fixed part for the {volume} L bin ({bin}), {period}: "
        "{price}{prorata} = {amount}",
        "lifts": "Lifts of the {volume} L bin ({bin}), {period}: {counted} counted"
        "{minimum}{included}; {billed} billed × {price} = {amount}",
        "minimum": ", minimum {count} per {per}",
        "minimum_prorated": ", minimum {full} per {per}{prorata}, i.e. {count}",
        "included": ", {count} included in the fixed part",
        "weight": "Weight of the {volume} L bin ({bin}), {period}: {lifts} weighing(s), "
        "{gross} kg gross − tare {tare} kg per lift = {net} kg net × {price}/kg = {amount}",
        "weight_floor": " (weighings under the tare count as 0 kg)",
        "openings": "Badge openings of collective containers, {period}: {counted} counted"
        "{included}; {billed} billed × {price} = {amount}",
        "openings_included": ", {count} included",
        "correction": "Manual correction by {operator}: {reason} = {amount}",
        "carried_over": "Previous balance carried over (under the recovery threshold) = {amount}",
        "prorata": " × {days}/{period_days} days ({first} to {last})",
        "vat": "; VAT {rate} % = {vat}",
        "semester": "half-year",
        "year": "year",
        "total": "Total: {amount}{vat}",
        "total_vat": " including VAT {vat}",
        "issue": "issued",
        "carry_over": "under the {threshold} threshold: carried over to the next bill",
        "cancel": "under the {threshold} threshold: not issued",
        "excluded": "Not billed: {kind} {ref} at {at}, {reason}",
        "kind_lift": "lift",
        "kind_deposit": "opening",
        "kind_weight": "weighing",
        "reason_unread_chip": "chip not read",
        "reason_refused": "refused by the crew",
        "reason_duplicate": "duplicate read",
        "reason_outside_period": "outside the period",
        "reason_outside_occupancy": "outside the household's occupancy",
        "reason_unknown_bin": "bin not installed at the dwelling",
        "reason_unweighed": "lift without a weighing, no weight billed",
        "share": "Share of dwelling {name}: {amount}",
    },
}


class Words:
    """Formats numbers, dates and sentences in one language."""

    def __init__(self, language: str) -> None:
        if language not in LANGUAGES:
            raise BillingInputError(f"language {language!r}: expected one of {LANGUAGES}")
        self.language = language
        self._t = _TEMPLATES[language]

    def say(self, key: str, **values: object) -> str:
        return self._t[key].format(**values)

    def number(self, value: Decimal | Fraction | int) -> str:
        if isinstance(value, Fraction):
            value = Decimal(value.numerator) / Decimal(value.denominator)
            value = value.quantize(Decimal("0.01"))
        text = f"{value:f}"
        if "." in text:
            text = text.rstrip("0").rstrip(".")
        return text.replace(".", ",") if self.language == "fr" else text

    def money(self, value: Decimal) -> str:
        text = f"{value:.2f}"
        return f"{text.replace('.', ',')} €" if self.language == "fr" else f"{text} EUR"

    def unit_price(self, value: Decimal) -> str:
        """A price as written in the tariff (0.215 stays 0.215), at least to the cent."""
        shown = value if -_exponent(value) > 2 else value.quantize(Decimal("0.01"))
        text = f"{shown:f}"
        return f"{text.replace('.', ',')} €" if self.language == "fr" else f"{text} EUR"

    def day(self, value: date) -> str:
        return value.strftime("%d/%m/%Y") if self.language == "fr" else value.isoformat()

    def moment(self, value: datetime) -> str:
        """An event's time as the household's clock showed it."""
        return value.strftime("%d/%m/%Y %H:%M" if self.language == "fr" else "%Y-%m-%d %H:%M")

    def exclusion(self, item: Exclusion, zone: ZoneInfo) -> str:
        return self.say(
            "excluded",
            kind=self.say(f"kind_{item.kind}"),
            ref=item.ref,
            at=self.moment(item.at.astimezone(zone)),
            reason=self.say(f"reason_{item.reason}"),
        )

    def period(self, period: Period) -> str:
        year = period.first_day.year
        first = period.first_day.month == 1
        if period.kind == "year":
            return f"année {year}" if self.language == "fr" else f"year {year}"
        if self.language == "fr":
            return f"{'1er' if first else '2e'} semestre {year}"
        return f"{'first' if first else 'second'} half of {year}"

    def prorata(self, days: int, period: Period, first: date, last: date) -> str:
        """Empty for a full period, else the days counted and the dates."""
        if days == period.days:
            return ""
        return self.say(
            "prorata",
            days=days,
            period_days=period.days,
            first=self.day(first),
            last=self.day(last),
        )


def _exponent(value: Decimal) -> int:
    exponent = value.as_tuple().exponent
    return exponent if isinstance(exponent, int) else 0
