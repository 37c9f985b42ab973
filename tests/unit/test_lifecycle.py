"""The pure alert lifecycle: states, de-duplication, escalation timing, courtesy hours."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from alerts import lifecycle as lc
from alerts import messages
from alerts.lifecycle import AlertState, Recipient

# 2026-11-23 is a Monday; Paris is UTC+1 in November.
NOON = datetime(2026, 11, 23, 11, 0, tzinfo=UTC)  # 12:00 in Paris
NIGHT = datetime(2026, 11, 23, 22, 30, tzinfo=UTC)  # 23:30 in Paris
SEVEN_PARIS = datetime(2026, 11, 24, 6, 0, tzinfo=UTC)  # 07:00 in Paris next morning

ANNE = Recipient(1, "+33611111111", "fr")
BOB = Recipient(2, "+33622222222", "en")
CARE = Recipient(None, "+33140000000", "fr")
LADDER = [ANNE, BOB, CARE]


def _state(kind: str, status: str, level: int, due: datetime | None) -> AlertState:
    return AlertState(kind, "family" if kind == "inactivity" else "household", status, level, due)


def test_transitions_follow_open_notified_acknowledged_resolved() -> None:
    assert lc.transition(lc.OPEN, "notify") == lc.NOTIFIED
    assert lc.transition(lc.NOTIFIED, "acknowledge") == lc.ACKNOWLEDGED
    assert lc.transition(lc.ACKNOWLEDGED, "resolve") == lc.RESOLVED
    assert lc.transition(lc.OPEN, "resolve") == lc.RESOLVED
    assert lc.transition(lc.NOTIFIED, "resolve") == lc.RESOLVED


@pytest.mark.parametrize(
    ("status", "action"),
    [
        (lc.RESOLVED, "acknowledge"),
        (lc.RESOLVED, "resolve"),
        (lc.ACKNOWLEDGED, "notify"),
        (lc.ACKNOWLEDGED, "acknowledge"),
        (lc.OPEN, "reopen"),
    ],
)
def test_transitions_the_state_does_not_allow_are_refused(status: str, action: str) -> None:
    with pytest.raises(lc.InvalidTransition):
        lc.transition(status, action)


def test_one_unresolved_alert_per_dedupe_key() -> None:
    keys = ["inactivity:h1", "leak:h2", "inactivity:h1", "leak:h3"]
    assert lc.new_keys(keys, unresolved_keys=["leak:h2"]) == ["inactivity:h1", "leak:h3"]


def test_inactivity_texts_the_first_contact_at_once_and_escalates_after_20_min() -> None:
    plan = lc.on_open("inactivity", "family", LADDER, NOON)
    assert plan.status == lc.NOTIFIED
    assert [s.recipient for s in plan.sends] == [ANNE]
    assert plan.escalation_level == 1
    assert plan.next_escalation_at == NOON + timedelta(minutes=20)
    assert plan.events == ("notified",)


def test_escalation_waits_until_due_then_asks_the_next_contact() -> None:
    state = _state("inactivity", lc.NOTIFIED, 1, NOON + timedelta(minutes=20))
    assert lc.on_due(state, LADDER, NOON + timedelta(minutes=19)) is None
    plan = lc.on_due(state, LADDER, NOON + timedelta(minutes=20))
    assert plan is not None
    assert [s.recipient for s in plan.sends] == [BOB]
    assert plan.escalation_level == 2
    assert plan.next_escalation_at == NOON + timedelta(minutes=40)
    assert plan.events == ("escalated",)


def test_the_care_service_comes_after_every_contact_then_escalation_stops() -> None:
    state = _state("inactivity", lc.NOTIFIED, 2, NOON)
    plan = lc.on_due(state, LADDER, NOON)
    assert plan is not None
    assert plan.sends[0].recipient == CARE
    assert plan.sends[0].template == "care_service"
    exhausted = lc.on_due(_state("inactivity", lc.NOTIFIED, 3, NOON), LADDER, NOON)
    assert exhausted is not None
    assert exhausted.sends == ()
    assert exhausted.next_escalation_at is None  # left to the operator
    assert exhausted.events == ("escalation_exhausted",)


def test_opted_out_contacts_are_skipped() -> None:
    ladder = [Recipient(1, ANNE.phone, "fr", opted_out=True), BOB, CARE]
    plan = lc.on_open("inactivity", "family", ladder, NOON)
    assert [s.recipient for s in plan.sends] == [BOB]
    assert plan.escalation_level == 2


def test_a_failed_delivery_escalates_before_the_due_time() -> None:
    state = _state("inactivity", lc.NOTIFIED, 1, NOON + timedelta(minutes=20))
    plan = lc.on_due(state, LADDER, NOON + timedelta(minutes=1), force=True)
    assert plan is not None
    assert [s.recipient for s in plan.sends] == [BOB]


def test_acknowledged_alerts_never_escalate() -> None:
    state = _state("inactivity", lc.ACKNOWLEDGED, 1, NOON)
    assert lc.on_due(state, LADDER, NOON + timedelta(hours=2), force=True) is None


def test_technician_alerts_open_without_sms() -> None:
    plan = lc.on_open("device_silent", "technician", LADDER, NOON)
    assert plan.status == lc.OPEN
    assert plan.sends == ()
    assert plan.next_escalation_at is None


def test_inactivity_is_texted_at_night_it_is_urgent() -> None:
    plan = lc.on_open("inactivity", "family", LADDER, NIGHT)
    assert [s.recipient for s in plan.sends] == [ANNE]


def test_a_leak_found_at_night_waits_until_seven_paris_time() -> None:
    plan = lc.on_open("leak", "household", LADDER, NIGHT)
    assert plan.sends == ()
    assert plan.status == lc.OPEN
    assert plan.next_escalation_at == SEVEN_PARIS
    morning = lc.on_due(_state("leak", lc.OPEN, 0, SEVEN_PARIS), LADDER, SEVEN_PARIS)
    assert morning is not None
    assert [s.recipient for s in morning.sends] == [ANNE]
    assert morning.next_escalation_at == SEVEN_PARIS + lc.ESCALATE_AFTER_LEAK


def test_courtesy_window_bounds_in_local_time_across_daylight_saving() -> None:
    # Summer: Paris is UTC+2, so 21:59 local is 19:59 UTC and 22:00 local is 20:00 UTC.
    summer_2159 = datetime(2026, 7, 1, 19, 59, tzinfo=UTC)
    assert lc.quiet_until("leak", summer_2159) is None
    assert lc.quiet_until("leak", summer_2159 + timedelta(minutes=1)) == datetime(
        2026, 7, 2, 5, 0, tzinfo=UTC
    )
    # Just after midnight local: the same morning's 07:00, not the next day's.
    winter_0030 = datetime(2026, 11, 23, 23, 30, tzinfo=UTC)  # 00:30 on the 24th in Paris
    assert lc.quiet_until("leak", winter_0030) == SEVEN_PARIS
    assert lc.quiet_until("leak", SEVEN_PARIS) is None
    assert lc.quiet_until("inactivity", winter_0030) is None


def test_recovery_resolves_and_reassures_whoever_was_told() -> None:
    state = _state("inactivity", lc.NOTIFIED, 2, NOON)
    status, sends = lc.on_recovery(state, [ANNE, BOB], NOON)
    assert status == lc.RESOLVED
    assert [(s.recipient, s.template) for s in sends] == [(ANNE, "recovered"), (BOB, "recovered")]


def test_a_leak_that_stops_at_night_is_not_announced_at_night() -> None:
    status, sends = lc.on_recovery(_state("leak", lc.NOTIFIED, 1, NIGHT), [ANNE], NIGHT)
    assert status == lc.RESOLVED
    assert sends == ()


def test_recovery_of_a_resolved_alert_is_refused() -> None:
    with pytest.raises(lc.InvalidTransition):
        lc.on_recovery(_state("inactivity", lc.RESOLVED, 1, None), [ANNE], NOON)


LABEL = "Jeanne Dupont"  # a long-ish label: texts must still fit one segment


@pytest.mark.parametrize("language", ["fr", "en"])
@pytest.mark.parametrize(
    "kind", ["inactivity", "use_while_away", "leak", "continuous_flow", "meter_alarm"]
)
def test_every_alert_text_is_one_gsm7_segment_and_says_what_to_reply(
    kind: str, language: str
) -> None:
    texts = [
        messages.alert_text(kind, LABEL, "09:12", language),
        messages.care_service_text(kind, LABEL, "09:12", language),
    ]
    for text in texts:
        assert messages.is_gsm7(text), text
        assert messages.segments(text) == 1, (len(text), text)
        assert "OK" in text
    recovered = messages.recovered_text(kind, LABEL, language)
    assert messages.segments(recovered) == 1


def test_french_is_the_default_and_unknown_languages_fall_back_to_it() -> None:
    assert messages.alert_text("leak", "A", "09:00", "de") == messages.alert_text(
        "leak", "A", "09:00", "fr"
    )
    assert "Répondez OK" in messages.alert_text("inactivity", "A", "09:00", "fr")


def test_a_non_gsm7_character_costs_a_ucs2_segment() -> None:
    assert not messages.is_gsm7("prêt")
    assert messages.segments("ê" * 71) == 2
    assert messages.segments("e" * 160) == 1


def test_the_last_use_is_said_as_a_relative_would_say_it() -> None:
    def paris(day: int, h: int, m: int) -> datetime:  # the service passes wall-clock times
        return datetime(2026, 11, day, h, m, tzinfo=lc.LOCAL_TZ)

    ref = paris(23, 10, 30)
    assert messages.when(paris(23, 9, 12), ref, "fr") == "09:12"
    assert messages.when(paris(22, 21, 40), ref, "fr") == "hier 21:40"
    assert messages.when(paris(22, 21, 40), ref, "en") == "yesterday 21:40"
    assert messages.when(paris(20, 21, 40), ref, "fr") == "le 20/11 21:40"
    text = messages.alert_text("inactivity", LABEL, "hier 21:40", "fr")
    assert "depuis hier 21:40" in text and messages.segments(text) == 1
