"""The fee simulator over HTTP, through a real aiohttp server and the real auth middleware."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from billing import http as billing_http
from billing.book import TariffBook
from core.http.auth import auth_middleware
from core.registry import Registry
from core.registry.people import People

Client = TestClient[web.Request, web.Application]
MOVE_IN = {"tariff": "batzendorf-2013", "period": "2013-S1", "volume_l": 120}


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[Client]:
    # SQLite only: these routes are public, so the auth middleware never queries the registry.
    registry = Registry(f"sqlite:///{tmp_path / 'registry.sqlite'}")
    registry.upgrade()
    own = tmp_path / "tariffs"
    own.mkdir()
    (own / "broken-2026.toml").write_text('[tariff]\nname = "x"\n')
    refused: list[str] = []
    app = web.Application(middlewares=[auth_middleware(People(registry), refused.append)])
    billing_http.add_routes(app, TariffBook(own))
    async with TestClient(TestServer(app)) as test_client:
        yield test_client
    registry.close()


async def _post(client: Client, body: Any, status: int) -> Any:
    response = await client.post("/api/billing/simulate", json=body)
    out = await response.json()
    assert response.status == status, out
    return out


async def test_a_resident_prices_the_batzendorf_move_in_example_without_logging_in(
    client: Client,
) -> None:
    bill = await _post(client, {**MOVE_IN, "move_in": "2013-03-15", "lifts": 7}, 200)
    assert bill["total"] == "55.41"
    assert [line["amount"] for line in bill["lines"]] == ["25.96", "9.85", "19.60"]
    assert "108/181" in bill["lines"][0]["explanation"]
    assert bill["tariff"] == {"name": "Batzendorf 2013", "illustrative": False}


async def test_json_numbers_are_exact_decimals_and_lifts_can_be_listed(client: Client) -> None:
    lifts: list[dict[str, Any]] = [{"at": f"2013-02-{d:02d}"} for d in range(1, 10)]
    lifts.append({"at": "2013-02-20", "refused": True})
    bill = await _post(client, {**MOVE_IN, "lifts": lifts, "carried_over": 0.1}, 200)
    assert bill["total"] == "85.30"  # 85.20 (9 lifts; the refused one is not billed) + 0.10
    assert [e["reason"] for e in bill["excluded"]] == ["refused"]
    english = await _post(client, {**MOVE_IN, "lifts": 9, "lang": "en"}, 200)
    assert "lifts" in english["lines"][2]["explanation"].lower()


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({**MOVE_IN, "tariff": "../../etc/passwd"}, "not a tariff name"),
        ({**MOVE_IN, "tariff": "nowhere-2013"}, "no bundled tariff"),
        ({**MOVE_IN, "period": "2013-S3"}, "period"),
        ({**MOVE_IN, "lifts": -1}, "lifts"),
        ({**MOVE_IN, "lifts": [{"when": "2013-02-01"}]}, "lifts[0]"),
        ({**MOVE_IN, "volume": 120}, "volume: unknown field"),
        ({**MOVE_IN, "move_in": "15/03/2013"}, "move_in"),
        ({**MOVE_IN, "period": "2014-S1"}, "2014"),
        ([1, 2], "JSON object"),
    ],
)
async def test_bad_input_is_a_400_naming_the_field(client: Client, body: Any, error: str) -> None:
    out = await _post(client, body, 400)
    assert error in out["error"]


async def test_the_tariff_list_shows_bundled_and_own_files_and_flags_a_broken_one(
    client: Client,
) -> None:
    response = await client.get("/api/billing/tariffs")
    tariffs = {t["name"]: t for t in (await response.json())["tariffs"]}
    assert tariffs["batzendorf-2013"]["period"] == "semester"
    assert tariffs["batzendorf-2013"]["illustrative"] is False
    assert "error" in tariffs["broken-2026"]  # listed, the others still served
