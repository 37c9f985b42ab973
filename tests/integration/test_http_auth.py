"""Staff authentication and roles on the real aiohttp app, as `foyer serve` builds it."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import yarl

from core.http.auth import PUBLIC, roles_of
from core.registry.people import People
from core.registry.service import Registry
from core.service import Foyer, running
from core.settings import Settings

PASSWORD = "correct horse battery"
ROLES = ("technician", "care", "billing", "admin")


@pytest.fixture
async def foyer(tmp_path: Path) -> AsyncIterator[Foyer]:
    settings = Settings(data_dir=tmp_path / "data", coap_bind="", http_bind="127.0.0.1:0")
    async with running(settings) as f:
        people = People(f.registry)
        for role in ROLES:
            people.add_user(f"u-{role}", PASSWORD, [role], actor="test")
        yield f


def _client() -> aiohttp.ClientSession:
    # unsafe=True: aiohttp's jar otherwise ignores cookies set by an IP-address host.
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


def _base(foyer: Foyer) -> str:
    return f"http://127.0.0.1:{foyer.http_port}"


async def _login(session: aiohttp.ClientSession, base: str, user: str, pw: str = PASSWORD) -> int:
    async with session.post(f"{base}/api/login", json={"username": user, "password": pw}) as r:
        return r.status


def _routes(foyer: Foyer) -> list[tuple[str, str, frozenset[str]]]:
    """Every (method, concrete path, declared roles) the app serves."""
    assert foyer.http_app is not None
    out = []
    for route in foyer.http_app.router.routes():
        if route.method == "HEAD":
            continue
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or re.sub(r"\{[^}]+\}", "x-1", info.get("formatter", ""))
        out.append((route.method, path, roles_of(route.handler)))
    return out


async def test_every_route_refuses_callers_without_the_right_role(foyer: Foyer) -> None:
    base = _base(foyer)
    routes = _routes(foyer)
    assert len(routes) >= 20, routes  # the walk covers the whole API, not an empty list
    sessions = {}
    for role in ROLES:
        sessions[role] = _client()
        assert await _login(sessions[role], base, f"u-{role}") == 200
    anonymous = _client()
    try:
        for method, path, roles in routes:
            if PUBLIC in roles:
                continue
            async with anonymous.request(method, base + path) as r:
                assert r.status == 401, (method, path)
            for role in ROLES:
                async with sessions[role].request(method, base + path) as r:
                    allowed = role == "admin" or role in roles
                    expected = "served" if allowed else "403"
                    got = "403" if r.status == 403 else "served" if r.status < 500 else "error"
                    assert (got, r.status != 401) == (expected, True), (
                        method,
                        path,
                        role,
                        r.status,
                    )
    finally:
        for s in (*sessions.values(), anonymous):
            await s.close()
    protected = sum(1 for _m, _p, roles in routes if PUBLIC not in roles)
    sample = foyer.metrics.registry.get_sample_value
    assert sample("foyer_http_refused_total", {"reason": "unauthenticated"}) == protected


async def test_public_routes_are_only_the_expected_ones(foyer: Foyer) -> None:
    public = {path for _m, path, roles in _routes(foyer) if PUBLIC in roles}
    assert public == {
        "/",
        "/healthz",
        "/readyz",
        "/metrics",
        "/api/summary",
        "/api/login",
        "/api/logout",
        "/login",
        "/technician",
        "/care",
        "/billing",  # a static page: every piece of data behind it needs the billing role
        "/static/staff.js",  # the staff pages' shared code and style: no data
        "/static/staff.css",
        "/webhooks/twilio/sms",  # verified by Twilio's request signature instead
        "/webhooks/twilio/status",
        "/api/billing/tariffs",  # the residents' fee simulator: published tariffs,
        "/api/billing/simulate",  # a hypothetical household, nothing personal
    }


async def test_wrong_password_is_refused_and_repeated_failures_lock_the_account(
    foyer: Foyer,
) -> None:
    base = _base(foyer)
    async with _client() as s:
        assert await _login(s, base, "u-technician", "wrong password!") == 401
        assert await _login(s, base, "nobody-here", "wrong password!") == 401
        for _ in range(4):
            await _login(s, base, "u-technician", "wrong password!")
        # Locked now, even with the right password.
        assert await _login(s, base, "u-technician") == 429
        assert await _login(s, base, "u-billing") == 200
    sample = foyer.metrics.registry.get_sample_value
    assert sample("foyer_http_refused_total", {"reason": "bad_login"}) == 6
    assert sample("foyer_http_refused_total", {"reason": "locked"}) == 1


async def test_logout_ends_the_session(foyer: Foyer) -> None:
    base = _base(foyer)
    async with _client() as s:
        await _login(s, base, "u-technician")
        cookie = s.cookie_jar.filter_cookies(yarl.URL(base))["foyer_session"].value
        async with s.get(f"{base}/api/me") as r:
            assert (r.status, (await r.json())["roles"]) == (200, ["technician"])
        async with s.post(f"{base}/api/logout") as r:
            assert r.status == 204
    async with (
        aiohttp.ClientSession(cookies={"foyer_session": cookie}) as s2,
        s2.get(f"{base}/api/me") as r,
    ):
        assert r.status == 401  # the old cookie is dead server-side, not only deleted


async def test_api_token_acts_with_the_user_roles_until_revoked(foyer: Foyer) -> None:
    base = _base(foyer)
    people = People(foyer.registry)
    token = people.issue_token("u-technician", "inventory-script", actor="u-admin")
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(headers=headers) as s:
        async with s.get(f"{base}/api/devices") as r:
            assert r.status == 200
        async with s.get(f"{base}/api/audit") as r:
            assert r.status == 403
        people.revoke_token("u-technician", "inventory-script", actor="u-admin")
        async with s.get(f"{base}/api/devices") as r:
            assert r.status == 401


async def test_changes_are_audited_with_who_and_what(foyer: Foyer) -> None:
    base = _base(foyer)
    async with _client() as tech, _client() as admin:
        await _login(tech, base, "u-technician")
        await _login(admin, base, "u-admin")
        Registry.add_household(foyer.registry, "h-9", address="1 rue des Lilas")
        body = {"device_id": "m-9", "kind": "meter", "dwelling_id": "d-h-9", "serial": "S9"}
        async with tech.post(f"{base}/api/devices", json=body) as r:
            assert r.status == 201, await r.text()
        async with admin.get(f"{base}/api/audit", params={"target": "m-9"}) as r:
            entries = (await r.json())["entries"]
    assert [(e["actor"], e["action"]) for e in entries] == [("u-technician", "device.commission")]
    assert entries[0]["details"]["serial"] == "S9"


async def test_passwords_and_tokens_are_never_stored_in_clear(foyer: Foyer, tmp_path: Path) -> None:
    People(foyer.registry).issue_token("u-admin", "t", actor="test")
    raw = (tmp_path / "data" / "registry.sqlite").read_bytes()
    wal = tmp_path / "data" / "registry.sqlite-wal"
    blob = raw + (wal.read_bytes() if wal.exists() else b"")
    assert PASSWORD.encode() not in blob
    assert b"foyer_at_" not in blob
