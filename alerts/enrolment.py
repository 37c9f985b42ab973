"""Care enrolment in the registry: monitored persons with consent, contacts, away periods.

Issue 4, item 1. Every staff change is audited in its own transaction. Contacts are
never deleted (their SMS history refers to them): a contact removed from the list
keeps its row with ``position`` 0, "former contact", and is neither listed nor asked.
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any, Final

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from core.registry import audit
from core.registry.errors import RegistryError, UnknownHousehold
from core.registry.models import (
    AwayPeriod,
    Binding,
    CareContact,
    CareSubscription,
    Device,
    Household,
    Occupancy,
)
from core.registry.service import Registry

# E.164: a "+", then 8 to 15 digits, the first not 0 (ITU-T E.164 section 6).
E164_RE: Final = re.compile(r"\+[1-9][0-9]{7,14}")
HHMM_RE: Final = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9]")
LANGUAGES: Final = ("fr", "en")
MAX_CONTACTS: Final = 5  # beyond that, the ladder takes hours: the care service is next
FORMER: Final = 0  # position of a contact removed from the list
AWAY_SOURCES: Final = ("staff", "sms")
UPDATABLE: Final = frozenset(
    {
        "person_label",
        "consent_note",
        "language",
        "care_service_phone",
        "sleep_from",
        "sleep_to",
        "contacts",
    }
)


class InvalidCare(RegistryError):
    """A subscription, contact or away period value the rules refuse."""


class UnknownSubscription(RegistryError):
    """A care subscription id that the registry does not hold."""


class CareConflict(RegistryError):
    """A change that contradicts the subscription's state (ended, already monitored)."""


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def check_phone(phone: object, name: str = "phone") -> str:
    if not isinstance(phone, str) or not E164_RE.fullmatch(phone):
        raise InvalidCare(f"{name}: expected E.164, '+' then 8 to 15 digits")
    return phone


def _check_language(language: object) -> str:
    if language not in LANGUAGES:
        raise InvalidCare(f"language: expected one of {', '.join(LANGUAGES)}")
    return str(language)


def _check_text(value: object, name: str, limit: int, required: bool = True) -> str | None:
    if value is None or value == "":
        if required:
            raise InvalidCare(f"{name} is required")
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise InvalidCare(f"{name}: text of at most {limit} characters")
    return value.strip()


def _check_hhmm(value: object, name: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not HHMM_RE.fullmatch(value):
        raise InvalidCare(f"{name}: expected HH:MM")
    return value


def check_contacts(contacts: object) -> list[tuple[str, str, str]]:
    """(name, phone, language) in calling order; at least one, distinct numbers."""
    if not isinstance(contacts, list) or not 1 <= len(contacts) <= MAX_CONTACTS:
        raise InvalidCare(f"contacts: a list of 1 to {MAX_CONTACTS} contacts")
    out: list[tuple[str, str, str]] = []
    for i, contact in enumerate(contacts, start=1):
        if not isinstance(contact, Mapping):
            raise InvalidCare(f"contacts[{i}]: expected an object")
        name = _check_text(contact.get("name"), f"contacts[{i}].name", 128)
        phone = check_phone(contact.get("phone"), f"contacts[{i}].phone")
        language = _check_language(contact.get("language") or "fr")
        assert name is not None
        out.append((name, phone, language))
    if len({phone for _, phone, _ in out}) != len(out):
        raise InvalidCare("contacts: each number once")
    return out


def contact_view(c: CareContact) -> dict[str, Any]:
    return {
        "id": c.id,
        "position": c.position,
        "name": c.name,
        "phone": c.phone,
        "language": c.language,
        "opted_out": c.opted_out_at is not None,
    }


def away_view(a: AwayPeriod) -> dict[str, Any]:
    return {"id": a.id, "start": _iso(a.start), "end": _iso(a.end), "source": a.source}


def contacts_of(session: Session, subscription_id: int) -> list[CareContact]:
    """Current contacts in calling order (former contacts left out)."""
    stmt = (
        select(CareContact)
        .where(CareContact.subscription_id == subscription_id, CareContact.position > FORMER)
        .order_by(CareContact.position)
    )
    return list(session.scalars(stmt))


def away_of(session: Session, subscription_id: int) -> list[AwayPeriod]:
    stmt = select(AwayPeriod).where(AwayPeriod.subscription_id == subscription_id)
    return list(session.scalars(stmt.order_by(AwayPeriod.start)))


def view(session: Session, sub: CareSubscription) -> dict[str, Any]:
    return {
        "id": sub.id,
        "household_id": sub.household_id,
        "person_label": sub.person_label,
        "status": sub.status,
        "language": sub.language,
        "care_service_phone": sub.care_service_phone,
        "sleep_from": sub.sleep_from,
        "sleep_to": sub.sleep_to,
        "consent_at": _iso(sub.consent_at),
        "consent_by": sub.consent_by,
        "consent_note": sub.consent_note,
        "created_at": _iso(sub.created_at),
        "ended_at": _iso(sub.ended_at),
        "contacts": [contact_view(c) for c in contacts_of(session, sub.id)],
        "away": [away_view(a) for a in away_of(session, sub.id)],
    }


def subscription(session: Session, subscription_id: int) -> CareSubscription:
    sub = session.get(CareSubscription, subscription_id)
    if sub is None:
        raise UnknownSubscription(f"care subscription {subscription_id} does not exist")
    return sub


def _live(session: Session, subscription_id: int) -> CareSubscription:
    sub = subscription(session, subscription_id)
    if sub.status == "ended":
        raise CareConflict(f"care subscription {subscription_id} has ended")
    return sub


def _replace_contacts(session: Session, sub_id: int, wanted: list[tuple[str, str, str]]) -> None:
    """Keep the row (and its STOP) of a number still listed; retire the others."""
    stmt = select(CareContact).where(CareContact.subscription_id == sub_id)
    existing = {c.phone: c for c in session.scalars(stmt)}
    for contact in existing.values():
        contact.position = FORMER
    session.flush()
    for position, (name, phone, language) in enumerate(wanted, start=1):
        row = existing.get(phone)
        if row is None:
            row = CareContact(subscription_id=sub_id, phone=phone)
            session.add(row)
        row.position, row.name, row.language = position, name, language


def current_away(session: Session, sub_id: int, at: datetime) -> AwayPeriod | None:
    stmt = (
        select(AwayPeriod)
        .where(AwayPeriod.subscription_id == sub_id, AwayPeriod.start <= at)
        .where(or_(AwayPeriod.end.is_(None), AwayPeriod.end > at))
        .order_by(AwayPeriod.start.desc())
    )
    return session.scalars(stmt.limit(1)).first()


def start_away_in(
    session: Session, sub_id: int, start: datetime, end: datetime | None, source: str, now: datetime
) -> AwayPeriod:
    """A new away period; one already running at ``start`` is closed there (replaced)."""
    if source not in AWAY_SOURCES:
        raise InvalidCare(f"source: expected one of {', '.join(AWAY_SOURCES)}")
    if end is not None and end <= start:
        raise InvalidCare("away: end must be after start")
    running = current_away(session, sub_id, start)
    if running is not None:
        running.end = start
    period = AwayPeriod(subscription_id=sub_id, start=start, end=end, source=source, created_at=now)
    session.add(period)
    session.flush()
    return period


def end_away_in(session: Session, sub_id: int, at: datetime) -> AwayPeriod | None:
    """Close the away period running at ``at``; None when the person was not away."""
    running = current_away(session, sub_id, at)
    if running is not None:
        running.end = at
    return running


def meters_of(session: Session, household_id: str, today: date) -> list[str]:
    """Meters bound now to the dwelling the household occupies today."""
    stmt = (
        select(Binding.device_id)
        .join(Occupancy, Occupancy.dwelling_id == Binding.dwelling_id)
        .join(Device, Device.device_id == Binding.device_id)
        .where(Occupancy.household_id == household_id, Occupancy.start <= today)
        .where(or_(Occupancy.end.is_(None), Occupancy.end > today))
        .where(Binding.valid_to.is_(None), Device.kind == "meter", Device.status != "retired")
        .order_by(Binding.device_id)
    )
    return list(dict.fromkeys(session.scalars(stmt)))


class Enrolment:
    """Sub-service of the registry for care subscriptions; every staff change audited."""

    def __init__(self, registry: Registry) -> None:
        self._registry = registry

    def create(
        self,
        *,
        actor: str,
        household_id: str,
        person_label: object,
        consent_note: object,
        contacts: object,
        language: object = "fr",
        care_service_phone: object = None,
        sleep_from: object = None,
        sleep_to: object = None,
    ) -> dict[str, Any]:
        """Enrol a person; the consent is recorded as given to ``actor`` now."""
        label = _check_text(person_label, "person_label", 128)
        note = _check_text(consent_note, "consent_note", 255)
        wanted = check_contacts(contacts)
        now = self._registry.now()
        with self._registry.transaction() as session:
            if session.get(Household, household_id) is None:
                raise UnknownHousehold(f"household {household_id!r} is not registered")
            running = select(CareSubscription.id).where(
                CareSubscription.household_id == household_id, CareSubscription.status != "ended"
            )
            if session.scalars(running).first() is not None:
                raise CareConflict(f"household {household_id!r} is already monitored")
            sub = CareSubscription(
                household_id=household_id,
                person_label=label,
                language=_check_language(language or "fr"),
                consent_at=now,
                consent_by=actor,
                consent_note=note,
                care_service_phone=_optional_phone(care_service_phone),
                sleep_from=_check_hhmm(sleep_from, "sleep_from"),
                sleep_to=_check_hhmm(sleep_to, "sleep_to"),
                status="active",
                created_at=now,
            )
            session.add(sub)
            session.flush()
            _replace_contacts(session, sub.id, wanted)
            session.flush()
            audit.record(
                session,
                actor,
                "care.enrol",
                f"care:{sub.id}",
                now,
                {"household_id": household_id, "consent_note": note, "contacts": len(wanted)},
            )
            return view(session, sub)

    def update(self, subscription_id: int, *, actor: str, **fields: object) -> dict[str, Any]:
        """Change the given fields; a new consent note renews the consent (who, when)."""
        unknown = set(fields) - UPDATABLE
        if unknown:
            raise InvalidCare(f"cannot change {', '.join(sorted(unknown))}")
        now = self._registry.now()
        with self._registry.transaction() as session:
            sub = _live(session, subscription_id)
            changed = _apply(session, sub, fields)
            if "consent_note" in fields:
                sub.consent_at, sub.consent_by = now, actor
                audit.record(
                    session,
                    actor,
                    "care.consent",
                    f"care:{sub.id}",
                    now,
                    {"consent_note": sub.consent_note},
                )
            session.flush()
            audit.record(session, actor, "care.update", f"care:{sub.id}", now, {"fields": changed})
            return view(session, sub)

    def end(self, subscription_id: int, *, actor: str) -> dict[str, Any]:
        """Stop monitoring (consent withdrawn, moved out); history is kept."""
        now = self._registry.now()
        with self._registry.transaction() as session:
            sub = _live(session, subscription_id)
            sub.status, sub.ended_at = "ended", now
            end_away_in(session, sub.id, now)
            audit.record(session, actor, "care.end", f"care:{sub.id}", now)
            return view(session, sub)

    def start_away(
        self, subscription_id: int, *, start: datetime, end: datetime | None, actor: str
    ) -> dict[str, Any]:
        now = self._registry.now()
        with self._registry.transaction() as session:
            sub = _live(session, subscription_id)
            period = start_away_in(session, sub.id, start, end, "staff", now)
            audit.record(
                session,
                actor,
                "care.away",
                f"care:{sub.id}",
                now,
                {"start": _iso(start), "end": _iso(end)},
            )
            return away_view(period)

    def end_away(self, subscription_id: int, *, actor: str) -> dict[str, Any] | None:
        now = self._registry.now()
        with self._registry.transaction() as session:
            sub = _live(session, subscription_id)
            period = end_away_in(session, sub.id, now)
            if period is None:
                raise CareConflict(f"care subscription {subscription_id}: not away now")
            audit.record(session, actor, "care.back", f"care:{sub.id}", now)
            return away_view(period)

    def get(self, subscription_id: int) -> dict[str, Any]:
        with self._registry.reading() as session:
            return view(session, subscription(session, subscription_id))

    def list(self, status: str | None = None) -> builtins.list[dict[str, Any]]:
        stmt = select(CareSubscription).order_by(CareSubscription.id)
        if status:
            stmt = stmt.where(CareSubscription.status == status)
        with self._registry.reading() as session:
            return [view(session, sub) for sub in session.scalars(stmt)]

    def monitored(self) -> builtins.list[dict[str, Any]]:
        """What the scoring job needs: active subscriptions, their meters, away periods.

        Three reads however many subscriptions there are (issue 6: 100,000 households
        scored every five minutes), rather than two per subscription.
        """
        today = self._registry.now().date()
        active = CareSubscription.status == "active"
        cols = (CareSubscription.id, CareSubscription.household_id, CareSubscription.person_label,
                CareSubscription.sleep_from, CareSubscription.sleep_to)  # fmt: skip
        with self._registry.reading() as session:
            subs = session.execute(select(*cols).where(active).order_by(CareSubscription.id))
            meters = _meters_by_household(session, today)
            away = _away_by_subscription(session)
            return [
                {
                    "subscription_id": sid,
                    "household_id": household_id,
                    "person_label": label,
                    "sleep_from": sleep_from,
                    "sleep_to": sleep_to,
                    "meter_ids": list(dict.fromkeys(meters.get(household_id, []))),
                    "away": away.get(sid, []),
                }
                for sid, household_id, label, sleep_from, sleep_to in subs.all()
            ]


def _meters_by_household(session: Session, today: date) -> dict[str, builtins.list[str]]:
    """``meters_of`` for every household with an active subscription, in one read."""
    monitored = select(CareSubscription.household_id).where(CareSubscription.status == "active")
    stmt = (
        select(Occupancy.household_id, Binding.device_id)
        .join(Binding, Occupancy.dwelling_id == Binding.dwelling_id)
        .join(Device, Device.device_id == Binding.device_id)
        .where(Occupancy.household_id.in_(monitored), Occupancy.start <= today)
        .where(or_(Occupancy.end.is_(None), Occupancy.end > today))
        .where(Binding.valid_to.is_(None), Device.kind == "meter", Device.status != "retired")
        .order_by(Occupancy.household_id, Binding.device_id)
    )
    out: dict[str, builtins.list[str]] = {}
    for household_id, device_id in session.execute(stmt):
        out.setdefault(household_id, []).append(device_id)
    return out


def _away_by_subscription(
    session: Session,
) -> dict[int, builtins.list[tuple[datetime, datetime | None]]]:
    """``away_of`` of every active subscription, in one read."""
    monitored = select(CareSubscription.id).where(CareSubscription.status == "active")
    stmt = (
        select(AwayPeriod.subscription_id, AwayPeriod.start, AwayPeriod.end)
        .where(AwayPeriod.subscription_id.in_(monitored))
        .order_by(AwayPeriod.subscription_id, AwayPeriod.start)
    )
    out: dict[int, builtins.list[tuple[datetime, datetime | None]]] = {}
    for sid, start, end in session.execute(stmt):
        out.setdefault(sid, []).append((start, end))
    return out


def _optional_phone(value: object) -> str | None:
    return None if value is None or value == "" else check_phone(value, "care_service_phone")


def _apply(session: Session, sub: CareSubscription, fields: Mapping[str, object]) -> list[str]:
    """Validate and set the given fields; return their names (never their values)."""
    for name, value in fields.items():
        if name == "contacts":
            _replace_contacts(session, sub.id, check_contacts(value))
        elif name == "person_label":
            sub.person_label = _check_text(value, name, 128) or sub.person_label
        elif name == "consent_note":
            sub.consent_note = _check_text(value, name, 255)
        elif name == "language":
            sub.language = _check_language(value)
        elif name == "care_service_phone":
            sub.care_service_phone = _optional_phone(value)
        else:
            setattr(sub, name, _check_hhmm(value, name))
    return sorted(fields)
