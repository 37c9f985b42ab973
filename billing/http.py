"""Billing over HTTP: the public fee simulator, and the billing staff's runs and invoices.

``POST /api/billing/simulate`` prices a hypothetical household (no registry, no
personal data) with the same engine and the same inputs as ``foyer billing
simulate``; ``GET /api/billing/tariffs`` lists the tariffs it can use. Both are
public: a territory links its residents' fee simulator to them. JSON numbers are read
as exact decimals from their text (``2.8`` is 2.8, never a binary float).

The staff routes (``add_staff_routes``, role ``billing``; admin passes) preview, issue
and export runs, and issue credit notes, re-issues and corrections. Debtors' names and
addresses are personal data: they only leave through these routes, and are never
logged. A preview or an issue of 35,000 households takes minutes, so both run as
background jobs: the POST answers 202 with a job at once and
``GET /api/billing/jobs/{job}`` reports its progress, then its result
(docs/billing.md, "Staff page and API").
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from functools import partial
from typing import Any, Final
from zoneinfo import ZoneInfo

from aiohttp import web

from billing import document, export_csv, pdf, pes, rules
from billing.book import TariffBook
from billing.cli import simulated_bill
from billing.errors import BillingError, BillingRunError, UnknownInvoice, UnknownRun
from billing.model import Period, bill_as_dict
from billing.service import BillingService, Issued, Preview, read_tariff
from core.http.auth import actor_of, json_error, public, requires
from core.http.requests import int_query
from core.registry.errors import RegistryError, UnknownHousehold

TARIFFS: Final = web.AppKey("billing_tariffs", TariffBook)
MAX_EVENTS: Final = 2 * 366  # one a day over a year, twice: more is not a household
MAX_BODY: Final = 256 * 1024


def add_routes(app: web.Application, book: TariffBook) -> None:
    app[TARIFFS] = book
    app.router.add_get("/api/billing/tariffs", list_tariffs)
    app.router.add_post("/api/billing/simulate", simulate)


@public  # published tariffs, no personal data
async def list_tariffs(request: web.Request) -> web.Response:
    book = request.app[TARIFFS]
    out: list[dict[str, object]] = []
    for name in book.names():
        try:
            t = book.get(name)
        except BillingError as err:  # a broken file is listed as such, the rest still work
            out.append({"name": name, "error": str(err)})
            continue
        out.append(
            {
                "name": name,
                "title": t.name,
                "territory": t.territory,
                "period": t.period,
                "effective_from": t.effective_from.isoformat(),
                "effective_to": t.effective_to.isoformat(),
                "illustrative": t.illustrative,
                "source": t.source,
            }
        )
    return web.json_response({"tariffs": out})


@public  # a hypothetical household: nothing personal in or out
async def simulate(request: web.Request) -> web.Response:
    body = await _decimal_body(request)
    try:
        tariff = request.app[TARIFFS].get(_text(body, "tariff", required=True))
        period = Period.parse(_text(body, "period", required=True))
        args = _as_args(body)
        bill = simulated_bill(
            args, tariff, period, carried_over=_decimal(body, "carried_over") or Decimal(0)
        )
        split = _split(body)
        shares = rules.split(bill, split) if split else None
    except (BillingError, ValueError, InvalidOperation) as err:
        raise json_error(web.HTTPBadRequest, str(err)) from err
    out = bill_as_dict(bill, shares)
    out["tariff"] = {"name": tariff.name, "illustrative": tariff.illustrative}
    return web.json_response(out, dumps=partial(json.dumps, ensure_ascii=False))


async def _decimal_body(request: web.Request) -> dict[str, Any]:
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise json_error(web.HTTPRequestEntityTooLarge, f"body: more than {MAX_BODY} bytes")
    try:
        body = json.loads(await request.text(), parse_float=Decimal)
    except ValueError as err:
        raise json_error(web.HTTPBadRequest, "body: expected a JSON object") from err
    if not isinstance(body, dict):
        raise json_error(web.HTTPBadRequest, "body: expected a JSON object")
    return body


def _as_args(body: dict[str, Any]) -> argparse.Namespace:
    """The command line's inputs (billing/cli.py) from the JSON body, each checked."""
    known = {
        "tariff", "period", "volume_l", "persons", "category", "move_in", "move_out",
        "lifts", "weight_kg", "deposits", "split", "carried_over", "lang",
    }  # fmt: skip
    unknown = sorted(set(body) - known)
    if unknown:
        raise ValueError(f"{unknown[0]}: unknown field (known: {', '.join(sorted(known))})")
    lifts, n_lifts = _events(body, "lifts", _lift_text)
    deposits, n_deposits = _events(body, "deposits", lambda x, _key: _str(x, "deposits[]"))
    lang = _text(body, "lang") or "fr"
    if lang not in ("fr", "en"):
        raise ValueError("lang: fr or en")
    return argparse.Namespace(
        volume=_int(body, "volume_l"),
        persons=_int(body, "persons"),
        category=_text(body, "category") or "primary",
        first_day=_day(body, "move_in"),
        last_day=_day(body, "move_out"),
        lift=lifts,
        lifts=n_lifts,
        weight=_decimal(body, "weight_kg"),
        deposit=deposits,
        deposits=n_deposits,
        lang=lang,
    )


def _events(body: dict[str, Any], key: str, one: Any) -> tuple[list[str], int]:
    """A count (spread over the occupancy) or a list of events."""
    value = body.get(key, 0)
    if isinstance(value, bool):
        raise ValueError(f"{key}: a count or a list")
    if isinstance(value, int):
        if not 0 <= value <= MAX_EVENTS:
            raise ValueError(f"{key}: between 0 and {MAX_EVENTS}")
        return [], value
    if not isinstance(value, list) or len(value) > MAX_EVENTS:
        raise ValueError(f"{key}: a count or a list of at most {MAX_EVENTS}")
    return [one(x, f"{key}[{i}]") for i, x in enumerate(value)], 0


def _lift_text(item: Any, key: str) -> str:
    """A lift object as the CLI's WHEN[,KG][,refused|unread]."""
    if isinstance(item, str):
        return item
    if not isinstance(item, dict) or not isinstance(item.get("at"), str):
        raise ValueError(f'{key}: expected {{"at": date or time, "kg", "refused", "unread"}}')
    parts = [item["at"]]
    if item.get("kg") is not None:
        parts.append(str(_exact(item["kg"], f"{key}.kg")))
    parts += [flag for flag in ("refused", "unread") if item.get(flag) is True]
    return ",".join(parts)


def _split(body: dict[str, Any]) -> list[tuple[str, Decimal]]:
    value = body.get("split") or {}
    if not isinstance(value, dict):
        raise ValueError('split: expected {"dwelling": weight, ...}')
    return [(str(k), _exact(v, f"split.{k}")) for k, v in value.items()]


def _exact(value: Any, key: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | str | Decimal):
        raise ValueError(f"{key}: expected a number")
    try:
        return Decimal(value)
    except InvalidOperation as err:
        raise ValueError(f"{key}: expected a number") from err


def _decimal(body: dict[str, Any], key: str) -> Decimal | None:
    return None if body.get(key) is None else _exact(body[key], key)


def _int(body: dict[str, Any], key: str) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{key}: expected a whole number")
    return value


def _str(value: Any, key: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{key}: expected text")
    return value


def _text(body: dict[str, Any], key: str, required: bool = False) -> str:
    value = body.get(key)
    if value is None and not required:
        return ""
    return _str(value, key)


def _day(body: dict[str, Any], key: str) -> date | None:
    text = _text(body, key)
    try:
        return date.fromisoformat(text) if text else None
    except ValueError as err:
        raise ValueError(f"{key}: expected YYYY-MM-DD") from err


# ==== the billing staff's API ========================================================

STAFF: Final = ("billing",)
SERVICE = web.AppKey("billing_service", BillingService)
PARIS: Final = ZoneInfo("Europe/Paris")  # "today" for an issue date nobody gave
INVOICE_NUMBER: Final = "{number:[A-Za-z0-9_-]+}"  # {year}-{budget}-{seq:06d}
MAX_RUNNING: Final = 2  # jobs computing at once: each holds a whole run in memory
KEEP_FINISHED: Final = 10  # finished jobs kept for their result (a preview's bills)
MAX_TEXT: Final = 500  # a reason is a sentence, not a file

log = logging.getLogger(__name__)


@dataclass
class Job:
    """A preview or an issue running in the background, and what it reported."""

    id: str
    kind: str  # "preview" or "issue"
    key: tuple[str, ...]  # two requests for the same thing share one job
    stage: str = "compute"
    done: int = 0
    total: int = 0
    status: str = "running"  # running, done, failed
    run: int | None = None
    result: dict[str, Any] | None = None
    error: str | None = None
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    def progress(self, stage: str, done: int, total: int) -> None:
        # Called from the service's worker thread: plain attribute writes, read by the
        # loop; a poll may see a stage one report old, never a torn value.
        self.stage, self.done, self.total = stage, done, total

    def view(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "job": self.id,
            "kind": self.kind,
            "status": self.status,
            "stage": self.stage,
            "done": self.done,
            "total": self.total,
            "run": self.run,
        }
        if self.result is not None:
            out["result"] = self.result
        if self.error is not None:
            out["error"] = self.error
        return out


class Jobs:
    """Background billing jobs of this process (lost on restart: nothing is written
    before a preview ends, and an issue interrupted half-way resumes when issued again)."""

    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def start(
        self, kind: str, key: tuple[str, ...], work: Callable[[Job], Awaitable[dict[str, Any]]]
    ) -> Job:
        running = [j for j in self._jobs.values() if j.status == "running"]
        same = next((j for j in running if j.key == key), None)
        if same is not None:
            return same  # a double click or a second officer: one computation, one issue
        if len(running) >= MAX_RUNNING:
            raise json_error(
                web.HTTPTooManyRequests, f"{len(running)} billing jobs running; try again later"
            )
        job = Job(secrets.token_hex(8), kind, key)
        self._jobs[job.id] = job
        job.task = asyncio.create_task(self._run(job, work), name=f"billing-{kind}-{job.id}")
        self._prune()
        return job

    async def _run(self, job: Job, work: Callable[[Job], Awaitable[dict[str, Any]]]) -> None:
        try:
            job.result = await work(job)
            job.run = job.result.get("run", job.run)
            job.status = "done"
        except (BillingError, RegistryError) as err:
            job.error, job.status = str(err), "failed"
            log.info("billing %s job %s refused (%s)", job.kind, job.id, type(err).__name__)
        except Exception:  # a bug: reported to the page, logged with its traceback
            job.error, job.status = "internal error; see the server log", "failed"
            log.exception("billing %s job %s failed", job.kind, job.id)

    def _prune(self) -> None:
        finished = [j for j in self._jobs.values() if j.status != "running"]
        for job in finished[: max(0, len(finished) - KEEP_FINISHED)]:
            del self._jobs[job.id]

    async def close(self) -> None:
        tasks = [j.task for j in self._jobs.values() if j.task is not None and not j.task.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)


JOBS_KEY = web.AppKey("billing_jobs", Jobs)


def add_staff_routes(app: web.Application, service: BillingService, book: TariffBook) -> None:
    """Mount the billing staff's API (role billing); the public routes stay as they are."""
    app[TARIFFS] = book
    app[SERVICE] = service
    jobs = Jobs()
    app[JOBS_KEY] = jobs

    async def close(_app: web.Application) -> None:
        await jobs.close()

    app.on_cleanup.append(close)
    r = app.router
    r.add_get("/api/billing/runs", list_runs)
    r.add_post("/api/billing/runs", start_preview)
    r.add_get("/api/billing/runs/{id}", get_run)
    r.add_post("/api/billing/runs/{id}/issue", start_issue)
    r.add_get("/api/billing/runs/{id}/invoices.pdf", run_pdf)
    r.add_get("/api/billing/runs/{id}/invoices.csv", run_csv)
    r.add_get("/api/billing/runs/{id}/lines.csv", run_lines_csv)
    r.add_get("/api/billing/runs/{id}/pes.xml", run_pes)
    r.add_get("/api/billing/jobs/{job}", get_job)
    r.add_get("/api/billing/invoices", list_invoices)
    r.add_get(f"/api/billing/invoices/{INVOICE_NUMBER}.pdf", invoice_pdf)
    r.add_get(f"/api/billing/invoices/{INVOICE_NUMBER}", get_invoice)
    r.add_post(f"/api/billing/invoices/{INVOICE_NUMBER}/credit", credit_note)
    r.add_post("/api/billing/households/{household}/reissue", reissue)
    r.add_post("/api/billing/corrections", add_correction)


async def _service_call(call: Callable[[], Awaitable[Any]]) -> Any:
    """The service's refusals as HTTP errors with a JSON reason."""
    try:
        return await call()
    except (UnknownRun, UnknownInvoice, UnknownHousehold) as err:
        raise json_error(web.HTTPNotFound, str(err)) from err
    except BillingRunError as err:  # the registry's state does not allow it now
        raise json_error(web.HTTPConflict, str(err)) from err
    except (BillingError, RegistryError) as err:
        raise json_error(web.HTTPBadRequest, str(err)) from err


def _run_id(request: web.Request) -> int:
    try:
        return int(request.match_info["id"])
    except ValueError as err:
        raise json_error(web.HTTPNotFound, "no such billing run") from err


def _issue_day(body: dict[str, Any], key: str, required: bool = False) -> date:
    value = body.get(key)
    if value is None or value == "":
        if required:
            raise json_error(web.HTTPBadRequest, f"{key}: required, YYYY-MM-DD")
        return datetime.now(PARIS).date()
    try:
        return date.fromisoformat(_str(value, key))
    except ValueError as err:
        raise json_error(web.HTTPBadRequest, f"{key}: expected YYYY-MM-DD") from err


def _reason(body: dict[str, Any], required: bool) -> str:
    value = body.get("reason")
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise json_error(web.HTTPBadRequest, "reason: required")
        return ""
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise json_error(web.HTTPBadRequest, f"reason: text of at most {MAX_TEXT} characters")
    return value.strip()


def _period(body: dict[str, Any]) -> Period:
    try:
        return Period.parse(_text(body, "period", required=True))
    except (BillingError, ValueError) as err:
        raise json_error(web.HTTPBadRequest, f"period: {err}") from err


# ---- runs ---------------------------------------------------------------------------


@requires(*STAFF)
async def list_runs(request: web.Request) -> web.Response:
    limit = int_query(request, "limit", 100)
    runs = await asyncio.to_thread(request.app[SERVICE].runs, min(limit, 1000))
    return web.json_response({"runs": runs})


@requires(*STAFF)
async def start_preview(request: web.Request) -> web.Response:
    body = await _decimal_body(request)
    name = _tariff_name(body)
    period = _period(body)
    try:
        ref = request.app[TARIFFS].ref(name)
        tf = await asyncio.to_thread(read_tariff, ref)
    except BillingError as err:
        raise json_error(web.HTTPBadRequest, f"tariff: {err}") from err
    if period.kind != tf.tariff.period or not tf.tariff.covers(period):
        raise json_error(
            web.HTTPBadRequest,
            f"period: {tf.tariff.name} bills by {tf.tariff.period} from "
            f"{tf.tariff.effective_from} to {tf.tariff.effective_to}, not {period.label}",
        )
    service, actor = request.app[SERVICE], actor_of(request)

    async def work(job: Job) -> dict[str, Any]:
        return _run_view(await service.preview(tf, period, actor=actor, progress=job.progress))

    job = request.app[JOBS_KEY].start("preview", ("preview", name, period.label), work)
    return _accepted(job)


def _tariff_name(body: dict[str, Any]) -> str:
    try:
        return _text(body, "tariff", required=True)
    except ValueError as err:
        raise json_error(
            web.HTTPBadRequest, "tariff: a tariff name (GET /api/billing/tariffs)"
        ) from err


def _accepted(job: Job) -> web.Response:
    return web.json_response(
        job.view(), status=202, headers={"Location": f"/api/billing/jobs/{job.id}"}
    )


@requires(*STAFF)
async def get_job(request: web.Request) -> web.Response:
    job = request.app[JOBS_KEY].get(request.match_info["job"])
    if job is None:
        raise json_error(web.HTTPNotFound, "no such billing job (they end with the server)")
    return web.json_response(job.view(), dumps=partial(json.dumps, ensure_ascii=False))


@requires(*STAFF)
async def get_run(request: web.Request) -> web.Response:
    service, run_id = request.app[SERVICE], _run_id(request)
    preview = await _service_call(lambda: asyncio.to_thread(service.run, run_id))
    return web.json_response(_run_view(preview), dumps=partial(json.dumps, ensure_ascii=False))


@requires(*STAFF)
async def start_issue(request: web.Request) -> web.Response:
    body = await _decimal_body(request)
    issued_on = _issue_day(body, "issued_on", required=True)
    service, run_id, actor = request.app[SERVICE], _run_id(request), actor_of(request)
    await _service_call(lambda: asyncio.to_thread(service.run, run_id))  # 404 now, not later

    async def work(job: Job) -> dict[str, Any]:
        job.run = run_id
        issued = await service.issue(
            run_id, actor=actor, issued_on=issued_on, progress=job.progress
        )
        return _run_view(issued)

    job = request.app[JOBS_KEY].start("issue", ("issue", str(run_id)), work)
    return _accepted(job)


def _run_view(outcome: Preview | Issued) -> dict[str, Any]:
    """A preview or an issue as JSON: its fields in order, ``run_id`` named ``run``."""
    fields = asdict(outcome)
    return {"run": fields.pop("run_id"), **fields}


# ---- invoices and exports -----------------------------------------------------------


@requires(*STAFF)
async def list_invoices(request: web.Request) -> web.Response:
    run = request.query.get("run")
    try:
        run_id = int(run) if run else None
    except ValueError as err:
        raise json_error(web.HTTPBadRequest, "run: expected a run id") from err
    rows = await asyncio.to_thread(request.app[SERVICE].invoices, run_id)
    offset, limit = int_query(request, "offset", 0), int_query(request, "limit", 100_000)
    return web.json_response({"invoices": rows[offset : offset + limit], "total": len(rows)})


@requires(*STAFF)
async def get_invoice(request: web.Request) -> web.Response:
    service, number = request.app[SERVICE], request.match_info["number"]
    doc = await _service_call(lambda: asyncio.to_thread(service.document, number))
    # the stored snapshot as it is (its digest checked), plus the totals it implies
    view = json.loads(document.to_json(doc))
    view.update(
        total_before_vat=str(doc.total_before_vat),
        total_vat=str(doc.total_vat),
        total=str(doc.total),
    )
    return web.json_response(view, dumps=partial(json.dumps, ensure_ascii=False))


@requires(*STAFF)
async def invoice_pdf(request: web.Request) -> web.Response:
    service, number = request.app[SERVICE], request.match_info["number"]

    async def render() -> bytes:
        return await asyncio.to_thread(lambda: pdf.render(service.document(number)))

    return _download(await _service_call(render), "application/pdf", f"{number}.pdf")


async def _run_docs(request: web.Request) -> list[document.InvoiceDoc]:
    """Every document of an issued run (invoices, credit notes, re-issues), in number order."""
    service, run_id = request.app[SERVICE], _run_id(request)

    def read() -> list[document.InvoiceDoc]:
        if service.run(run_id).status != "issued":
            raise BillingRunError(f"run {run_id} is not issued: nothing to export yet")
        return [service.document(row["number"]) for row in service.invoices(run_id)]

    docs: list[document.InvoiceDoc] = await _service_call(lambda: asyncio.to_thread(read))
    if not docs:
        raise json_error(web.HTTPConflict, f"run {run_id} issued no invoice (all carried over)")
    return docs


async def _export(work: Callable[[], Any]) -> Any:
    """An exporter's refusal (an issuer code PES V2 cannot take...) is a 409 that says why."""
    try:
        return await asyncio.to_thread(work)
    except BillingError as err:
        raise json_error(web.HTTPConflict, str(err)) from err


@requires(*STAFF)
async def run_pdf(request: web.Request) -> web.Response:
    docs = await _run_docs(request)
    body = await _export(lambda: pdf.render_many(docs))
    return _download(body, "application/pdf", f"run-{_run_id(request)}.pdf")


@requires(*STAFF)
async def run_csv(request: web.Request) -> web.Response:
    docs = await _run_docs(request)
    text = await _export(lambda: export_csv.run_csv(docs))
    return _download(text.encode("utf-8"), "text/csv", f"run-{_run_id(request)}.csv")


@requires(*STAFF)
async def run_lines_csv(request: web.Request) -> web.Response:
    docs = await _run_docs(request)
    text = await _export(lambda: export_csv.lines_csv(docs))
    return _download(text.encode("utf-8"), "text/csv", f"run-{_run_id(request)}-lines.csv")


@requires(*STAFF)
async def run_pes(request: web.Request) -> web.Response:
    """One ORMC bordereau: the run's invoices issued on one day (the run's own issue by
    default; ``?on=`` a later day's re-issues), numbered ``?bordereau=`` or the run id."""
    run_id = _run_id(request)
    invoices = [d for d in await _run_docs(request) if d.kind == "invoice"]
    query = dict(request.query)
    day = _issue_day(query, "on") if query.get("on") else min(d.issued_on for d in invoices)
    chosen = [d for d in invoices if d.issued_on == day]
    if not chosen:
        raise json_error(web.HTTPNotFound, f"on: run {run_id} issued no invoice on {day}")
    bordereau = int_query(request, "bordereau", run_id)
    body = await _export(lambda: pes.ormc_xml(chosen, chosen[0].issuer, bordereau, day))
    name = f"ORMC{day.year}{bordereau:07d}.xml"
    return _download(body, "application/xml", name, charset="iso-8859-1")


def _download(body: bytes, content_type: str, name: str, charset: str = "utf-8") -> web.Response:
    headers = {"Content-Disposition": f'attachment; filename="{name}"'}
    text_type = content_type.startswith("text/") or content_type.endswith("xml")
    return web.Response(
        body=body,
        content_type=content_type,
        charset=charset if text_type else None,
        headers=headers,
    )


# ---- credit notes, re-issue, corrections --------------------------------------------


@requires(*STAFF)
async def credit_note(request: web.Request) -> web.Response:
    body = await _decimal_body(request)
    reason, issued_on = _reason(body, required=True), _issue_day(body, "issued_on")
    service, number, actor = request.app[SERVICE], request.match_info["number"], actor_of(request)
    note = await _service_call(
        lambda: asyncio.to_thread(
            lambda: service.credit_note(number, reason=reason, actor=actor, issued_on=issued_on)
        )
    )
    return web.json_response({"number": note, "cancels": number}, status=201)


@requires(*STAFF)
async def reissue(request: web.Request) -> web.Response:
    body = await _decimal_body(request)
    period, reason = _period(body), _reason(body, required=False)
    issued_on = _issue_day(body, "issued_on")
    service, actor = request.app[SERVICE], actor_of(request)
    household = request.match_info["household"]
    number = await _service_call(
        lambda: service.reissue(
            household, period.label, actor=actor, issued_on=issued_on, reason=reason or None
        )
    )
    # None: the new amount is under the recovery threshold (carried over or cancelled)
    return web.json_response({"number": number, "household": household}, status=201)


@requires(*STAFF)
async def add_correction(request: web.Request) -> web.Response:
    body = await _decimal_body(request)
    household = body.get("household")
    if not isinstance(household, str) or not household:
        raise json_error(web.HTTPBadRequest, "household: required")
    period, reason = _period(body), _reason(body, required=True)
    try:
        amount = _exact(body.get("amount"), "amount")
    except ValueError as err:
        raise json_error(web.HTTPBadRequest, f'{err}, e.g. "-12.50"') from err
    if not _in_cents(amount):
        raise json_error(web.HTTPBadRequest, 'amount: euros with at most 2 decimals, e.g. "-12.50"')
    service, operator = request.app[SERVICE], actor_of(request)
    correction = await _service_call(
        lambda: asyncio.to_thread(
            lambda: service.add_correction(
                household, period.label, amount, operator=operator, reason=reason
            )
        )
    )
    return web.json_response({"id": correction, "household": household}, status=201)


def _in_cents(amount: Decimal) -> bool:
    try:
        return amount.is_finite() and amount == amount.quantize(Decimal("0.01"))
    except InvalidOperation:  # more digits than the context holds: not an amount of money
        return False
