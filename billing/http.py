"""The fee simulator over HTTP: what staff use on the phone and territories publish.

``POST /api/billing/simulate`` prices a hypothetical household (no registry, no
personal data) with the same engine and the same inputs as ``foyer billing
simulate``; ``GET /api/billing/tariffs`` lists the tariffs it can use. Both are
public: a territory links its residents' fee simulator to them. JSON numbers are read
as exact decimals from their text (``2.8`` is 2.8, never a binary float).
"""

from __future__ import annotations

import argparse
import json
from datetime import date
from decimal import Decimal, InvalidOperation
from functools import partial
from typing import Any, Final

from aiohttp import web

from billing import rules
from billing.book import TariffBook
from billing.cli import simulated_account
from billing.errors import BillingError
from billing.model import Period, bill_as_dict
from core.http.auth import json_error, public

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
        account = simulated_account(args, tariff, period)
        bill = rules.compute(
            tariff,
            account,
            period,
            language=args.lang,
            carried_over=_decimal(body, "carried_over") or Decimal(0),
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
