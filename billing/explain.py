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
from billing.model import RESIDUAL, Exclusion, Period

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
        "lifts_head": "Levées du bac {volume} L ({bin}), {period} : {counted} levée(s) comptée(s)"
        "{minimum}{included} ; {billed} facturée(s)",
        "lifts_tier_head": "Levées du bac {volume} L ({bin}), {period}",
        "weight_head": "Poids des bacs ({bins}), {period} : {lifts} pesée(s), {net} kg net",
        "weight_tier_head": "Poids des bacs ({bins}), {period}",
        "openings_head": "Ouvertures de conteneur au badge, {period} : {counted} comptée(s)"
        "{included} ; {billed} facturée(s)",
        "openings_tier_head": "Ouvertures de conteneur au badge, {period}",
        "tier": " ; {range} : {quantity}{unit} × {price}{per} = {amount}",
        "tier_none": " × {price}{per} = {amount}",
        "stream_recyclables": "recyclables",
        "stream_biowaste": "biodéchets",
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
        "reason_stream_not_billed": "flux de déchets non facturé par le tarif",
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
        "lifts_head": "Lifts of the {volume} L bin ({bin}), {period}: {counted} counted"
        "{minimum}{included}; {billed} billed",
        "lifts_tier_head": "Lifts of the {volume} L bin ({bin}), {period}",
        "weight_head": "Weight of the bins ({bins}), {period}: {lifts} weighing(s), {net} kg net",
        "weight_tier_head": "Weight of the bins ({bins}), {period}",
        "openings_head": "Badge openings of collective containers, {period}: {counted} counted"
        "{included}; {billed} billed",
        "openings_tier_head": "Badge openings of collective containers, {period}",
        "tier": "; {range}: {quantity}{unit} × {price}{per} = {amount}",
        "tier_none": " × {price}{per} = {amount}",
        "stream_recyclables": "recyclables",
        "stream_biowaste": "biowaste",
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
        "reason_stream_not_billed": "waste stream the tariff does not bill",
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

    def bin_label(self, bin_id: str, stream: str) -> str:
        """A bin as printed: its id, and its stream unless residual (``Y1, recyclables``)."""
        return bin_id if stream == RESIDUAL else f"{bin_id}, {self.say(f'stream_{stream}')}"

    def tier_range(self, unit: str, low: Fraction, high: Fraction | None) -> str:
        """The units a tier covers, above ``low`` up to ``high`` (None: no bound):
        ``13e à 24e levée``, ``au-delà de 100 kg``, ``lifts 13 to 24``."""
        lo, hi = self.number(low), None if high is None else self.number(high)
        if unit == "kg":
            key = "kg_above" if hi is None else "kg_range"
            return _KG[self.language][key].format(low=lo, high=hi)
        whole = low.denominator == 1 and (high is None or high.denominator == 1)
        if not whole:
            form = _COUNT_ABOVE if hi is None else _COUNT_RANGE
            return form[self.language].format(units=_UNITS[self.language][unit][1], low=lo, high=hi)
        return self._ordinal_range(unit, int(low), None if high is None else int(high))

    def _ordinal_range(self, unit: str, low: int, high: int | None) -> str:
        one, many = _UNITS[self.language][unit]
        if self.language == "fr":
            if high is None:
                return f"au-delà de la {_fr_ordinal(low)} {one}" if low else f"dès la 1re {one}"
            if high == low + 1:
                return f"{_fr_ordinal(high)} {one}"
            return f"{_fr_ordinal(low + 1)} à {_fr_ordinal(high)} {one}"
        if high is None:
            return f"{many} above {low}" if low else f"from {one} 1"
        return f"{one} {high}" if high == low + 1 else f"{many} {low + 1} to {high}"

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


_UNITS = {
    "fr": {"lift": ("levée", "levées"), "opening": ("ouverture", "ouvertures")},
    "en": {"lift": ("lift", "lifts"), "opening": ("opening", "openings")},
}
_KG = {
    "fr": {"kg_range": "de {low} à {high} kg", "kg_above": "au-delà de {low} kg"},
    "en": {"kg_range": "{low} to {high} kg", "kg_above": "above {low} kg"},
}
# Prorated bounds kept to the hundredth (count_rounding = "hundredths") are not ordinals.
_COUNT_RANGE = {"fr": "{units} de {low} à {high}", "en": "{units} {low} to {high}"}
_COUNT_ABOVE = {"fr": "{units} au-delà de {low}", "en": "{units} above {low}"}


def _fr_ordinal(n: int) -> str:
    return "1re" if n == 1 else f"{n}e"  # levée, ouverture: feminine


def _exponent(value: Decimal) -> int:
    exponent = value.as_tuple().exponent
    return exponent if isinstance(exponent, int) else 0
