"""SMS end to end: the real twilio library against a local Twilio stand-in, and Twilio's
signed callbacks into Foyer's real aiohttp app over a real registry (SQLite, PostgreSQL)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy import update

from alerts import http as care_http
from alerts import lifecycle
from alerts.enrolment import Enrolment
from alerts.model import LAST_USE_KEY, Finding, Recovery
from alerts.service import CareService
from alerts.sms import INBOUND_PATH, OutboxChannel, SmsSettings, TwilioChannel, build_channel
from core.http.auth import auth_middleware
from core.registry import Registry
from core.registry.models import CareContact
from core.registry.people import People
from tests.twilio_fake import FROM, FakeTwilio, free_port, running_fake

ANNE, BOB, CARE = "+33611111111", "+33622222222", "+33140000000"


@dataclass
class Stack:
    registry: Registry
    service: CareService
    fake: FakeTwilio
    base: str
    subscription_id: int
    refused: list[str] = field(default_factory=list)

    @property
    def webhook(self) -> str:
        return self.base + INBOUND_PATH

    def alert(self, alert_id: int) -> dict[str, Any]:
        return self.service.get_alert(alert_id)


@pytest.fixture
def registry(registry: Registry) -> Registry:
    registry.add_household("h1", name="Dupont")
    return registry


@pytest.fixture
async def stack(registry: Registry) -> AsyncIterator[Stack]:
    sub = Enrolment(registry).create(
        actor="care-1",
        household_id="h1",
        person_label="Jeanne",
        consent_note="signed form 2026-114",
        contacts=[
            {"name": "Anne", "phone": ANNE},
            {"name": "Bob", "phone": BOB, "language": "en"},
        ],
        care_service_phone=CARE,
    )
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    async with running_fake() as fake:
        settings = SmsSettings(
            account_sid=fake.account_sid,
            auth_token=fake.auth_token,
            from_number=FROM,
            api_base_url=fake.url,
            public_base_url=base,
        )
        service = CareService(
            registry, TwilioChannel(settings), status_callback=settings.status_callback()
        )
        refused: list[str] = []
        app = web.Application(middlewares=[auth_middleware(People(registry), lambda _r: None)])
        care_http.add_routes(app, service, settings, refused.append)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            yield Stack(registry, service, fake, base, int(sub["id"]), refused)
        finally:
            await runner.cleanup()


def _last_use_yesterday_evening() -> str:
    """What the detector stores: the last use, local naive ISO (yesterday 21:40 in Paris)."""
    local = datetime.now(lifecycle.LOCAL_TZ) - timedelta(days=1)
    return local.replace(hour=21, minute=40, tzinfo=None).isoformat(timespec="minutes")


def _inactivity(at: datetime | None = None) -> Finding:
    return Finding(
        kind="inactivity",
        audience="family",
        household_id="h1",
        device_id="m-1",
        at=at or datetime.now(UTC),
        score=0.999,
        dedupe_key="inactivity:h1",
        explanation={
            "fr": "pas d'eau depuis hier 21:40",
            "en": "no water since yesterday 21:40",
            LAST_USE_KEY: _last_use_yesterday_evening(),
        },
    )


async def test_first_contact_gets_the_sms_through_the_real_twilio_library(stack: Stack) -> None:
    [alert_id] = await stack.service.raise_findings([_inactivity()])
    [sent] = stack.fake.sent
    assert sent.to == ANNE and sent.from_ == FROM
    assert "Jeanne" in sent.body and "Répondez OK" in sent.body
    assert "depuis hier 21:40" in sent.body  # when the last water was used, not the alert
    assert "Dupont" not in sent.body  # the label only, never more personal data
    assert sent.status_callback == stack.base + "/webhooks/twilio/status"
    alert = stack.alert(alert_id)
    assert alert["status"] == "notified" and alert["escalation_level"] == 1
    assert alert["sms"][0]["status"] == "queued"
    assert [e["action"] for e in alert["events"]] == ["opened", "notified"]
    assert ANNE not in str(alert["events"])  # phone numbers masked in the history


async def test_the_same_finding_twice_opens_one_alert(stack: Stack) -> None:
    first = await stack.service.raise_findings([_inactivity()])
    again = await stack.service.raise_findings([_inactivity(), _inactivity()])
    assert len(first) == 1 and again == []
    assert len(stack.fake.sent) == 1


async def test_delivery_callbacks_update_the_message_status(stack: Stack) -> None:
    [alert_id] = await stack.service.raise_findings([_inactivity()])
    status, _ = await stack.fake.deliver(stack.fake.sent[0], "delivered")
    assert status == 204
    assert stack.alert(alert_id)["sms"][0]["status"] == "delivered"
    assert stack.alert(alert_id)["escalation_level"] == 1


async def test_a_failed_delivery_escalates_to_the_next_contact_at_once(stack: Stack) -> None:
    [alert_id] = await stack.service.raise_findings([_inactivity()])
    status, _ = await stack.fake.deliver(stack.fake.sent[0], "undelivered")
    assert status == 204
    assert [m.to for m in stack.fake.sent] == [ANNE, BOB]
    assert "Reply OK" in stack.fake.sent[1].body  # Bob reads English
    assert "since yesterday 21:40" in stack.fake.sent[1].body
    alert = stack.alert(alert_id)
    assert alert["escalation_level"] == 2
    assert "delivery_failed" in [e["action"] for e in alert["events"]]


async def test_a_number_twilio_refuses_is_skipped_for_the_next(stack: Stack) -> None:
    stack.fake.refuse_numbers.add(ANNE)
    [alert_id] = await stack.service.raise_findings([_inactivity()])
    assert [m.to for m in stack.fake.sent] == [BOB]
    assert [m["status"] for m in stack.alert(alert_id)["sms"]] == ["failed", "queued"]


async def test_nobody_answering_escalates_to_the_care_service_then_stops(stack: Stack) -> None:
    [alert_id] = await stack.service.raise_findings([_inactivity()])
    later = datetime.now(UTC)
    for _ in range(4):
        later += timedelta(minutes=21)
        await stack.service.escalate_due(later)
    assert [m.to for m in stack.fake.sent] == [ANNE, BOB, CARE]
    assert "aucun proche n'a répondu" in stack.fake.sent[2].body
    alert = stack.alert(alert_id)
    assert alert["next_escalation_at"] is None
    assert alert["events"][-1]["action"] == "escalation_exhausted"


async def test_reply_ok_through_the_signed_webhook_acknowledges(stack: Stack) -> None:
    [alert_id] = await stack.service.raise_findings([_inactivity()])
    status, twiml = await stack.fake.reply(stack.webhook, ANNE, " ok. ")
    assert status == 200
    assert "<Response><Message>" in twiml and "prise en charge" in twiml
    alert = stack.alert(alert_id)
    assert alert["status"] == "acknowledged"
    assert alert["acknowledged_by"] == f"contact:{alert['events'][1]['details']['contact_id']}"
    assert alert["next_escalation_at"] is None
    assert [(m["direction"], m["body"]) for m in alert["sms"]][1] == ("in", " ok. ")
    await stack.service.escalate_due(datetime.now(UTC) + timedelta(hours=2))
    assert len(stack.fake.sent) == 1  # acknowledged: nobody else is texted


async def test_absent_then_retour_set_and_end_away_mode(stack: Stack) -> None:
    status, twiml = await stack.fake.reply(stack.webhook, BOB, "ABSENT 3")
    assert status == 200 and "absence noted until" in twiml
    [away] = stack.service.enrolment.get(stack.subscription_id)["away"]
    assert away["source"] == "sms"
    start, end = datetime.fromisoformat(away["start"]), datetime.fromisoformat(away["end"])
    assert end - start == timedelta(days=3)
    _, twiml = await stack.fake.reply(stack.webhook, BOB, "retour")
    assert "is back" in twiml
    [away] = stack.service.enrolment.get(stack.subscription_id)["away"]
    assert datetime.fromisoformat(away["end"]) < end
    _, twiml = await stack.fake.reply(stack.webhook, ANNE, "ABSENT")
    assert "RETOUR au retour" in twiml
    assert stack.service.enrolment.get(stack.subscription_id)["away"][-1]["end"] is None


async def test_stop_opts_out_and_an_alert_waiting_on_them_moves_on(stack: Stack) -> None:
    [alert_id] = await stack.service.raise_findings([_inactivity()])
    _, twiml = await stack.fake.reply(stack.webhook, ANNE, "STOP")
    assert "plus de SMS" in twiml
    contacts = stack.service.enrolment.get(stack.subscription_id)["contacts"]
    assert [c["opted_out"] for c in contacts] == [True, False]
    assert [m.to for m in stack.fake.sent] == [ANNE, BOB]
    await stack.service.recover([Recovery("inactivity:h1", datetime.now(UTC), "water_resumed")])
    assert [m.to for m in stack.fake.sent[2:]] == [BOB]  # reassured; Anne is not texted
    assert stack.alert(alert_id)["status"] == "resolved"


async def test_recovery_resolves_and_reassures_everyone_told(stack: Stack) -> None:
    [alert_id] = await stack.service.raise_findings([_inactivity()])
    await stack.service.escalate_due(datetime.now(UTC) + timedelta(minutes=21))
    await stack.service.recover([Recovery("inactivity:h1", datetime.now(UTC), "water_resumed")])
    reassured = stack.fake.sent[2:]
    assert [m.to for m in reassured] == [ANNE, BOB]
    assert "bonne nouvelle" in reassured[0].body and "good news" in reassured[1].body
    alert = stack.alert(alert_id)
    assert alert["status"] == "resolved" and alert["resolution"] == "water_resumed"


async def test_no_inactivity_alert_while_declared_away(stack: Stack) -> None:
    await stack.fake.reply(stack.webhook, ANNE, "ABSENT 2")
    sent_before = len(stack.fake.sent)
    assert await stack.service.raise_findings([_inactivity()]) == []
    assert len(stack.fake.sent) == sent_before
    await stack.fake.reply(stack.webhook, ANNE, "RETOUR")
    assert len(await stack.service.raise_findings([_inactivity()])) == 1


async def test_phone_numbers_never_reach_the_log_in_clear(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    stack.fake.refuse_numbers.add(ANNE)
    await stack.service.raise_findings([_inactivity()])
    await stack.fake.deliver(stack.fake.sent[0], "failed")
    await stack.fake.reply(stack.webhook, BOB, "OK")
    await stack.fake.reply(stack.webhook, "+33699999999", "OK")
    assert caplog.records  # the flow did log, with masked numbers
    for number in (ANNE, BOB, CARE, "+33699999999"):
        assert number not in caplog.text
        assert number[1:] not in caplog.text
    assert "+33******11" in caplog.text


def test_without_credentials_sms_go_to_the_outbox(tmp_path: Path) -> None:
    assert isinstance(build_channel(SmsSettings(), tmp_path), OutboxChannel)
    configured = SmsSettings("AC1", "token", FROM)
    assert isinstance(build_channel(configured, tmp_path), TwilioChannel)
    assert configured.status_callback() is None
    assert SmsSettings(public_base_url="https://f.example/").status_callback() == (
        "https://f.example/webhooks/twilio/status"
    )


async def test_unknown_text_gets_help_and_strangers_get_nothing(stack: Stack) -> None:
    _, twiml = await stack.fake.reply(stack.webhook, ANNE, "Bonjour, que faire ?")
    assert "ABSENT 3" in twiml and "STOP" in twiml
    status, twiml = await stack.fake.reply(stack.webhook, "+33699999999", "OK")
    assert status == 200 and "<Message>" not in twiml


@pytest.mark.parametrize(
    ("how", "reason"),
    [
        ({"signature": None}, "unsigned"),
        ({"token": "0" * 32}, "bad_signature"),
        ({"signature": "bm90IGEgc2lnbmF0dXJl"}, "bad_signature"),
    ],
)
async def test_unsigned_or_wrongly_signed_webhooks_are_refused_and_counted(
    stack: Stack, how: dict[str, Any], reason: str
) -> None:
    [alert_id] = await stack.service.raise_findings([_inactivity()])
    status, _ = await stack.fake.reply(stack.webhook, ANNE, "OK", **how)
    assert status == 403
    callback_status, _ = await stack.fake.post_signed(
        stack.base + "/webhooks/twilio/status",
        {"MessageSid": stack.fake.sent[0].sid, "MessageStatus": "failed"},
        **how,
    )
    assert callback_status == 403
    assert stack.refused == [reason, reason]
    alert = stack.alert(alert_id)
    assert alert["status"] == "notified" and alert["sms"][0]["status"] == "queued"
    assert len(stack.fake.sent) == 1


async def test_a_signature_for_other_parameters_is_refused(stack: Stack) -> None:
    await stack.service.raise_findings([_inactivity()])
    params = {"From": ANNE, "Body": "OK", "To": FROM}
    signature = stack.fake.signature(stack.webhook, {**params, "Body": "help"})
    status, _ = await stack.fake.post_signed(stack.webhook, params, signature=signature)
    assert status == 403
    assert stack.refused == ["bad_signature"]


async def test_webhooks_are_refused_when_no_auth_token_is_configured(registry: Registry) -> None:
    refused: list[str] = []
    async with running_fake() as fake:
        service = CareService(registry, TwilioChannel(SmsSettings("AC1", "t", FROM, fake.url)))
        port = free_port()
        app = web.Application()
        care_http.add_routes(app, service, SmsSettings(), refused.append)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            status, _ = await fake.reply(f"http://127.0.0.1:{port}{INBOUND_PATH}", ANNE, "OK")
        finally:
            await runner.cleanup()
    assert status == 403 and refused == ["not_configured"]


@pytest.mark.parametrize("answer", ["undelivered", "STOP"])
async def test_an_escalation_due_while_anne_fails_or_stops_moves_on_once(
    stack: Stack, answer: str
) -> None:
    # The leader's escalation job (every minute) and a webhook (any API process) act on
    # the same alert at the same moment: Bob must get one SMS, the alert go one step.
    for _round in range(4):
        [alert_id] = await stack.service.raise_findings([_inactivity()])
        anne = stack.fake.sent[-1]
        sent_before = len(stack.fake.sent)
        later = datetime.now(UTC) + timedelta(hours=1)  # Anne's wait is over
        webhook = (
            stack.fake.deliver(anne, answer)
            if answer == "undelivered"
            else stack.fake.reply(stack.webhook, ANNE, "STOP")
        )
        await asyncio.gather(webhook, stack.service.escalate_due(later))
        assert [m.to for m in stack.fake.sent[sent_before:]] == [BOB]
        assert stack.alert(alert_id)["escalation_level"] == 2
        await stack.service.resolve(alert_id, "care-1")
        if answer == "STOP":  # Anne back on the list for the next round
            with stack.registry.transaction() as s:
                s.execute(update(CareContact).values(opted_out_at=None))
