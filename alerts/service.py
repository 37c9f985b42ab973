"""The care service: opens alerts from findings, sends and escalates SMS, reads replies.

Issue 4, items 4 and 5. The decisions are alerts/lifecycle.py's (pure); this module
stores them and talks to the SMS channel. No SMS is sent inside a database
transaction: the rows are written first (status "sending"), the provider is called
after the commit, and the outcome is written back. Every step adds an AlertEvent,
so a household's history is complete.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from alerts import lifecycle, messages
from alerts.enrolment import (
    FORMER,
    Enrolment,
    current_away,
    end_away_in,
    meters_of,
    start_away_in,
)
from alerts.enrolment import away_of as _away_rows
from alerts.enrolment import away_view as _away_view
from alerts.enrolment import contacts_of as _contacts
from alerts.lifecycle import Plan, Recipient
from alerts.model import LAST_USE_KEY, Finding, Recovery
from alerts.sms import SmsChannel, mask
from core.records import METER_INDEX
from core.registry import audit
from core.registry.errors import RegistryError
from core.registry.models import Alert, AlertEvent, CareContact, CareSubscription, SmsMessage
from core.registry.service import Registry
from core.store.port import TelemetryStore

log = logging.getLogger(__name__)

SYSTEM: Final = "foyer"
FAILED_STATUSES: Final = frozenset({"failed", "undelivered"})
# Twilio's MessageStatus values, in the order a message moves through them.
KNOWN_STATUSES: Final = frozenset(
    {
        "accepted",
        "scheduled",
        "queued",
        "sending",
        "sent",
        "delivered",
        "read",
        "receiving",
        "received",
        "failed",
        "undelivered",
        "canceled",
    }
)
MAX_AWAY_DAYS: Final = 90
MAX_LIST: Final = 500
_WORD: Final = re.compile(r"[A-Z]+|[0-9]+")


class UnknownAlert(RegistryError):
    """An alert id that the registry does not hold."""


class AlertConflict(RegistryError):
    """An action the alert's state does not allow (e.g. acknowledging a resolved alert)."""


_Rung = tuple[int, int]  # (alert id, its escalation level): the rung that could not be reached


@dataclass(frozen=True)
class _Outgoing:
    sms_id: int
    phone: str
    body: str
    alert_id: int | None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _local_hhmm(at: datetime) -> str:
    return at.astimezone(lifecycle.LOCAL_TZ).strftime("%H:%M")


def _since(alert: Alert, language: str) -> str:
    """For the SMS: the last use for inactivity (as the detector stored it), else the opening."""
    opened = alert.opened_at.astimezone(lifecycle.LOCAL_TZ)
    try:
        last = json.loads(alert.explanation).get(LAST_USE_KEY)
        at = datetime.fromisoformat(last) if alert.kind == "inactivity" and last else None
    except (ValueError, AttributeError, TypeError):
        at = None
    if at is None:
        return _local_hhmm(alert.opened_at)
    local = at.astimezone(lifecycle.LOCAL_TZ) if at.tzinfo else at  # naive = local already
    return messages.when(local.replace(tzinfo=None), opened.replace(tzinfo=None), language)


def explanation_text(stored: str, language: str) -> str:
    """The operator's language from the stored {"fr": ..., "en": ...}, French by default."""
    try:
        texts = json.loads(stored)
    except ValueError:
        return stored
    if not isinstance(texts, dict):
        return stored
    return str(texts.get(language) or texts.get("fr") or next(iter(texts.values()), ""))


def parse_command(body: str) -> tuple[str, int | None]:
    """("OK" | "ABSENT" | "RETOUR" | "STOP" | "", days): tolerant of case and punctuation."""
    words = _WORD.findall(body.upper().replace("É", "E"))
    if not words:
        return "", None
    word = {"ARRET": "STOP", "RETURN": "RETOUR", "AWAY": "ABSENT"}.get(words[0], words[0])
    if word not in ("OK", "ABSENT", "RETOUR", "STOP"):
        return "", None
    days = int(words[1]) if word == "ABSENT" and len(words) > 1 and words[1].isdigit() else None
    return word, days


def hourly_litres(points: Sequence[tuple[datetime, float]]) -> list[dict[str, Any]]:
    """Litres used per hour from (time, index) points: each rise goes to its hour."""
    hours: dict[datetime, float] = {}
    for (_, before), (at, after) in itertools.pairwise(points):
        hour = at.replace(minute=0, second=0, microsecond=0)
        hours[hour] = hours.get(hour, 0.0) + max(0.0, after - before)
    return [{"t": t.isoformat(), "litres": round(v)} for t, v in sorted(hours.items())]


class CareService:
    """Alerts, SMS and replies for the care subscriptions of one registry."""

    def __init__(
        self,
        registry: Registry,
        channel: SmsChannel,
        clock: Callable[[], datetime] | None = None,
        *,
        status_callback: str | None = None,
        store: TelemetryStore | None = None,
    ) -> None:
        self.registry = registry
        self.channel = channel
        self.enrolment = Enrolment(registry)
        self._clock = clock or registry.now
        self._status_callback = status_callback
        self._store = store

    def now(self) -> datetime:
        return self._clock()

    # --- detectors in ---------------------------------------------------------------
    async def raise_findings(self, findings: Iterable[Finding]) -> list[int]:
        """Open one alert per new dedupe key and notify its first contact; return the ids."""
        found = list(findings)
        if not found:
            return []
        opened, outgoing = await asyncio.to_thread(self._open_all, found, self.now())
        await self._send_all(outgoing)
        return opened

    def _open_all(
        self, found: Sequence[Finding], now: datetime
    ) -> tuple[list[int], list[_Outgoing]]:
        outgoing: list[_Outgoing] = []
        opened: list[int] = []
        with self.registry.transaction() as session:
            keys = [f.dedupe_key for f in found]
            taken = session.scalars(
                select(Alert.dedupe_key).where(
                    Alert.dedupe_key.in_(keys), Alert.status != lifecycle.RESOLVED
                )
            )
            first: dict[str, Finding] = {}
            for f in found:
                first.setdefault(f.dedupe_key, f)
            for key in lifecycle.new_keys(keys, taken):
                if _declared_away(session, first[key], now):
                    continue
                alert, sends = self._open(session, first[key], now)
                opened.append(alert.id)
                outgoing += sends
        return opened, outgoing

    def _open(self, session: Session, f: Finding, now: datetime) -> tuple[Alert, list[_Outgoing]]:
        sub = _subscription_of(session, f.household_id)
        alert = Alert(
            kind=f.kind,
            audience=f.audience,
            status=lifecycle.OPEN,
            dedupe_key=f.dedupe_key,
            household_id=f.household_id,
            subscription_id=sub.id if sub else None,
            device_id=f.device_id,
            explanation=json.dumps(f.explanation, ensure_ascii=False, sort_keys=True),
            score=f.score,
            opened_at=now,
            escalation_level=0,
        )
        session.add(alert)
        session.flush()
        _event(session, alert.id, now, "opened", SYSTEM, {"at": _iso(f.at), "score": f.score})
        ladder = _ladder(session, sub, alert.audience)
        plan = lifecycle.on_open(alert.kind, alert.audience, ladder, now)
        return alert, _apply(session, alert, sub, ladder, plan, now)

    async def recover(self, recoveries: Iterable[Recovery]) -> list[int]:
        """Auto-resolve the unresolved alerts of these keys; reassure who was told."""
        resolved, outgoing = await asyncio.to_thread(self._recover_all, list(recoveries))
        await self._send_all(outgoing)
        return resolved

    def _recover_all(self, recoveries: Sequence[Recovery]) -> tuple[list[int], list[_Outgoing]]:
        now = self.now()
        outgoing: list[_Outgoing] = []
        resolved: list[int] = []
        with self.registry.transaction() as session:
            for r in recoveries:
                stmt = select(Alert).where(
                    Alert.dedupe_key == r.dedupe_key, Alert.status != lifecycle.RESOLVED
                )
                for alert in session.scalars(stmt):
                    outgoing += self._recover_one(session, alert, r, now)
                    resolved.append(alert.id)
        return resolved, outgoing

    def _recover_one(
        self, session: Session, alert: Alert, r: Recovery, now: datetime
    ) -> list[_Outgoing]:
        sub = _subscription_of_alert(session, alert)
        told = _told(session, alert, sub)
        status, sends = lifecycle.on_recovery(_state(alert), told, now)
        alert.status, alert.resolved_at, alert.resolution = status, now, r.reason
        alert.next_escalation_at = None
        _event(session, alert.id, now, "resolved", SYSTEM, {"reason": r.reason, "at": _iso(r.at)})
        out: list[_Outgoing] = []
        for send in sends:
            label = sub.person_label if sub else ""
            body = messages.recovered_text(alert.kind, label, send.recipient.language)
            out.append(_queue(session, alert, send.recipient, body, now))
        return out

    # --- escalation -------------------------------------------------------------------
    async def escalate_due(self, now: datetime | None = None) -> int:
        """The every-minute job: ask the next rung of each alert nobody acknowledged."""
        outgoing = await asyncio.to_thread(self._due, now or self.now())
        await self._send_all(outgoing)
        return len(outgoing)

    def _due(self, at: datetime) -> list[_Outgoing]:
        outgoing: list[_Outgoing] = []
        # Locked: a webhook escalating the same alert (a failed delivery, a STOP) waits,
        # then finds it moved on; on PostgreSQL FOR UPDATE re-checks the WHERE on the
        # latest row, so an alert a webhook just escalated is no longer due here.
        with self.registry.transaction(lock=True) as session:
            stmt = select(Alert).where(
                Alert.status.in_((lifecycle.OPEN, lifecycle.NOTIFIED)),
                Alert.next_escalation_at <= at,
            )
            for alert in session.scalars(stmt.order_by(Alert.id).with_for_update()):
                outgoing += self._escalate(session, alert, at, force=False)
        return outgoing

    def _escalate(
        self, session: Session, alert: Alert, now: datetime, *, force: bool
    ) -> list[_Outgoing]:
        sub = _subscription_of_alert(session, alert)
        ladder = _ladder(session, sub, alert.audience)
        plan = lifecycle.on_due(_state(alert), ladder, now, force=force)
        return [] if plan is None else _apply(session, alert, sub, ladder, plan, now)

    async def _escalate_now(self, rung: _Rung, reason: str) -> None:
        """The current rung cannot be reached (failed delivery, STOP): ask the next one."""
        outgoing = await asyncio.to_thread(self._escalate_one, *rung, reason)
        await self._send_all(outgoing)

    def _escalate_one(self, alert_id: int, level: int, reason: str) -> list[_Outgoing]:
        """Escalate past `level`, the rung that failed, unless the alert already moved on
        (the escalation job, or another webhook, got there first): checked on the locked row."""
        now = self.now()
        with self.registry.transaction(lock=True) as session:
            alert = session.get(Alert, alert_id, with_for_update=True)
            if alert is None or alert.status not in (lifecycle.OPEN, lifecycle.NOTIFIED):
                return []
            if alert.escalation_level != level:
                return []
            _event(session, alert.id, now, reason, SYSTEM, {"level": alert.escalation_level})
            return self._escalate(session, alert, now, force=True)

    # --- provider callbacks -----------------------------------------------------------
    async def delivery_status(self, sid: str, status: str) -> bool:
        """Store a delivery update; a failed one escalates at once. False: unknown sid."""
        status = status.lower() if status.lower() in KNOWN_STATUSES else "unknown"
        known, failed_alert = await asyncio.to_thread(self._store_status, sid, status)
        if failed_alert is not None:
            await self._escalate_now(failed_alert, "delivery_failed")
        return known

    def _store_status(self, sid: str, status: str) -> tuple[bool, _Rung | None]:
        with self.registry.transaction() as session:
            sms = session.scalars(select(SmsMessage).where(SmsMessage.provider_sid == sid)).first()
            if sms is None:
                return False, None
            sms.status, sms.updated_at = status, self.now()
            if status in FAILED_STATUSES and sms.alert_id is not None:
                alert = session.get(Alert, sms.alert_id)
                if alert is not None and _is_current_rung(session, alert, sms):
                    return True, (alert.id, alert.escalation_level)
            return True, None

    async def handle_inbound(
        self, from_phone: str, body: str, sid: str | None = None
    ) -> str | None:
        """A contact's reply; returns the answer to send back (None: stranger, no answer)."""
        answer, escalate = await asyncio.to_thread(self._inbound, from_phone, body, sid)
        if escalate is not None:
            await self._escalate_now(escalate, "opted_out")
        return answer

    def _inbound(
        self, from_phone: str, body: str, sid: str | None
    ) -> tuple[str | None, _Rung | None]:
        now = self.now()
        command, days = parse_command(body)
        escalate: _Rung | None = None
        with self.registry.transaction() as session:
            contacts = _contacts_by_phone(session, from_phone)
            inbound = _inbound_row(from_phone, body, sid, contacts, now)
            session.add(inbound)
            if not contacts:
                log.info("sms from unknown number %s ignored", mask(from_phone))
                return None, None
            contact, sub = contacts[0]
            lang = contact.language
            if command == "OK":
                reply, sub, inbound.alert_id = _acknowledge_by_sms(session, contacts, now)
            elif command == "ABSENT":
                reply = _away_by_sms(session, contact, sub, days, now)
            elif command == "RETOUR":
                reply = _back_by_sms(session, contact, sub, now)
            elif command == "STOP":
                reply, escalate = _stop_by_sms(session, contact, now)
            else:
                reply = "help"
            label = sub.person_label
        until = (now + timedelta(days=days)).astimezone(lifecycle.LOCAL_TZ) if days else None
        text = messages.reply_text(
            reply, lang, label=label, until=until.strftime("%d/%m") if until else ""
        )
        return text, escalate

    # --- staff ------------------------------------------------------------------------
    async def acknowledge(
        self, alert_id: int, actor: str, note: str | None = None
    ) -> dict[str, Any]:
        return await asyncio.to_thread(self._staff_action, alert_id, actor, note, "acknowledge")

    async def resolve(self, alert_id: int, actor: str, note: str | None = None) -> dict[str, Any]:
        return await asyncio.to_thread(self._staff_action, alert_id, actor, note, "resolve")

    def _staff_action(
        self, alert_id: int, actor: str, note: str | None, action: str
    ) -> dict[str, Any]:
        now = self.now()
        with self.registry.transaction() as session:
            alert = _alert(session, alert_id)
            try:
                status = lifecycle.transition(alert.status, action)
            except lifecycle.InvalidTransition as err:
                raise AlertConflict(str(err)) from err
            alert.status, alert.next_escalation_at = status, None
            if action == "acknowledge":
                alert.acknowledged_at, alert.acknowledged_by = now, actor
            else:
                alert.resolved_at, alert.resolution = now, "operator"
            details = {"note": note} if note else {}
            _event(session, alert.id, now, f"{action}d", actor, details)
            audit.record(session, actor, f"care.{action}", f"alert:{alert.id}", now, details)
            return _alert_view(session, alert, "fr")

    def list_alerts(
        self,
        *,
        audiences: Sequence[str] = ("family", "household"),
        status: str | None = None,
        kind: str | None = None,
        household_id: str | None = None,
        limit: int = 100,
        offset: int = 0,
        language: str = "fr",
    ) -> tuple[list[dict[str, Any]], int]:
        stmt = select(Alert).where(Alert.audience.in_(audiences))
        if status:
            stmt = stmt.where(Alert.status == status)
        if kind:
            stmt = stmt.where(Alert.kind == kind)
        if household_id:
            stmt = stmt.where(Alert.household_id == household_id)
        with self.registry.reading() as session:
            total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
            page = stmt.order_by(Alert.opened_at.desc(), Alert.id.desc())
            rows = session.scalars(page.limit(min(limit, MAX_LIST)).offset(offset))
            return [_alert_view(session, a, language) for a in rows], total

    def get_alert(self, alert_id: int, language: str = "fr") -> dict[str, Any]:
        with self.registry.reading() as session:
            alert = _alert(session, alert_id)
            out = _alert_view(session, alert, language)
            events = session.scalars(
                select(AlertEvent).where(AlertEvent.alert_id == alert.id).order_by(AlertEvent.id)
            )
            out["events"] = [
                {
                    "at": _iso(e.at),
                    "action": e.action,
                    "actor": e.actor,
                    "details": json.loads(e.details),
                }
                for e in events
            ]
            sms = session.scalars(
                select(SmsMessage).where(SmsMessage.alert_id == alert.id).order_by(SmsMessage.id)
            )
            out["sms"] = [
                {
                    "direction": m.direction,
                    "phone": m.phone,
                    "body": m.body,
                    "status": m.status,
                    "created_at": _iso(m.created_at),
                }
                for m in sms
            ]
            return out

    async def timeline(self, household_id: str, days: int = 7) -> dict[str, Any]:
        """The household page: consumption per hour, alerts and away periods."""
        now = self.now()
        start = now - timedelta(days=days)
        label, meters, away = await asyncio.to_thread(self._household, household_id, now)
        alerts, _ = await asyncio.to_thread(
            lambda: self.list_alerts(household_id=household_id, limit=MAX_LIST)
        )
        points = await self._index_points(meters, start, now)
        consumption = hourly_litres(points)
        last_use = _last_rise(points)
        return {
            "household_id": household_id,
            "person_label": label,
            "last_use_at": _iso(last_use),
            "consumption": consumption,
            "alerts": alerts,
            "away": away,
        }

    def _household(
        self, household_id: str, now: datetime
    ) -> tuple[str | None, list[str], list[dict[str, Any]]]:
        with self.registry.reading() as session:
            sub = _subscription_of(session, household_id, live_only=False)
            meters = meters_of(session, household_id, now.date())
            away = [_away_view(a) for a in _away_rows(session, sub.id)] if sub else []
            return (sub.person_label if sub else None), meters, away

    async def _index_points(
        self, meters: Sequence[str], start: datetime, end: datetime
    ) -> list[tuple[datetime, float]]:
        if self._store is None or not meters:
            return []
        # One meter per dwelling in practice; a swap leaves the new one bound.
        records = await self._store.query(
            METER_INDEX, meters[-1], int(start.timestamp() * 1e9), int(end.timestamp() * 1e9)
        )
        out: list[tuple[datetime, float]] = []
        for r in records:
            value = r.field("index_l")
            if isinstance(value, int | float) and not isinstance(value, bool):
                out.append((datetime.fromtimestamp(r.time_ns / 1e9, UTC), float(value)))
        return out

    def monitored(self) -> list[dict[str, Any]]:
        """For the scoring job: active subscriptions, their meters and away periods."""
        return self.enrolment.monitored()

    # --- sending ----------------------------------------------------------------------
    async def _send_all(self, outgoing: Sequence[_Outgoing]) -> None:
        for out in outgoing:
            await self._send(out)

    async def _send(self, out: _Outgoing) -> None:
        try:
            sid: str | None = await self.channel.send(out.phone, out.body, self._status_callback)
            status = "queued"
        except Exception as err:  # noqa: BLE001 - any provider failure: recorded, next rung asked
            log.warning("sms to %s not accepted: %s", mask(out.phone), type(err).__name__)
            sid, status = None, "failed"
        current = await asyncio.to_thread(self._sent, out.sms_id, sid, status)
        if current is not None:
            await self._escalate_now(current, "delivery_failed")

    def _sent(self, sms_id: int, sid: str | None, status: str) -> _Rung | None:
        """Store the provider's answer; the alert id when its current rung failed."""
        with self.registry.transaction() as session:
            row = session.get(SmsMessage, sms_id)
            if row is None:
                return None
            row.provider_sid, row.status, row.updated_at = sid, status, self.now()
            if status != "failed" or row.alert_id is None:
                return None
            alert = session.get(Alert, row.alert_id)
            if alert and _is_current_rung(session, alert, row):
                return alert.id, alert.escalation_level
            return None


# --- session helpers (module level so one transaction can compose them) ---------------
def _event(
    session: Session,
    alert_id: int,
    at: datetime,
    action: str,
    actor: str,
    details: dict[str, Any] | None = None,
) -> None:
    session.add(
        AlertEvent(
            alert_id=alert_id,
            at=at,
            action=action,
            actor=actor,
            details=json.dumps(details or {}, sort_keys=True, default=str),
        )
    )


def _alert(session: Session, alert_id: int) -> Alert:
    alert = session.get(Alert, alert_id)
    if alert is None:
        raise UnknownAlert(f"alert {alert_id} does not exist")
    return alert


def _subscription_of(
    session: Session, household_id: str | None, live_only: bool = True
) -> CareSubscription | None:
    if household_id is None:
        return None
    stmt = select(CareSubscription).where(CareSubscription.household_id == household_id)
    if live_only:
        stmt = stmt.where(CareSubscription.status != "ended")
    return session.scalars(stmt.order_by(CareSubscription.id.desc()).limit(1)).first()


def _declared_away(session: Session, f: Finding, now: datetime) -> bool:
    """Inactivity while the person is declared away is expected, not an alert (issue 4)."""
    if f.kind != "inactivity":
        return False
    sub = _subscription_of(session, f.household_id)
    if sub is None or current_away(session, sub.id, now) is None:
        return False
    log.info("inactivity finding %s ignored: declared away", f.dedupe_key)
    return True


def _subscription_of_alert(session: Session, alert: Alert) -> CareSubscription | None:
    return session.get(CareSubscription, alert.subscription_id) if alert.subscription_id else None


def _ladder(session: Session, sub: CareSubscription | None, audience: str) -> list[Recipient]:
    """Contacts in order, then the care service (family alerts only: it cares for people)."""
    if sub is None or sub.status != "active":
        return []  # paused or ended: the alert opens for the operator, nobody is texted
    ladder = [
        Recipient(c.id, c.phone, c.language, c.opted_out_at is not None)
        for c in _contacts(session, sub.id)
    ]
    if audience == "family" and sub.care_service_phone:
        ladder.append(Recipient(None, sub.care_service_phone, sub.language))
    return ladder


def _state(alert: Alert) -> lifecycle.AlertState:
    return lifecycle.AlertState(
        alert.kind, alert.audience, alert.status, alert.escalation_level, alert.next_escalation_at
    )


def _queue(
    session: Session, alert: Alert | None, r: Recipient, body: str, now: datetime
) -> _Outgoing:
    row = SmsMessage(
        direction="out",
        phone=r.phone,
        body=body,
        status="sending",
        alert_id=alert.id if alert else None,
        contact_id=r.contact_id,
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    session.flush()
    return _Outgoing(row.id, r.phone, body, alert.id if alert else None)


def _apply(
    session: Session,
    alert: Alert,
    sub: CareSubscription | None,
    ladder: Sequence[Recipient],
    plan: Plan,
    now: datetime,
) -> list[_Outgoing]:
    """Store the plan's state and history; queue its SMS (sent after the commit)."""
    alert.status = plan.status
    alert.escalation_level = plan.escalation_level
    alert.next_escalation_at = plan.next_escalation_at
    if plan.sends and alert.notified_at is None:
        alert.notified_at = now
    out: list[_Outgoing] = []
    for send in plan.sends:
        r = send.recipient
        label = sub.person_label if sub else ""
        since = _since(alert, r.language)
        if send.template == "care_service":
            body = messages.care_service_text(alert.kind, label, since, r.language)
        else:
            body = messages.alert_text(alert.kind, label, since, r.language)
        out.append(_queue(session, alert, r, body, now))
    for action in plan.events:
        details: dict[str, Any] = {"level": plan.escalation_level}
        if plan.sends and action in ("notified", "escalated"):
            r = plan.sends[0].recipient
            details |= {"to": mask(r.phone), "contact_id": r.contact_id}
        if plan.next_escalation_at is not None:
            details["next_at"] = _iso(plan.next_escalation_at)
        _event(session, alert.id, now, action, SYSTEM, details)
    del ladder  # the plan already holds the recipients it chose
    return out


def _told(session: Session, alert: Alert, sub: CareSubscription | None) -> list[Recipient]:
    """Who received this alert's SMS (each once), for the reassuring message."""
    stmt = select(SmsMessage).where(
        SmsMessage.alert_id == alert.id,
        SmsMessage.direction == "out",
        SmsMessage.status.not_in(FAILED_STATUSES),
    )
    ladder = {r.phone: r for r in _ladder(session, sub, alert.audience)}
    seen: dict[str, Recipient] = {}
    for sms in session.scalars(stmt.order_by(SmsMessage.id)):
        if sms.phone in ladder:
            seen.setdefault(sms.phone, ladder[sms.phone])
    return list(seen.values())


def _is_current_rung(session: Session, alert: Alert, sms: SmsMessage) -> bool:
    if alert.status not in (lifecycle.OPEN, lifecycle.NOTIFIED) or alert.escalation_level < 1:
        return False
    ladder = _ladder(session, _subscription_of_alert(session, alert), alert.audience)
    if alert.escalation_level > len(ladder):
        return False
    rung = ladder[alert.escalation_level - 1]
    return rung.phone == sms.phone and rung.contact_id == sms.contact_id


def _contacts_by_phone(session: Session, phone: str) -> list[tuple[CareContact, CareSubscription]]:
    stmt = (
        select(CareContact, CareSubscription)
        .join(CareSubscription, CareSubscription.id == CareContact.subscription_id)
        .where(CareContact.phone == phone, CareContact.position > FORMER)
        .where(CareSubscription.status != "ended")
        .order_by(CareSubscription.id)
    )
    return [(row[0], row[1]) for row in session.execute(stmt)]


def _inbound_row(
    phone: str,
    body: str,
    sid: str | None,
    contacts: Sequence[tuple[CareContact, CareSubscription]],
    now: datetime,
) -> SmsMessage:
    return SmsMessage(
        direction="in",
        phone=phone,
        body=body[:1600],
        provider_sid=sid,
        status="received",
        contact_id=contacts[0][0].id if contacts else None,
        created_at=now,
        updated_at=now,
    )


def _acknowledge_by_sms(
    session: Session, contacts: Sequence[tuple[CareContact, CareSubscription]], now: datetime
) -> tuple[str, CareSubscription, int | None]:
    """OK: the newest unresolved alert of the sender's subscriptions is taken care of."""
    by_sub = {s.id: (c, s) for c, s in contacts}
    stmt = (
        select(Alert)
        .where(Alert.subscription_id.in_(by_sub), Alert.status != lifecycle.RESOLVED)
        .where(Alert.audience.in_(lifecycle.SMS_AUDIENCES))
        .order_by(Alert.opened_at.desc(), Alert.id.desc())
    )
    alert = session.scalars(stmt.limit(1)).first()
    if alert is None or alert.subscription_id is None:
        return "nothing_to_acknowledge", contacts[0][1], None
    contact, sub = by_sub[alert.subscription_id]
    if alert.status != lifecycle.ACKNOWLEDGED:
        alert.status = lifecycle.transition(alert.status, "acknowledge")
        alert.acknowledged_at, alert.acknowledged_by = now, f"contact:{contact.id}"
        alert.next_escalation_at = None
        _event(session, alert.id, now, "acknowledged", f"contact:{contact.id}", {"via": "sms"})
    return "acknowledged", sub, alert.id


def _away_by_sms(
    session: Session, contact: CareContact, sub: CareSubscription, days: int | None, now: datetime
) -> str:
    """ABSENT [n]: away from now for n days, or until RETOUR."""
    n = min(days, MAX_AWAY_DAYS) if days else None
    end = now + timedelta(days=n) if n else None
    start_away_in(session, sub.id, now, end, "sms", now)
    actor = f"contact:{contact.id}"
    audit.record(session, actor, "care.away", f"care:{sub.id}", now, {"days": n, "via": "sms"})
    return "away_until" if n else "away_open"


def _back_by_sms(
    session: Session, contact: CareContact, sub: CareSubscription, now: datetime
) -> str:
    """RETOUR: the away period ends; a "water used while away" alert is then explained."""
    period = end_away_in(session, sub.id, now)
    if period is None:
        return "not_away"
    actor = f"contact:{contact.id}"
    audit.record(session, actor, "care.back", f"care:{sub.id}", now, {"via": "sms"})
    stmt = select(Alert).where(
        Alert.subscription_id == sub.id,
        Alert.kind == "use_while_away",
        Alert.status != lifecycle.RESOLVED,
    )
    for alert in session.scalars(stmt):
        alert.status, alert.resolved_at, alert.resolution = lifecycle.RESOLVED, now, "back_home"
        alert.next_escalation_at = None
        _event(session, alert.id, now, "resolved", actor, {"reason": "back_home"})
    return "back"


def _stop_by_sms(session: Session, contact: CareContact, now: datetime) -> tuple[str, _Rung | None]:
    """STOP: no more SMS to this number; an alert waiting on them moves to the next rung."""
    if contact.opted_out_at is None:
        contact.opted_out_at = now
    actor = f"contact:{contact.id}"
    audit.record(session, actor, "care.opt_out", f"care:{contact.subscription_id}", now)
    stmt = select(Alert).where(
        Alert.subscription_id == contact.subscription_id,
        Alert.status.in_((lifecycle.OPEN, lifecycle.NOTIFIED)),
    )
    waiting = None
    for alert in session.scalars(stmt):
        last = session.scalars(
            select(SmsMessage)
            .where(SmsMessage.alert_id == alert.id, SmsMessage.direction == "out")
            .order_by(SmsMessage.id.desc())
            .limit(1)
        ).first()
        if last is not None and last.contact_id == contact.id:
            waiting = (alert.id, alert.escalation_level)
    return "stopped", waiting


def _alert_view(session: Session, alert: Alert, language: str) -> dict[str, Any]:
    sub = _subscription_of_alert(session, alert)
    return {
        "id": alert.id,
        "kind": alert.kind,
        "audience": alert.audience,
        "status": alert.status,
        "household_id": alert.household_id,
        "device_id": alert.device_id,
        "person_label": sub.person_label if sub else None,
        "explanation": explanation_text(alert.explanation, language),
        "score": alert.score,
        "opened_at": _iso(alert.opened_at),
        "notified_at": _iso(alert.notified_at),
        "acknowledged_at": _iso(alert.acknowledged_at),
        "acknowledged_by": alert.acknowledged_by,
        "resolved_at": _iso(alert.resolved_at),
        "resolution": alert.resolution,
        "escalation_level": alert.escalation_level,
        "next_escalation_at": _iso(alert.next_escalation_at),
    }


def _last_rise(points: Sequence[tuple[datetime, float]]) -> datetime | None:
    for (_, before), (at, after) in zip(reversed(points[:-1]), reversed(points[1:]), strict=True):
        if after > before:
            return at
    return None
