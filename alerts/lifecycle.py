"""The alert lifecycle as pure functions: states, de-duplication, escalation, courtesy hours.

Issue 4, "Alert lifecycle": open -> notified -> acknowledged -> resolved, de-duplicated,
escalated to the next contact when nobody acknowledges in time, auto-resolved with a
reassuring SMS when the condition ends. Nothing here does I/O: each function returns
the plan (new state, SMS to send, next escalation time) that alerts/service.py applies.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Final
from zoneinfo import ZoneInfo

OPEN: Final = "open"
NOTIFIED: Final = "notified"
ACKNOWLEDGED: Final = "acknowledged"
RESOLVED: Final = "resolved"
UNRESOLVED: Final = (OPEN, NOTIFIED, ACKNOWLEDGED)

# Which states each action may leave (the rest are refused: a resolved alert stays so).
_ALLOWED: Final[dict[str, frozenset[str]]] = {
    "notify": frozenset({OPEN, NOTIFIED}),
    "acknowledge": frozenset({OPEN, NOTIFIED}),
    "resolve": frozenset({OPEN, NOTIFIED, ACKNOWLEDGED}),
}
_TARGET: Final = {"notify": NOTIFIED, "acknowledge": ACKNOWLEDGED, "resolve": RESOLVED}

# How long a contact has to answer before the next one is asked, by kind.
# Inactivity may be a fall: the first hour decides the outcome, so a contact who has
# not answered in 20 minutes probably has not seen the SMS.
ESCALATE_AFTER_INACTIVITY: Final = timedelta(minutes=20)
# Water used while declared away: a burglary or a return not announced; worth a call,
# not a race.
ESCALATE_AFTER_USE_WHILE_AWAY: Final = timedelta(hours=1)
# A leak costs water and money, not a life: give the contact half a day.
ESCALATE_AFTER_LEAK: Final = timedelta(hours=4)
ESCALATE_AFTER: Final[dict[str, timedelta]] = {
    "inactivity": ESCALATE_AFTER_INACTIVITY,
    "use_while_away": ESCALATE_AFTER_USE_WHILE_AWAY,
    "leak": ESCALATE_AFTER_LEAK,
    "continuous_flow": ESCALATE_AFTER_LEAK,
    "meter_alarm": ESCALATE_AFTER_LEAK,
}
# Audiences that receive SMS; technician alerts only open for the technicians' page.
SMS_AUDIENCES: Final = frozenset({"family", "household"})
# Night-time courtesy: no SMS between 22:00 and 07:00 local time for what can wait
# until morning. Inactivity is never delayed: it is the urgent case the service exists for.
LOCAL_TZ: Final = ZoneInfo("Europe/Paris")
QUIET_FROM: Final = time(22, 0)
QUIET_TO: Final = time(7, 0)
URGENT_KINDS: Final = frozenset({"inactivity"})


class InvalidTransition(ValueError):
    """An action the alert's current state does not allow (e.g. acknowledging a resolved one)."""


def transition(status: str, action: str) -> str:
    """The state after ``action`` (notify | acknowledge | resolve), or InvalidTransition."""
    allowed = _ALLOWED.get(action)
    if allowed is None:
        raise InvalidTransition(f"unknown action {action!r}")
    if status not in allowed:
        raise InvalidTransition(f"cannot {action} an alert that is {status}")
    return _TARGET[action]


def new_keys(finding_keys: Iterable[str], unresolved_keys: Iterable[str]) -> list[str]:
    """The dedupe keys that open a new alert: one unresolved alert per key, first wins."""
    taken = set(unresolved_keys)
    out: list[str] = []
    for key in finding_keys:
        if key not in taken:
            taken.add(key)
            out.append(key)
    return out


@dataclass(frozen=True)
class Recipient:
    """One rung of the escalation ladder: a contact, or the care service (contact_id None)."""

    contact_id: int | None
    phone: str
    language: str
    opted_out: bool = False


@dataclass(frozen=True)
class AlertState:
    kind: str
    audience: str
    status: str
    escalation_level: int  # how many rungs of the ladder were tried (0: nobody yet)
    next_escalation_at: datetime | None


@dataclass(frozen=True)
class SendSms:
    recipient: Recipient
    level: int  # the rung (1-based) this SMS is for
    template: str  # a key of alerts/messages.py


@dataclass(frozen=True)
class Plan:
    """What to do: the alert's new escalation fields and the SMS to send."""

    status: str
    escalation_level: int
    next_escalation_at: datetime | None
    sends: tuple[SendSms, ...] = ()
    events: tuple[str, ...] = field(default=())  # history actions to record


def quiet_until(kind: str, now: datetime) -> datetime | None:
    """07:00 local when ``now`` is in the courtesy window and the kind can wait, else None."""
    if kind in URGENT_KINDS:
        return None
    local = now.astimezone(LOCAL_TZ)
    if QUIET_TO <= local.time() < QUIET_FROM:
        return None
    day = local.date() if local.time() < QUIET_TO else local.date() + timedelta(days=1)
    # Built from the local wall time so daylight-saving changes land on 07:00 itself.
    return datetime.combine(day, QUIET_TO, tzinfo=LOCAL_TZ).astimezone(now.tzinfo)


def _next_rung(ladder: Sequence[Recipient], level: int) -> int | None:
    """The 1-based rung after ``level`` whose recipient still accepts SMS."""
    for index in range(level, len(ladder)):
        if not ladder[index].opted_out:
            return index + 1
    return None


def _template(ladder: Sequence[Recipient], rung: int) -> str:
    return "care_service" if ladder[rung - 1].contact_id is None else "alert"


def _step(state: AlertState, ladder: Sequence[Recipient], now: datetime) -> Plan:
    """Ask the next rung now (or at 07:00), or stop when the ladder is exhausted."""
    later = quiet_until(state.kind, now)
    if later is not None:
        return Plan(state.status, state.escalation_level, later, events=("deferred_night",))
    rung = _next_rung(ladder, state.escalation_level)
    if rung is None:
        # Everyone was asked: the operator's page shows it, Foyer sends nothing more.
        return Plan(state.status, state.escalation_level, None, events=("escalation_exhausted",))
    send = SendSms(ladder[rung - 1], rung, _template(ladder, rung))
    status = transition(state.status, "notify") if state.status == OPEN else state.status
    due = now + ESCALATE_AFTER.get(state.kind, ESCALATE_AFTER_LEAK)
    event = "notified" if state.escalation_level == 0 else "escalated"
    return Plan(status, rung, due, (send,), (event,))


def on_open(kind: str, audience: str, ladder: Sequence[Recipient], now: datetime) -> Plan:
    """A new alert: the first contact at once (or at 07:00 for what can wait)."""
    state = AlertState(kind, audience, OPEN, 0, None)
    if audience not in SMS_AUDIENCES:
        return Plan(OPEN, 0, None)
    return _step(state, ladder, now)


def on_due(
    state: AlertState, ladder: Sequence[Recipient], now: datetime, *, force: bool = False
) -> Plan | None:
    """The periodic check: escalate when due, or at once when ``force`` (delivery failed)."""
    if state.status not in (OPEN, NOTIFIED) or state.audience not in SMS_AUDIENCES:
        return None
    if not force and (state.next_escalation_at is None or state.next_escalation_at > now):
        return None
    return _step(state, ladder, now)


def on_recovery(
    state: AlertState, notified: Sequence[Recipient], now: datetime
) -> tuple[str, tuple[SendSms, ...]]:
    """Auto-resolve; reassure whoever was told (not at night for what could wait)."""
    status = transition(state.status, "resolve")
    if quiet_until(state.kind, now) is not None:
        return status, ()  # the problem is over: no reason to wake anyone to say so
    sends = tuple(SendSms(r, 0, "recovered") for r in notified if not r.opted_out)
    return status, sends
