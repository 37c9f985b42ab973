"""SMS texts: French by default, English available, one GSM-7 segment where possible.

Only the person's label goes into a message (never the address or the consumption):
an SMS can be read on a locked screen by anyone. Every alert says what to reply.
The texts avoid characters outside the GSM 03.38 basic set (no ê, â, ç, ô...),
which would switch the message to UCS-2 and cut a segment from 160 to 70 characters.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

LANGUAGES: Final = ("fr", "en")
DEFAULT_LANGUAGE: Final = "fr"
SEGMENT: Final = 160  # characters of one GSM-7 segment

# GSM 03.38 basic character set (the escape table is left out: [ ] { } cost two).
GSM7: Final = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)

_ALERT: Final[dict[str, dict[str, str]]] = {
    "inactivity": {
        "fr": "Foyer: pas d'eau utilisée chez {label} depuis {since}, c'est inhabituel. "
        "Pouvez-vous prendre des nouvelles ? Répondez OK si vous prenez le relais.",
        "en": "Foyer: no water used at {label}'s since {since}, which is unusual. "
        "Could you check on them? Reply OK if you are taking care of it.",
    },
    "use_while_away": {
        "fr": "Foyer: de l'eau est utilisée chez {label} pendant l'absence déclarée. "
        "Répondez OK si tout va bien, RETOUR si {label} est rentré(e).",
        "en": "Foyer: water is being used at {label}'s during the declared absence. "
        "Reply OK if all is well, RETOUR if {label} is back.",
    },
    "leak": {
        "fr": "Foyer: fuite d'eau probable chez {label} (l'eau coule en continu). "
        "Vérifiez robinets et WC. Répondez OK si vous vous en occupez.",
        "en": "Foyer: probable water leak at {label}'s (water keeps flowing). "
        "Check taps and toilets. Reply OK if you are dealing with it.",
    },
    "meter_alarm": {
        "fr": "Foyer: le compteur d'eau de {label} signale une anomalie (fuite ou retour "
        "d'eau). Répondez OK si vous vous en occupez.",
        "en": "Foyer: {label}'s water meter reports a problem (leak or backflow). "
        "Reply OK if you are dealing with it.",
    },
}
_ALERT["continuous_flow"] = _ALERT["leak"]

# The care service is asked only when no contact answered: say so.
_CARE_SERVICE: Final = {
    "fr": "Foyer: alerte pour {label}, aucun proche n'a répondu. {what} Répondez OK si "
    "vous prenez le relais.",
    "en": "Foyer: alert for {label}, no relative answered. {what} Reply OK if you take over.",
}
_CARE_WHAT: Final = {
    "inactivity": {
        "fr": "Pas d'eau depuis {since}, c'est inhabituel.",
        "en": "No water since {since}, which is unusual.",
    },
    "use_while_away": {"fr": "Eau utilisée pendant l'absence.", "en": "Water used while away."},
}
_CARE_WHAT_DEFAULT: Final = {"fr": "Fuite d'eau probable.", "en": "Probable water leak."}

_RECOVERED: Final = {
    "inactivity": {
        "fr": "Foyer: bonne nouvelle, l'eau est de nouveau utilisée chez {label}. "
        "L'alerte est close.",
        "en": "Foyer: good news, water is being used again at {label}'s. The alert is closed.",
    },
    "default": {
        "fr": "Foyer: l'eau ne coule plus en continu chez {label}. L'alerte est close.",
        "en": "Foyer: water no longer flows continuously at {label}'s. The alert is closed.",
    },
}

REPLIES: Final[dict[str, dict[str, str]]] = {
    "help": {
        "fr": "Foyer: répondez OK (je prends le relais), ABSENT 3 (absence de 3 jours), "
        "RETOUR (fin d'absence) ou STOP (plus de SMS).",
        "en": "Foyer: reply OK (I take over), ABSENT 3 (away for 3 days), "
        "RETOUR (back home) or STOP (no more SMS).",
    },
    "acknowledged": {
        "fr": "Foyer: merci, l'alerte pour {label} est prise en charge.",
        "en": "Foyer: thank you, the alert for {label} is taken care of.",
    },
    "nothing_to_acknowledge": {
        "fr": "Foyer: aucune alerte en cours pour {label}.",
        "en": "Foyer: no alert in progress for {label}.",
    },
    "away_until": {
        "fr": "Foyer: absence de {label} notée jusqu'au {until}. Envoyez RETOUR au retour.",
        "en": "Foyer: {label}'s absence noted until {until}. Send RETOUR when back.",
    },
    "away_open": {
        "fr": "Foyer: absence de {label} notée. Envoyez RETOUR au retour.",
        "en": "Foyer: {label}'s absence noted. Send RETOUR when back.",
    },
    "back": {
        "fr": "Foyer: retour de {label} noté, la surveillance reprend.",
        "en": "Foyer: {label} is back, monitoring resumes.",
    },
    "not_away": {
        "fr": "Foyer: aucune absence en cours pour {label}.",
        "en": "Foyer: no absence in progress for {label}.",
    },
    "stopped": {
        "fr": "Foyer: vous ne recevrez plus de SMS. Contactez le service pour reprendre.",
        "en": "Foyer: you will receive no more SMS. Contact the service to resume.",
    },
}


_YESTERDAY: Final = {"fr": "hier", "en": "yesterday"}
_ON_DAY: Final = {"fr": "le ", "en": ""}


def _lang(language: str) -> str:
    return language if language in LANGUAGES else DEFAULT_LANGUAGE


def when(at: datetime, ref: datetime, language: str) -> str:
    """A local time as a relative says it on the phone: "09:12", "hier 21:40", "le 20/11 21:40"."""
    lang = _lang(language)
    days = (ref.date() - at.date()).days
    hhmm = at.strftime("%H:%M")
    if days == 0:
        return hhmm
    if days == 1:
        return f"{_YESTERDAY[lang]} {hhmm}"
    return f"{_ON_DAY[lang]}{at.strftime('%d/%m')} {hhmm}"


def alert_text(kind: str, label: str, since: str, language: str) -> str:
    """The first SMS to a contact.

    ``since`` is, for inactivity, the last water use (``when``): what a relative needs to
    judge how worrying it is; for the other kinds, the alert's local opening time.
    """
    texts = _ALERT.get(kind, _ALERT["leak"])
    return texts[_lang(language)].format(label=label, since=since)


def care_service_text(kind: str, label: str, since: str, language: str) -> str:
    """The SMS to the care service, once every contact was asked in vain."""
    lang = _lang(language)
    what = _CARE_WHAT.get(kind, _CARE_WHAT_DEFAULT)[lang].format(since=since)
    return _CARE_SERVICE[lang].format(label=label, what=what)


def recovered_text(kind: str, label: str, language: str) -> str:
    texts = _RECOVERED.get(kind, _RECOVERED["default"])
    return texts[_lang(language)].format(label=label)


def reply_text(key: str, language: str, **values: str) -> str:
    return REPLIES[key][_lang(language)].format(**values)


def is_gsm7(text: str) -> bool:
    """True when every character is in the GSM 03.38 basic set (160 per segment)."""
    return all(c in GSM7 for c in text)


def segments(text: str) -> int:
    """How many SMS segments the text costs (153/67 per part once concatenated)."""
    if is_gsm7(text):
        return 1 if len(text) <= SEGMENT else -(-len(text) // 153)
    return 1 if len(text) <= 70 else -(-len(text) // 67)
