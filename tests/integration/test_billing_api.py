"""The billing staff's API on the real app `foyer serve` builds: the real auth middleware,
a migrated SQLite registry, the embedded telemetry store, a territory's own tariff file."""

from __future__ import annotations

import asyncio
import csv
import io
import logging
import time
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from core.registry import Registry
from core.registry.models import Binding, Device, Dwelling, Household, Occupancy
from core.registry.people import People
from core.service import Foyer, running
from core.settings import Settings
from tests.integration.test_billing_runs import lift, weekly

PASSWORD = "correct horse battery"
TARIFF = "batzendorf-pes"  # the bundled Batzendorf grid, with an issuer PES V2 accepts
DEBTOR = "Famille Muller"  # personal data: served to billing staff, never logged
JOB_DEADLINE_S = 30.0
NS = "{http://www.minefi.gouv.fr/cp/helios/pes_v2/Rev0/aller}"


def pes_ready_tariff() -> str:
    """batzendorf-2013.toml with the codes a PES V2 file needs (illustrative values)."""
    text = resources.files("billing").joinpath("tariffs/batzendorf-2013.toml").read_text()
    text = text.replace('budget_code = "OM"', 'budget_code = "01"')
    return text.replace("[issuer]\n", '[issuer]\npost_code = "067000"\ncollectivity_code = "123"\n')


def seed_batzendorf(registry: Registry) -> None:
    """Batzendorf's move-in example: H1 arrives on 15 March 2013 with a 120 L bin."""
    since = datetime(2010, 1, 1, tzinfo=UTC)
    with registry.transaction() as s:
        s.add(Dwelling(id="D1", address="4 rue des Vergers", commune="67500 Batzendorf"))
        s.add(Household(id="H1", name=DEBTOR, kind="primary"))
        s.add(Device(device_id="B1", kind="bin", volume_l=120, created_at=since))
        s.flush()  # parents first for the foreign keys
        s.add(Occupancy(household_id="H1", dwelling_id="D1", start=date(2013, 3, 15)))
        s.add(Binding(device_id="B1", dwelling_id="D1", valid_from=since))


def batzendorf_events() -> list[Any]:
    """Seven weekly lifts of H1's bin (55.41), and two of a bin nobody bound (anomalies)."""
    return [*weekly("B1", date(2013, 3, 18), 7), lift("B-LOST", date(2013, 4, 2)),
            lift("B-LOST", date(2013, 4, 9))]  # fmt: skip


@pytest.fixture
async def foyer(tmp_path: Path) -> AsyncIterator[Foyer]:
    data = tmp_path / "data"
    (data / "tariffs").mkdir(parents=True)
    (data / "tariffs" / f"{TARIFF}.toml").write_text(pes_ready_tariff(), encoding="utf-8")
    settings = Settings(data_dir=data, coap_bind="", http_bind="127.0.0.1:0")
    async with running(settings) as f:
        people = People(f.registry)
        people.add_user("u-billing", PASSWORD, ["billing"], actor="test")
        people.add_user("u-technician", PASSWORD, ["technician"], actor="test")
        seed_batzendorf(f.registry)
        await f.store.write(batzendorf_events())
        yield f


def _base(foyer: Foyer) -> str:
    return f"http://127.0.0.1:{foyer.http_port}"


async def _session(foyer: Foyer, user: str) -> aiohttp.ClientSession:
    # unsafe=True: aiohttp's jar otherwise ignores cookies set by an IP-address host.
    s = aiohttp.ClientSession(_base(foyer), cookie_jar=aiohttp.CookieJar(unsafe=True))
    async with s.post("/api/login", json={"username": user, "password": PASSWORD}) as r:
        assert r.status == 200
    return s


async def _json(s: aiohttp.ClientSession, method: str, path: str, status: int, **kw: Any) -> Any:
    async with s.request(method, path, **kw) as r:
        body = await r.json()
        assert r.status == status, (path, body)
        return body


async def _finished(s: aiohttp.ClientSession, job: dict[str, Any]) -> dict[str, Any]:
    """Poll a background job until it ends, within a deadline."""
    deadline = time.monotonic() + JOB_DEADLINE_S
    while job["status"] == "running":
        assert time.monotonic() < deadline, job
        await asyncio.sleep(0.05)
        job = await _json(s, "GET", f"/api/billing/jobs/{job['job']}", 200)
    assert job["status"] == "done", job
    return job


async def _bytes(s: aiohttp.ClientSession, path: str, content_type: str) -> bytes:
    async with s.get(path) as r:
        assert (r.status, r.content_type) == (200, content_type), await r.text()
        assert "attachment" in r.headers["Content-Disposition"]
        return await r.read()


async def _preview_and_issue(s: aiohttp.ClientSession) -> tuple[dict[str, Any], list[str]]:
    started = await _json(
        s, "POST", "/api/billing/runs", 202, json={"tariff": TARIFF, "period": "2013-S1"}
    )
    preview = await _finished(s, started)
    run = preview["run"]
    issue = await _json(
        s, "POST", f"/api/billing/runs/{run}/issue", 202, json={"issued_on": "2013-07-10"}
    )
    issued = await _finished(s, issue)
    return preview, issued["result"]["invoices"]


async def test_technician_is_refused_and_billing_staff_preview_issue_and_export_a_run(
    foyer: Foyer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    tech, staff = await _session(foyer, "u-technician"), await _session(foyer, "u-billing")
    try:
        for method, path in (("GET", "/api/billing/runs"), ("POST", "/api/billing/runs"),
                             ("GET", "/api/billing/invoices"),
                             ("GET", "/api/billing/invoices/2013-01-000001.pdf")):  # fmt: skip
            async with tech.request(method, path, json={}) as r:
                assert r.status == 403, (method, path)

        started = await _json(
            staff, "POST", "/api/billing/runs", 202, json={"tariff": TARIFF, "period": "2013-S1"}
        )
        assert started["kind"] == "preview"
        preview = await _finished(staff, started)
        assert (preview["stage"], preview["done"], preview["total"]) == ("compute", 1, 1)
        result, run = preview["result"], preview["run"]
        assert result["bills"] == [{"household": "H1", "total": "55.41", "disposition": "issue"}]
        assert result["summary"]["to_issue"] == {"count": 1, "total": "55.41"}
        assert [(a["reason"], a["ref"]) for a in result["anomalies"]] == [
            ("lift_of_unbound_bin", "B-LOST")
        ] * 2
        runs = await _json(staff, "GET", "/api/billing/runs", 200)
        assert [(r["run"], r["status"], r["total"]) for r in runs["runs"]] == [
            (run, "preview", "55.41")
        ]
        async with staff.get(f"/api/billing/runs/{run}/invoices.pdf") as r:
            assert r.status == 409  # nothing issued yet

        issue = await _json(
            staff, "POST", f"/api/billing/runs/{run}/issue", 202, json={"issued_on": "2013-07-10"}
        )
        issued = await _finished(staff, issue)
        assert issued["result"]["invoices"] == ["2013-01-000001"]
        assert (await _json(staff, "GET", f"/api/billing/runs/{run}", 200))["status"] == "issued"

        listed = await _json(staff, "GET", f"/api/billing/invoices?run={run}", 200)
        assert [(i["number"], i["debtor"], i["total"]) for i in listed["invoices"]] == [
            ("2013-01-000001", "H1", "55.41")
        ]
        doc = await _json(staff, "GET", "/api/billing/invoices/2013-01-000001", 200)
        assert (doc["debtor"]["name"], doc["lines"][0]["amount"]) == (DEBTOR, "25.96")

        one = await _bytes(staff, "/api/billing/invoices/2013-01-000001.pdf", "application/pdf")
        merged = await _bytes(staff, f"/api/billing/runs/{run}/invoices.pdf", "application/pdf")
        assert one.startswith(b"%PDF") and merged.startswith(b"%PDF")

        table = await _bytes(staff, f"/api/billing/runs/{run}/invoices.csv", "text/csv")
        rows = list(csv.DictReader(io.StringIO(table.decode("utf-8-sig")), delimiter=";"))
        assert [(r["number"], r["debtor_name"], r["total"]) for r in rows] == [
            ("2013-01-000001", DEBTOR, "55,41")
        ]
        lines = await _bytes(staff, f"/api/billing/runs/{run}/lines.csv", "text/csv")
        amounts = [r["amount"] for r in csv.DictReader(
            io.StringIO(lines.decode("utf-8-sig")), delimiter=";")]  # fmt: skip
        assert amounts == ["25,96", "9,85", "19,60"]

        xml = await _bytes(staff, f"/api/billing/runs/{run}/pes.xml", "application/xml")
        root = ET.fromstring(xml)  # noqa: S314  (our own output, in a test)
        assert root.tag == f"{NS}PES_Aller"
        block = root.find("PES_RecetteAller/Bordereau/BlocBordereau")
        assert block is not None
        assert block.find("MtBordHt").get("V") == "55.41"  # type: ignore[union-attr]
        assert [e.get("V") for e in root.iter("NumeroFacture")] == ["2013-01-000001"]
    finally:
        await tech.close()
        await staff.close()
    assert DEBTOR not in caplog.text  # names are personal data: never in the log


async def test_a_credit_note_cancels_an_invoice_then_a_corrected_one_is_reissued(
    foyer: Foyer,
) -> None:
    staff = await _session(foyer, "u-billing")
    try:
        _, [number] = await _preview_and_issue(staff)
        path = f"/api/billing/invoices/{number}/credit"
        refused = await _json(staff, "POST", path, 400, json={"reason": "  "})
        assert "reason" in refused["error"]
        body = {"reason": "bac mal attribué", "issued_on": "2013-08-01"}
        note = await _json(staff, "POST", path, 201, json=body)
        assert note == {"number": "2013-01-000002", "cancels": number}
        again = await _json(staff, "POST", path, 409, json=body)
        assert "already cancelled" in again["error"]
        await _json(staff, "POST", "/api/billing/invoices/2013-01-000999/credit", 404, json=body)

        credit = await _json(staff, "GET", "/api/billing/invoices/2013-01-000002", 200)
        assert (credit["kind"], credit["cancels"], credit["reason"]) == (
            "credit_note",
            number,
            "bac mal attribué",
        )
        correction = {"household": "H1", "period": "2013-S1", "amount": "-5.41",
                      "reason": "geste commercial"}  # fmt: skip
        await _json(staff, "POST", "/api/billing/corrections", 201, json=correction)
        reissue = {"period": "2013-S1", "reason": "après avoir", "issued_on": "2013-08-02"}
        out = await _json(staff, "POST", "/api/billing/households/H1/reissue", 201, json=reissue)
        assert out["number"] == "2013-01-000003"
        doc = await _json(staff, "GET", "/api/billing/invoices/2013-01-000003", 200)
        assert doc["total"] == "50.00"  # 55.41 - 5.41, the correction signed by its operator
        assert "u-billing" in doc["lines"][-1]["explanation"]
        listed = await _json(staff, "GET", "/api/billing/invoices", 200)
        assert [(i["number"], i["kind"], i["cancelled_by"]) for i in listed["invoices"]] == [
            (number, "invoice", "2013-01-000002"),
            ("2013-01-000002", "credit_note", None),
            ("2013-01-000003", "invoice", None),
        ]
    finally:
        await staff.close()


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/billing/runs", {"tariff": TARIFF, "period": "2013-S3"}, "period"),
        ("/api/billing/runs", {"tariff": TARIFF, "period": "2014-S1"}, "period"),
        ("/api/billing/runs", {"tariff": TARIFF, "period": "2013"}, "period"),
        ("/api/billing/runs", {"tariff": "../../etc/passwd", "period": "2013-S1"}, "tariff"),
        ("/api/billing/runs", {"tariff": "no-such-tariff", "period": "2013-S1"}, "tariff"),
        ("/api/billing/runs", {"period": "2013-S1"}, "tariff"),
        (
            "/api/billing/corrections",
            {"household": "H1", "period": "2013-S1", "amount": "1.234", "reason": "x"},
            "amount",
        ),
        (
            "/api/billing/corrections",
            {"household": "H1", "period": "2013-S1", "amount": "NaN", "reason": "x"},
            "amount",
        ),
        (
            "/api/billing/corrections",
            {"household": "H1", "period": "2013-S1", "amount": "2"},
            "reason",
        ),
        ("/api/billing/households/H1/reissue", {"period": "S1"}, "period"),
    ],
)
async def test_bad_input_is_a_400_that_names_the_field(
    foyer: Foyer, path: str, body: dict[str, Any], field: str
) -> None:
    staff = await _session(foyer, "u-billing")
    try:
        refused = await _json(staff, "POST", path, 400, json=body)
        assert refused["error"].startswith(field), refused
    finally:
        await staff.close()


async def test_unknown_runs_and_invoices_are_404_and_an_issue_needs_its_date(
    foyer: Foyer,
) -> None:
    staff = await _session(foyer, "u-billing")
    try:
        await _json(staff, "GET", "/api/billing/runs/999", 404)
        await _json(
            staff, "POST", "/api/billing/runs/999/issue", 404, json={"issued_on": "2013-07-10"}
        )
        await _json(staff, "GET", "/api/billing/invoices/2013-01-000001", 404)
        await _json(staff, "GET", "/api/billing/jobs/nope", 404)
        assert (await _json(staff, "GET", "/api/billing/invoices?run=x", 400))["error"].startswith(
            "run"
        )
        started = await _json(
            staff, "POST", "/api/billing/runs", 202, json={"tariff": TARIFF, "period": "2013-S1"}
        )
        run = (await _finished(staff, started))["run"]
        refused = await _json(staff, "POST", f"/api/billing/runs/{run}/issue", 400, json={})
        assert refused["error"].startswith("issued_on")
    finally:
        await staff.close()
