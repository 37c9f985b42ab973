"""Territory routes through a real aiohttp server over a real registry (SQLite, PostgreSQL).

The staff login middleware is not under test here: a test-only middleware sets the
acting username that the login middleware sets in production.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from core.http import territory as routes
from core.http.auth import ACTOR_KEY, Handler, roles_of
from core.http.keys import REGISTRY
from core.registry import Registry, audit

ACTOR = "billing-1"


@web.middleware
async def acting_as(request: web.Request, handler: Handler) -> web.StreamResponse:
    request[ACTOR_KEY] = ACTOR
    return await handler(request)


@pytest.fixture
async def client(registry: Registry) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    app = web.Application(middlewares=[acting_as])
    app[REGISTRY] = registry
    routes.add_routes(app)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


Client = TestClient[web.Request, web.Application]


async def _json(client: Client, method: str, path: str, status: int, **kw: Any) -> Any:
    response = await client.request(method, path, **kw)
    body = await response.json()
    assert response.status == status, body
    return body


async def _csv(client: Client, kind: str, text: str, status: int) -> Any:
    return await _json(
        client,
        "POST",
        f"/api/territory/import/{kind}?filename={kind}.csv",
        status,
        data=text.encode(),
        headers={"Content-Type": "text/csv"},
    )


def test_every_route_declares_its_roles_and_personal_data_is_billing_only() -> None:
    app = web.Application()
    routes.add_routes(app)
    declared = {
        (r.method, r.resource.canonical): roles_of(r.handler)
        for r in app.router.routes()
        if r.resource is not None and r.method != "HEAD"
    }
    staff = frozenset({"technician", "billing"})
    billing = frozenset({"billing"})
    for (method, path), roles in declared.items():
        readable_by_technicians = method == "GET" and path.startswith(
            ("/api/dwellings", "/api/collection-points")
        )
        assert roles == (staff if readable_by_technicians else billing), (method, path)


async def test_dwelling_create_read_patch_list(client: Client, registry: Registry) -> None:
    created = await _json(
        client, "POST", "/api/dwellings", 201, json={"id": "d-001", "address": "1 rue A"}
    )
    assert created == {"id": "d-001", "address": "1 rue A", "commune": None}
    patched = await _json(client, "PATCH", "/api/dwellings/d-001", 200, json={"commune": "Valence"})
    assert patched["commune"] == "Valence"
    page = await _json(client, "GET", "/api/dwellings?q=rue&limit=10", 200)
    assert page == {"dwellings": [patched], "total": 1}
    got = await _json(client, "GET", "/api/dwellings/d-001", 200)
    assert [h["action"] for h in got["history"]] == ["dwelling.update", "dwelling.create"]
    assert {h["actor"] for h in got["history"]} == {ACTOR}


async def test_refusals_are_json_with_the_right_status(client: Client) -> None:
    body = {"id": "d-001", "address": "1 rue A"}
    await _json(client, "POST", "/api/dwellings", 201, json=body)
    conflict = await _json(client, "POST", "/api/dwellings", 409, json=body)
    assert "already registered" in conflict["error"]
    missing = await _json(client, "GET", "/api/dwellings/d-404", 404)
    assert "d-404" in missing["error"]
    invalid = await _json(client, "POST", "/api/dwellings", 400, json={"id": "x", "address": ""})
    assert "id:" in invalid["error"] and "address:" in invalid["error"]
    await _json(client, "POST", "/api/dwellings", 400, data=b"[1, 2]")
    await _json(client, "GET", "/api/dwellings?limit=many", 400)


async def test_household_moves_in_then_out_then_elsewhere(client: Client) -> None:
    for key in ("d-001", "d-002"):
        await _json(client, "POST", "/api/dwellings", 201, json={"id": key, "address": key})
    household = {"id": "h-001", "name": "Dupont", "size": 3, "dwelling_id": "d-001",
                 "move_in": "2024-01-01"}  # fmt: skip
    created = await _json(client, "POST", "/api/households", 201, json=household)
    assert created["dwelling_id"] == "d-001"
    clash = {"dwelling_id": "d-002", "move_in": "2024-06-01"}
    await _json(client, "POST", "/api/households/h-001/occupancies", 409, json=clash)
    ended = await _json(
        client, "POST", "/api/households/h-001/move-out", 200, json={"move_out": "2024-06-01"}
    )
    assert ended["move_out"] == "2024-06-01"
    moved = await _json(client, "POST", "/api/households/h-001/occupancies", 201, json=clash)
    assert moved["dwelling_id"] == "d-002"
    got = await _json(client, "GET", "/api/households/h-001", 200)
    assert [(o["dwelling_id"], o["move_out"]) for o in got["occupancies"]] == [
        ("d-001", "2024-06-01"),
        ("d-002", None),
    ]
    patched = await _json(client, "PATCH", "/api/households/h-001", 200, json={"size": 4})
    assert patched["size"] == 4
    await _json(client, "PATCH", "/api/households/h-001", 400, json={"id": "h-002"})
    page = await _json(client, "GET", "/api/households?dwelling_id=d-001", 200)
    assert [h["id"] for h in page["households"]] == ["h-001"]


async def test_badge_issue_list_revoke(client: Client) -> None:
    await _json(client, "POST", "/api/dwellings", 201, json={"id": "d-001", "address": "a"})
    await _json(client, "POST", "/api/households", 201, json={"id": "h-001"})
    badge = {"id": "b-0001", "household_id": "h-001", "valid_from": "2024-01-01"}
    await _json(client, "POST", "/api/badges", 201, json=badge)
    await _json(
        client, "POST", "/api/badges", 404, json={**badge, "id": "b-2", "household_id": "h-9"}
    )
    revoked = await _json(
        client, "POST", "/api/badges/b-0001/revoke", 200, json={"valid_to": "2024-03-01"}
    )
    assert revoked["valid_to"] == "2024-03-01"
    valid = await _json(client, "GET", "/api/badges?valid_on=2024-02-01", 200)
    assert valid["total"] == 1
    expired = await _json(client, "GET", "/api/badges?valid_on=2024-03-01", 200)
    assert expired == {"badges": [], "total": 0}


async def test_collection_point_create_and_list(client: Client) -> None:
    body = {"id": "cp-01", "address": "Place du Marché", "commune": "Romans"}
    await _json(client, "POST", "/api/collection-points", 201, json=body)
    page = await _json(client, "GET", "/api/collection-points?commune=romans", 200)
    assert page == {"collection_points": [body], "total": 1}
    got = await _json(client, "GET", "/api/collection-points/cp-01", 200)
    assert got["devices"] == []


async def test_csv_import_good_file_answers_counts(client: Client, registry: Registry) -> None:
    text = "id;address;commune\n" + "".join(f"d-{i:04d};{i} rue A;Valence\n" for i in range(50))
    assert await _csv(client, "dwellings", text, 200) == {"kind": "dwellings", "imported": 50}
    with registry.reading() as session:
        (entry,) = audit.entries(session, target="import:dwellings")
    assert entry["actor"] == ACTOR
    assert entry["details"] == {"file": "dwellings.csv", "kind": "dwellings", "imported": 50}
    page = await _json(client, "GET", "/api/dwellings?limit=10&offset=45", 200)
    assert [d["id"] for d in page["dwellings"]] == [f"d-{i:04d}" for i in range(45, 50)]
    assert page["total"] == 50


async def test_csv_import_bad_file_answers_422_with_the_report_and_imports_nothing(
    client: Client,
) -> None:
    text = "id,address\nd-001,1 rue A\nd-002,\nd-001,3 rue C\n"
    report = await _csv(client, "dwellings", text, 422)
    assert report["problems"] == [
        {"row": 3, "column": "address", "reason": "a value is required"},
        {"row": 4, "column": "id", "reason": "duplicate id: already on row 2"},
    ]
    assert report["more"] == 0
    assert "nothing was imported" in report["error"]
    assert (await _json(client, "GET", "/api/dwellings", 200))["total"] == 0


async def test_csv_import_accepts_a_body_larger_than_aiohttp_default_limit(client: Client) -> None:
    rows = "".join(
        f"d-{i:06d},{i} avenue de la République prolongée,Valence\n" for i in range(25_000)
    )
    text = "id,address,commune\n" + rows
    assert len(text.encode()) > 1024**2
    assert (await _csv(client, "dwellings", text, 200))["imported"] == 25_000


async def test_csv_import_of_an_unknown_kind_is_a_400(client: Client) -> None:
    body = await _csv(client, "meters", "id\nm-001\n", 400)
    assert "collection_points" in body["error"]
