"""The care API on a real aiohttp app with the real login middleware, on each registry backend."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from alerts import http as care_http
from alerts.model import Finding
from alerts.service import CareService
from alerts.sms import OutboxChannel
from core.http.auth import auth_middleware, roles_of
from core.records import METER_INDEX, Record
from core.registry import Registry, audit
from core.registry.people import People
from core.store.embedded import EmbeddedStore

ROLES = ("care", "technician", "billing", "admin")
ANNE, BOB = "+33611111111", "+33622222222"
Client = TestClient[web.Request, web.Application]


@pytest.fixture
def registry(registry: Registry) -> Registry:
    registry.add_household("h1", name="Dupont", address="1 rue des Lilas")
    registry.add_household("h2")
    registry.add_device("m-1", "meter", household_id="h1")
    return registry


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[EmbeddedStore]:
    s = EmbeddedStore(tmp_path / "telemetry.sqlite")
    await s.open()
    yield s
    await s.close()


@pytest.fixture
def service(registry: Registry, store: EmbeddedStore, tmp_path: Path) -> CareService:
    return CareService(registry, OutboxChannel(tmp_path / "outbox.jsonl"), store=store)


@pytest.fixture
async def client(registry: Registry, service: CareService) -> AsyncIterator[Client]:
    people = People(registry)
    app = web.Application(middlewares=[auth_middleware(people, lambda _r: None)])
    care_http.add_routes(app, service)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


@pytest.fixture
def tokens(registry: Registry) -> dict[str, str]:
    people = People(registry)
    out = {}
    for role in ROLES:
        people.add_user(f"u-{role}", "correct horse battery", [role], actor="test")
        out[role] = people.issue_token(f"u-{role}", "test", actor="test")
    return out


async def _call(
    client: Client, tokens: dict[str, str], role: str, method: str, path: str, status: int,
    **kw: Any,
) -> Any:  # fmt: skip
    headers = {"Authorization": f"Bearer {tokens[role]}"}
    response = await client.request(method, path, headers=headers, **kw)
    body = await response.json() if response.content_type == "application/json" else None
    assert response.status == status, body
    return body


def _enrolment(**over: Any) -> dict[str, Any]:
    body = {
        "household_id": "h1",
        "person_label": "Jeanne",
        "consent_note": "signed form 2026-114",
        "contacts": [{"name": "Anne", "phone": ANNE}, {"name": "Bob", "phone": BOB}],
    }
    return body | over


def _finding(kind: str, audience: str, key: str) -> Finding:
    return Finding(
        kind=kind,
        audience=audience,
        household_id="h1",
        device_id="m-1",
        at=datetime.now(UTC),
        score=0.99,
        dedupe_key=key,
        explanation={"fr": "pas d'eau depuis 09:12", "en": "no water since 09:12"},
    )


def test_care_routes_are_for_care_and_device_alerts_for_technicians(
    service: CareService,
) -> None:
    app = web.Application()
    care_http.add_routes(app, service)
    for route in app.router.routes():
        if route.method == "HEAD" or route.resource is None:
            continue
        path = route.resource.canonical
        roles = roles_of(route.handler)
        if path.startswith("/api/care/"):
            assert roles == frozenset({"care"}), path
        elif path == "/api/device-alerts":
            assert roles == frozenset({"technician"})
        else:
            assert re.fullmatch(r"/webhooks/twilio/(sms|status)", path)
            assert roles == frozenset({"public"})


@pytest.mark.parametrize("role", ["technician", "billing"])
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/care/subscriptions"),
        ("POST", "/api/care/subscriptions"),
        ("GET", "/api/care/alerts"),
        ("POST", "/api/care/alerts/1/acknowledge"),
        ("GET", "/api/care/households/h1/timeline"),
    ],
)
async def test_care_routes_refuse_technicians_and_billing(
    client: Client, tokens: dict[str, str], role: str, method: str, path: str
) -> None:
    await _call(client, tokens, role, method, path, 403, json=_enrolment())


async def test_care_routes_refuse_anonymous_callers(client: Client) -> None:
    response = await client.get("/api/care/subscriptions")
    assert response.status == 401


async def test_enrolment_records_consent_by_the_operator(
    client: Client, tokens: dict[str, str], registry: Registry
) -> None:
    sub = await _call(
        client, tokens, "care", "POST", "/api/care/subscriptions", 201,
        json=_enrolment(care_service_phone="+33140000000", language="en"),
    )  # fmt: skip
    assert sub["consent_by"] == "u-care" and sub["consent_at"]
    assert sub["status"] == "active" and sub["language"] == "en"
    assert [(c["position"], c["phone"]) for c in sub["contacts"]] == [(1, ANNE), (2, BOB)]
    listed = await _call(client, tokens, "care", "GET", "/api/care/subscriptions", 200)
    assert [s["id"] for s in listed["subscriptions"]] == [sub["id"]]
    with registry.reading() as session:
        [entry] = audit.entries(session, target=f"care:{sub['id']}")
    assert entry["action"] == "care.enrol" and entry["actor"] == "u-care"


@pytest.mark.parametrize(
    ("over", "status", "reason"),
    [
        ({"contacts": [{"name": "Anne", "phone": "0611111111"}]}, 400, "E.164"),
        ({"contacts": [{"name": "Anne", "phone": "+3361"}]}, 400, "E.164"),
        ({"contacts": []}, 400, "contacts"),
        ({"consent_note": ""}, 400, "consent_note"),
        ({"language": "de"}, 400, "language"),
        ({"sleep_from": "25:00"}, 400, "sleep_from"),
        ({"household_id": "nope"}, 404, "nope"),
    ],
)
async def test_bad_enrolments_are_refused_with_a_reason(
    client: Client, tokens: dict[str, str], over: dict[str, Any], status: int, reason: str
) -> None:
    body = await _call(
        client, tokens, "care", "POST", "/api/care/subscriptions", status, json=_enrolment(**over)
    )
    assert reason in body["error"]


async def test_a_household_is_enrolled_once(client: Client, tokens: dict[str, str]) -> None:
    await _call(client, tokens, "care", "POST", "/api/care/subscriptions", 201, json=_enrolment())
    await _call(client, tokens, "care", "POST", "/api/care/subscriptions", 409, json=_enrolment())


async def test_patch_replaces_contacts_in_order_and_renews_consent(
    client: Client, tokens: dict[str, str], registry: Registry
) -> None:
    sub = await _call(
        client, tokens, "care", "POST", "/api/care/subscriptions", 201, json=_enrolment()
    )
    path = f"/api/care/subscriptions/{sub['id']}"
    new = [{"name": "Bob", "phone": BOB}, {"name": "Carla", "phone": "+33633333333"}]
    patched = await _call(
        client, tokens, "admin", "PATCH", path, 200,
        json={"contacts": new, "consent_note": "renewed 2027"},
    )  # fmt: skip
    assert [(c["name"], c["position"]) for c in patched["contacts"]] == [("Bob", 1), ("Carla", 2)]
    assert patched["contacts"][0]["id"] == sub["contacts"][1]["id"]  # Bob's row is kept
    assert patched["consent_by"] == "u-admin" and patched["consent_note"] == "renewed 2027"
    with registry.reading() as session:
        actions = [e["action"] for e in audit.entries(session, target=f"care:{sub['id']}")]
    assert actions[:2] == ["care.update", "care.consent"]
    ended = await _call(client, tokens, "care", "POST", f"{path}/end", 200)
    assert ended["status"] == "ended"
    await _call(client, tokens, "care", "PATCH", path, 409, json={"person_label": "J."})


async def test_away_and_back(client: Client, tokens: dict[str, str]) -> None:
    sub = await _call(
        client, tokens, "care", "POST", "/api/care/subscriptions", 201, json=_enrolment()
    )
    path = f"/api/care/subscriptions/{sub['id']}"
    start = datetime.now(UTC) - timedelta(hours=1)
    away = await _call(
        client, tokens, "care", "POST", f"{path}/away", 201, json={"start": start.isoformat()}
    )
    assert away["source"] == "staff" and away["end"] is None
    await _call(client, tokens, "care", "POST", f"{path}/away", 400, json={"start": "tomorrow"})
    back = await _call(client, tokens, "care", "POST", f"{path}/back", 200)
    assert back["end"] is not None
    await _call(client, tokens, "care", "POST", f"{path}/back", 409)


async def test_alerts_list_acknowledge_and_resolve(
    client: Client, tokens: dict[str, str], service: CareService, registry: Registry
) -> None:
    await _call(client, tokens, "care", "POST", "/api/care/subscriptions", 201, json=_enrolment())
    [alert_id, _] = await service.raise_findings(
        [
            _finding("inactivity", "family", "inactivity:h1"),
            _finding("device_silent", "technician", "silent:m-1"),
        ]
    )
    listed = await _call(client, tokens, "care", "GET", "/api/care/alerts", 200)
    assert listed["total"] == 1  # the device alert is for technicians only
    [alert] = listed["alerts"]
    assert alert["person_label"] == "Jeanne" and alert["status"] == "notified"
    assert alert["explanation"] == "pas d'eau depuis 09:12"
    english = await _call(client, tokens, "care", "GET", "/api/care/alerts?lang=en", 200)
    assert english["alerts"][0]["explanation"] == "no water since 09:12"
    filtered = await _call(client, tokens, "care", "GET", "/api/care/alerts?status=resolved", 200)
    assert filtered == {"alerts": [], "total": 0}

    path = f"/api/care/alerts/{alert_id}"
    acked = await _call(
        client, tokens, "care", "POST", f"{path}/acknowledge", 200, json={"note": "called her"}
    )
    assert acked["status"] == "acknowledged" and acked["acknowledged_by"] == "u-care"
    await _call(client, tokens, "care", "POST", f"{path}/acknowledge", 409)
    resolved = await _call(client, tokens, "care", "POST", f"{path}/resolve", 200)
    assert resolved["status"] == "resolved" and resolved["resolution"] == "operator"
    detail = await _call(client, tokens, "care", "GET", path, 200)
    assert [e["action"] for e in detail["events"]] == [
        "opened", "notified", "acknowledged", "resolved",
    ]  # fmt: skip
    assert detail["events"][2]["details"] == {"note": "called her"}
    assert [(m["direction"], m["phone"]) for m in detail["sms"]] == [("out", ANNE)]
    with registry.reading() as session:
        actions = [e["action"] for e in audit.entries(session, target=f"alert:{alert_id}")]
    assert actions == ["care.resolve", "care.acknowledge"]
    await _call(client, tokens, "care", "GET", "/api/care/alerts/999", 404)


async def test_device_alerts_are_for_technicians_without_personal_labels(
    client: Client, tokens: dict[str, str], service: CareService
) -> None:
    await _call(client, tokens, "care", "POST", "/api/care/subscriptions", 201, json=_enrolment())
    [_, device_alert] = await service.raise_findings(
        [
            _finding("inactivity", "family", "inactivity:h1"),
            _finding("device_silent", "technician", "silent:m-1"),
        ]
    )
    body = await _call(client, tokens, "technician", "GET", "/api/device-alerts", 200)
    assert [(a["id"], a["kind"], a["person_label"]) for a in body["alerts"]] == [
        (device_alert, "device_silent", None)
    ]
    await _call(client, tokens, "care", "GET", "/api/device-alerts", 403)
    await _call(client, tokens, "care", "GET", f"/api/care/alerts/{device_alert}", 404)


async def test_timeline_shows_hourly_litres_alerts_and_away(
    client: Client, tokens: dict[str, str], service: CareService, store: EmbeddedStore
) -> None:
    await _call(client, tokens, "care", "POST", "/api/care/subscriptions", 201, json=_enrolment())
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
    points = [(hour, 1000), (hour + timedelta(minutes=15), 1012), (hour + timedelta(hours=1), 1040)]
    await store.write(
        [Record(METER_INDEX, "m-1", int(t.timestamp() * 1e9), (("index_l", v),)) for t, v in points]
    )
    await service.raise_findings([_finding("inactivity", "family", "inactivity:h1")])
    body = await _call(
        client, tokens, "care", "GET", "/api/care/households/h1/timeline?days=1", 200
    )
    assert body["person_label"] == "Jeanne"
    assert body["consumption"] == [
        {"t": hour.isoformat(), "litres": 12},
        {"t": (hour + timedelta(hours=1)).isoformat(), "litres": 28},
    ]
    assert body["last_use_at"] == (hour + timedelta(hours=1)).isoformat()
    assert [a["kind"] for a in body["alerts"]] == ["inactivity"]
    assert "1 rue des Lilas" not in str(body)  # the address is not care's business
    await _call(client, tokens, "care", "GET", "/api/care/households/h1/timeline?days=99", 400)
