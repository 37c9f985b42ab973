"""The care API (role "care"; admin passes) and Twilio's two webhooks.

Webhooks are public routes that authenticate themselves: Twilio signs each request
with the account's auth token over the public URL and the form parameters
(X-Twilio-Signature); anything unsigned or wrongly signed is refused with 403 and
counted, before any parameter is looked at.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Final

from aiohttp import web
from twilio.request_validator import RequestValidator, get_signature_algorithm
from twilio.twiml.messaging_response import MessagingResponse

from alerts.enrolment import UPDATABLE, CareConflict, InvalidCare, UnknownSubscription
from alerts.service import AlertConflict, CareService, UnknownAlert
from alerts.sms import INBOUND_PATH, STATUS_CALLBACK_PATH, SmsSettings, mask
from core.http.auth import actor_of, json_error, public, requires
from core.http.requests import int_query, json_body
from core.registry.errors import RegistryError, UnknownHousehold

log = logging.getLogger(__name__)

CARE_SERVICE = web.AppKey("care_service", CareService)
CARE: Final = ("care",)
MAX_DAYS: Final = 31

_STATUS: dict[type[Exception], type[web.HTTPException]] = {
    UnknownSubscription: web.HTTPNotFound,
    UnknownAlert: web.HTTPNotFound,
    UnknownHousehold: web.HTTPNotFound,
    CareConflict: web.HTTPConflict,
    AlertConflict: web.HTTPConflict,
    InvalidCare: web.HTTPBadRequest,
}


class Webhooks:
    """Signature checking for Twilio's callbacks; ``refused(reason)`` counts refusals."""

    def __init__(self, settings: SmsSettings, refused: Callable[[str], None]) -> None:
        self._validator = RequestValidator(settings.auth_token) if settings.auth_token else None
        self._base = settings.public_base_url.rstrip("/")
        self._refused = refused

    async def verified_form(self, request: web.Request) -> dict[str, str]:
        """The form parameters of a correctly signed request, else 403 (counted)."""
        signature = request.headers.get("X-Twilio-Signature", "")
        form = await request.post()
        reason = None
        if self._validator is None or not self._base:
            reason = "not_configured"  # no auth token: nothing can prove it is Twilio
        elif not signature:
            reason = "unsigned"
        else:
            algorithm = get_signature_algorithm(
                request.headers.get("X-Twilio-Webhooks-Signature-Settings")
            )
            url = self._base + request.path_qs
            if not self._validator.validate(url, form, signature, algorithm):
                reason = "bad_signature"
        if reason is not None:
            self._refused(reason)
            log.warning("twilio webhook %s refused: %s", request.path, reason)
            raise web.HTTPForbidden(text=reason)
        return {k: str(v) for k, v in form.items()}


WEBHOOKS = web.AppKey("care_webhooks", Webhooks)


def add_routes(
    app: web.Application,
    service: CareService,
    settings: SmsSettings | None = None,
    refused: Callable[[str], None] = lambda _reason: None,
) -> None:
    """Mount the care API and the webhooks; ``refused`` is called once per refused webhook."""
    app[CARE_SERVICE] = service
    app[WEBHOOKS] = Webhooks(settings or SmsSettings(), refused)
    r = app.router
    r.add_get("/api/care/subscriptions", list_subscriptions)
    r.add_post("/api/care/subscriptions", create_subscription)
    r.add_get("/api/care/subscriptions/{id}", get_subscription)
    r.add_patch("/api/care/subscriptions/{id}", update_subscription)
    r.add_post("/api/care/subscriptions/{id}/end", end_subscription)
    r.add_post("/api/care/subscriptions/{id}/away", start_away)
    r.add_post("/api/care/subscriptions/{id}/back", end_away)
    r.add_get("/api/care/alerts", list_alerts)
    r.add_get("/api/care/alerts/{id}", get_alert)
    r.add_post("/api/care/alerts/{id}/acknowledge", acknowledge)
    r.add_post("/api/care/alerts/{id}/resolve", resolve)
    r.add_get("/api/care/households/{household_id}/timeline", timeline)
    r.add_get("/api/device-alerts", device_alerts)
    r.add_post(INBOUND_PATH, inbound_sms)
    r.add_post(STATUS_CALLBACK_PATH, status_callback)


async def _translated(call: Callable[[], Awaitable[Any]]) -> Any:
    """Registry refusals become HTTP errors with a JSON reason, once."""
    try:
        return await call()
    except RegistryError as err:
        status = next((s for t, s in _STATUS.items() if isinstance(err, t)), web.HTTPBadRequest)
        raise json_error(status, str(err)) from err


def _id(request: web.Request) -> int:
    try:
        return int(request.match_info["id"])
    except ValueError as err:
        raise json_error(web.HTTPNotFound, "no such id") from err


def _time(body: dict[str, Any], name: str, required: bool) -> datetime | None:
    value = body.get(name)
    if value is None or value == "":
        if required:
            raise json_error(web.HTTPBadRequest, f"{name} is required")
        return None
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError as err:
        raise json_error(web.HTTPBadRequest, f"{name}: expected ISO 8601") from err
    if parsed.tzinfo is None:
        raise json_error(web.HTTPBadRequest, f"{name}: ISO time needs a UTC offset")
    return parsed


def _language(request: web.Request) -> str:
    """The operator's language for explanations: ?lang=, else French."""
    return "en" if request.query.get("lang") == "en" else "fr"


def _note(body: dict[str, Any]) -> str | None:
    note = body.get("note")
    if note is not None and (not isinstance(note, str) or len(note) > 500):
        raise json_error(web.HTTPBadRequest, "note: text of at most 500 characters")
    return note or None


# --- subscriptions -----------------------------------------------------------------
@requires(*CARE)
async def list_subscriptions(request: web.Request) -> web.Response:
    enrolment = request.app[CARE_SERVICE].enrolment
    status = request.query.get("status") or None
    rows = await asyncio.to_thread(enrolment.list, status)
    return web.json_response({"subscriptions": rows})


@requires(*CARE)
async def create_subscription(request: web.Request) -> web.Response:
    body = await json_body(request)
    household_id = body.get("household_id")
    if not isinstance(household_id, str) or not household_id:
        raise json_error(web.HTTPBadRequest, "household_id is required")
    fields = {k: body[k] for k in sorted(UPDATABLE) if k in body}
    enrolment = request.app[CARE_SERVICE].enrolment
    actor = actor_of(request)
    view = await _translated(
        lambda: asyncio.to_thread(
            lambda: enrolment.create(
                actor=actor,
                household_id=household_id,
                person_label=fields.get("person_label"),
                consent_note=fields.get("consent_note"),
                contacts=fields.get("contacts"),
                language=fields.get("language") or "fr",
                care_service_phone=fields.get("care_service_phone"),
                sleep_from=fields.get("sleep_from"),
                sleep_to=fields.get("sleep_to"),
            )
        )
    )
    return web.json_response(view, status=201)


@requires(*CARE)
async def get_subscription(request: web.Request) -> web.Response:
    enrolment = request.app[CARE_SERVICE].enrolment
    sub_id = _id(request)
    return web.json_response(await _translated(lambda: asyncio.to_thread(enrolment.get, sub_id)))


@requires(*CARE)
async def update_subscription(request: web.Request) -> web.Response:
    body = await json_body(request)
    fields = {k: body[k] for k in sorted(UPDATABLE) if k in body}
    enrolment = request.app[CARE_SERVICE].enrolment
    sub_id, actor = _id(request), actor_of(request)
    view = await _translated(
        lambda: asyncio.to_thread(lambda: enrolment.update(sub_id, actor=actor, **fields))
    )
    return web.json_response(view)


@requires(*CARE)
async def end_subscription(request: web.Request) -> web.Response:
    enrolment = request.app[CARE_SERVICE].enrolment
    sub_id, actor = _id(request), actor_of(request)
    view = await _translated(lambda: asyncio.to_thread(lambda: enrolment.end(sub_id, actor=actor)))
    return web.json_response(view)


@requires(*CARE)
async def start_away(request: web.Request) -> web.Response:
    body = await json_body(request)
    start, end = _time(body, "start", True), _time(body, "end", False)
    assert start is not None
    enrolment = request.app[CARE_SERVICE].enrolment
    sub_id, actor = _id(request), actor_of(request)
    view = await _translated(
        lambda: asyncio.to_thread(
            lambda: enrolment.start_away(sub_id, start=start, end=end, actor=actor)
        )
    )
    return web.json_response(view, status=201)


@requires(*CARE)
async def end_away(request: web.Request) -> web.Response:
    enrolment = request.app[CARE_SERVICE].enrolment
    sub_id, actor = _id(request), actor_of(request)
    view = await _translated(
        lambda: asyncio.to_thread(lambda: enrolment.end_away(sub_id, actor=actor))
    )
    return web.json_response(view)


# --- alerts --------------------------------------------------------------------------
@requires(*CARE)
async def list_alerts(request: web.Request) -> web.Response:
    service = request.app[CARE_SERVICE]
    q = request.query
    rows, total = await asyncio.to_thread(
        lambda: service.list_alerts(
            status=q.get("status") or None,
            kind=q.get("kind") or None,
            household_id=q.get("household_id") or None,
            limit=int_query(request, "limit", 100),
            offset=int_query(request, "offset", 0),
            language=_language(request),
        )
    )
    return web.json_response({"alerts": rows, "total": total})


@requires(*CARE)
async def get_alert(request: web.Request) -> web.Response:
    service = request.app[CARE_SERVICE]
    alert_id, language = _id(request), _language(request)
    view = await _translated(lambda: asyncio.to_thread(service.get_alert, alert_id, language))
    if view["audience"] == "technician":
        raise json_error(web.HTTPNotFound, f"alert {alert_id} is a device alert")
    return web.json_response(view)


@requires(*CARE)
async def acknowledge(request: web.Request) -> web.Response:
    note = _note(await json_body(request))
    service = request.app[CARE_SERVICE]
    alert_id, actor = _id(request), actor_of(request)
    return web.json_response(await _translated(lambda: service.acknowledge(alert_id, actor, note)))


@requires(*CARE)
async def resolve(request: web.Request) -> web.Response:
    note = _note(await json_body(request))
    service = request.app[CARE_SERVICE]
    alert_id, actor = _id(request), actor_of(request)
    return web.json_response(await _translated(lambda: service.resolve(alert_id, actor, note)))


@requires(*CARE)
async def timeline(request: web.Request) -> web.Response:
    days = int_query(request, "days", 7)
    if not 1 <= days <= MAX_DAYS:
        raise json_error(web.HTTPBadRequest, f"days: 1 to {MAX_DAYS}")
    service = request.app[CARE_SERVICE]
    household_id = request.match_info["household_id"]
    return web.json_response(await service.timeline(household_id, days))


@requires("technician")
async def device_alerts(request: web.Request) -> web.Response:
    service = request.app[CARE_SERVICE]
    rows, _ = await asyncio.to_thread(
        lambda: service.list_alerts(
            audiences=("technician",),
            status=request.query.get("status") or None,
            limit=int_query(request, "limit", 200),
            language=_language(request),
        )
    )
    # No person label on the technicians' page: a device alert is about a device.
    return web.json_response({"alerts": [{**a, "person_label": None} for a in rows]})


# --- webhooks ------------------------------------------------------------------------
@public  # authenticated by Twilio's signature (Webhooks.verified_form)
async def inbound_sms(request: web.Request) -> web.Response:
    form = await request.app[WEBHOOKS].verified_form(request)
    sender, body = form.get("From", ""), form.get("Body", "")
    answer = await request.app[CARE_SERVICE].handle_inbound(sender, body, form.get("MessageSid"))
    twiml = MessagingResponse()
    if answer:
        twiml.message(answer)
    log.info("inbound sms from %s answered", mask(sender))
    return web.Response(text=str(twiml), content_type="application/xml")


@public  # authenticated by Twilio's signature (Webhooks.verified_form)
async def status_callback(request: web.Request) -> web.Response:
    form = await request.app[WEBHOOKS].verified_form(request)
    sid, status = form.get("MessageSid", ""), form.get("MessageStatus", "")
    if not sid or not status:
        raise web.HTTPBadRequest(text="MessageSid and MessageStatus are required")
    await request.app[CARE_SERVICE].delivery_status(sid, status)
    return web.Response(status=204)
