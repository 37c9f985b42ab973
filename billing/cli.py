"""``foyer billing``: simulate a household's bill from a tariff file, check tariff files;
billing runs (preview, issue), credit notes and the invoice list over the registry.

The simulator builds one household with one bin (or none: badge containers only),
runs the pure engine (billing/rules.py) and prints the fee lines and the total, or
the bill as JSON. Usage and an example output: docs/billing.md, "Simulator".
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from datetime import date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from billing import rules
from billing import tariff as tariff_mod
from billing.errors import BillingError
from billing.explain import Words
from billing.model import (
    Account,
    Bill,
    Deposit,
    Equipment,
    Lift,
    Occupancy,
    Period,
    Tariff,
    bill_as_dict,
)
from billing.service import BillingService, read_tariff
from core.registry import Registry, RegistryError
from core.settings import Settings
from core.store.embedded import EmbeddedStore
from core.store.influx import InfluxStore

SIM_HOUSEHOLD = "simulation"
SIM_DWELLING = "logement-1"
SIM_BIN = "bac-1"
SIM_CONTAINER = "conteneur-1"
SIM_BADGE = "badge-1"
LIFT_HOUR = time(6, 0)  # a lift given as a date happens on the morning round
DEPOSIT_HOUR = time(18, 0)
ISSUE_ZONE = "Europe/Paris"  # default issue date: today in metropolitan France


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    billing = sub.add_parser("billing", help="incentive waste fee").add_subparsers(
        required=True, metavar="ACTION"
    )
    sim = billing.add_parser("simulate", help="print the fee lines of one simulated household")
    _simulate_args(sim)
    sim.set_defaults(func=_simulate)
    check = billing.add_parser("check", help="validate tariff files")
    check.add_argument("tariffs", nargs="*", help="files or bundled names (default: bundled)")
    check.set_defaults(func=_check)
    _run_commands(billing)


def _simulate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tariff", required=True, help="a TOML file, or a bundled name")
    p.add_argument("--period", required=True, help="YYYY or YYYY-S1 / YYYY-S2")
    p.add_argument("--volume", type=int, help="bin volume in litres (none: no individual bin)")
    p.add_argument("--persons", type=int, help="persons in the household")
    p.add_argument("--category", default="primary", help="primary, secondary, professional")
    p.add_argument("--from", dest="first_day", type=date.fromisoformat, help="move-in day")
    p.add_argument("--to", dest="last_day", type=date.fromisoformat, help="move-out (last) day")
    p.add_argument(
        "--lift",
        action="append",
        default=[],
        metavar="WHEN[,KG][,refused|unread]",
        help="one lift (date or ISO time), its gross weight, a flag; repeatable",
    )
    p.add_argument("--lifts", type=int, default=0, help="N lifts spread over the occupancy")
    p.add_argument("--weight", type=Decimal, metavar="KG", help="gross weight of each --lifts")
    p.add_argument("--deposit", action="append", default=[], metavar="WHEN", help="repeatable")
    p.add_argument("--deposits", type=int, default=0, help="N openings spread over the occupancy")
    p.add_argument("--split", action="append", default=[], metavar="DWELLING=WEIGHT")
    p.add_argument("--carried-over", type=Decimal, default=Decimal(0), metavar="AMOUNT")
    p.add_argument("--arrears-tariff", help="previous period's tariff (variable parts in arrears)")
    p.add_argument("--lang", default="fr", choices=["fr", "en"])
    p.add_argument("--json", action="store_true", help="print the bill as JSON")


def _simulate(args: argparse.Namespace, settings: object = None) -> int:
    try:
        tariff = _tariff(args.tariff)
        arrears = _tariff(args.arrears_tariff) if args.arrears_tariff else None
        period = Period.parse(args.period)
        bill = simulated_bill(args, tariff, period, carried_over=args.carried_over, arrears=arrears)
        shares = rules.split(bill, _split_keys(args.split)) if args.split else None
    except (BillingError, ValueError, InvalidOperation) as err:
        print(f"foyer billing: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(bill_as_dict(bill, shares), indent=2, ensure_ascii=False))
    else:
        print(format_bill(bill, tariff, shares))
    return 0


def _tariff(name: str) -> Tariff:
    path = Path(name)
    return tariff_mod.load(path) if path.suffix == ".toml" else tariff_mod.bundled(name)


def simulated_bill(
    args: argparse.Namespace,
    tariff: Tariff,
    period: Period,
    *,
    carried_over: Decimal,
    arrears: Tariff | None = None,
) -> Bill:
    """The bill of the simulated household (the CLI's and the API's simulator)."""
    account = simulated_account(args, tariff, period)
    return rules.compute(
        tariff,
        account,
        period,
        language=args.lang,
        arrears_tariff=arrears,
        carried_over=carried_over,
    )


def simulated_account(args: argparse.Namespace, tariff: Tariff, period: Period) -> Account:
    """One household in one dwelling, with at most one bin, from the command line."""
    zone = ZoneInfo(tariff.timezone)
    events = period.previous() if tariff.variable_in_arrears else period
    first = args.first_day or min(period.first_day, events.first_day)
    occupancy = Occupancy(SIM_DWELLING, first, args.last_day)
    span = events.clip(first, args.last_day) or (events.first_day, events.last_day)
    lifts = [_lift(text, zone) for text in args.lift]
    lifts += [Lift(t, SIM_BIN, args.weight) for t in _spread(args.lifts, span, LIFT_HOUR, zone)]
    deposits = [_when(text, zone, DEPOSIT_HOUR) for text in args.deposit]
    deposits += _spread(args.deposits, span, DEPOSIT_HOUR, zone)
    equipment = (
        (Equipment(SIM_BIN, SIM_DWELLING, args.volume, date(1970, 1, 1)),) if args.volume else ()
    )
    return Account(
        household_id=SIM_HOUSEHOLD,
        occupancies=(occupancy,),
        equipment=equipment,
        lifts=tuple(lifts),
        deposits=tuple(Deposit(t, SIM_BADGE, SIM_CONTAINER) for t in deposits),
        persons=args.persons,
        category=args.category,
    )


def _when(text: str, zone: ZoneInfo, default_time: time) -> datetime:
    """A date (at ``default_time``) or an ISO time; without an offset, local time."""
    if len(text) == 10:
        return datetime.combine(date.fromisoformat(text), default_time, tzinfo=zone)
    at = datetime.fromisoformat(text)
    return at if at.tzinfo is not None else at.replace(tzinfo=zone)


def _lift(text: str, zone: ZoneInfo) -> Lift:
    when, *rest = [part.strip() for part in text.split(",")]
    flags = {p for p in rest if p in ("refused", "unread")}
    weights = [p for p in rest if p not in flags]
    if len(weights) > 1:
        raise ValueError(f"--lift {text!r}: expected WHEN[,KG][,refused|unread]")
    return Lift(
        at=_when(when, zone, LIFT_HOUR),
        bin_id=SIM_BIN,
        weight_kg=Decimal(weights[0]) if weights else None,
        refused="refused" in flags,
        chip_read="unread" not in flags,
    )


def _spread(count: int, span: tuple[date, date], at: time, zone: ZoneInfo) -> list[datetime]:
    """``count`` events on distinct days spread evenly over ``span``."""
    days = (span[1] - span[0]).days + 1
    if count > days:
        raise ValueError(f"{count} events do not fit in {days} days, one a day")
    return [
        datetime.combine(span[0] + timedelta(days=i * days // count), at, tzinfo=zone)
        for i in range(count)
    ]


def _split_keys(items: list[str]) -> list[tuple[str, Decimal]]:
    keys = []
    for item in items:
        name, sep, weight = item.partition("=")
        if not sep or not name:
            raise ValueError(f"--split {item!r}: expected DWELLING=WEIGHT")
        keys.append((name, Decimal(weight)))
    return keys


def format_bill(bill: Bill, tariff: Tariff, shares: list[tuple[str, Decimal]] | None) -> str:
    words = Words(bill.language)
    head = f"{tariff.name}, {words.period(bill.period)}"
    if tariff.illustrative:
        head += " (illustrative)"
    out = [head, ""]
    out += [f"{words.money(line.total):>12}  {line.explanation}" for line in bill.lines]
    vat = words.say("total_vat", vat=words.money(bill.total_vat)) if bill.total_vat else ""
    threshold = words.money(bill.threshold)
    out += [
        "",
        words.say("total", amount=words.money(bill.total), vat=vat)
        + f" ({words.say(bill.disposition, threshold=threshold)})",
    ]
    out += [words.say("share", name=n, amount=words.money(a)) for n, a in shares or []]
    out += [words.exclusion(e, ZoneInfo(tariff.timezone)) for e in bill.excluded]
    return "\n".join(out)


def _check(args: argparse.Namespace, settings: object = None) -> int:
    names = args.tariffs or tariff_mod.bundled_names()
    failed = 0
    for name in names:
        try:
            t = _tariff(name)
        except BillingError as err:
            print(f"FAIL {err}", file=sys.stderr)
            failed += 1
            continue
        print(f"ok   {name}: {t.name}, {t.effective_from} to {t.effective_to}, by {t.period}")
    return 1 if failed else 0


# ---- billing runs and invoices (docs/billing.md, "Billing runs and invoices") -----------


def _run_commands(billing: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = billing.add_parser("run", help="billing runs").add_subparsers(
        required=True, metavar="ACTION"
    )
    pre = run.add_parser("preview", help="compute a period's bills; list totals and anomalies")
    pre.add_argument("--tariff", required=True, help="a TOML file, or a bundled name")
    pre.add_argument("--period", required=True, help="YYYY or YYYY-S1 / YYYY-S2")
    _actor_and_json(pre)
    pre.set_defaults(func=_preview)
    iss = run.add_parser("issue", help="number and store a previewed run's invoices")
    iss.add_argument("run_id", type=int)
    iss.add_argument("--on", type=date.fromisoformat, help="issue date (default: today)")
    _actor_and_json(iss)
    iss.set_defaults(func=_issue)
    credit = billing.add_parser("credit", help="cancel an invoice with a credit note")
    credit.add_argument("number")
    credit.add_argument("--reason", required=True)
    credit.add_argument("--on", type=date.fromisoformat, help="issue date (default: today)")
    _actor_and_json(credit)
    credit.set_defaults(func=_credit)
    inv = billing.add_parser("invoices", help="list issued invoices and credit notes")
    inv.add_argument("--run", type=int, help="only this run's")
    inv.add_argument("--json", action="store_true")
    inv.set_defaults(func=_invoices)


def _actor_and_json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--actor", default=_login(), help="name in the audit log and on the run")
    p.add_argument("--json", action="store_true")


def _login() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no login name in a bare container
        return "cli"


@asynccontextmanager
async def _billing(settings: Settings) -> AsyncIterator[BillingService]:
    """The registry and the telemetry store of ``settings``, closed on the way out."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    registry = Registry(settings.registry)
    store: EmbeddedStore | InfluxStore
    if settings.influx_url:
        store = InfluxStore(settings.influx_url, settings.influx_db, settings.influx_token or None)
    else:
        store = EmbeddedStore(settings.data_dir / "telemetry.sqlite")
    try:
        registry.upgrade()
        await store.open()
        yield BillingService(registry, store)
    finally:
        await store.close()
        registry.close()


def _today() -> date:
    # the issue date printed on a bill is a calendar day where the territory is
    return datetime.now(ZoneInfo(ISSUE_ZONE)).date()


def _progress(stage: str, done: int, total: int) -> None:
    end = "\n" if done >= total else ""
    print(f"\r{stage}: {done}/{total} households", end=end, file=sys.stderr, flush=True)


def _guarded(work: Callable[[], Coroutine[Any, Any, int]]) -> int:
    try:
        return asyncio.run(work())
    except (BillingError, RegistryError, OSError) as err:
        print(f"foyer billing: {err}", file=sys.stderr)
        return 1


def _preview(args: argparse.Namespace, settings: Settings) -> int:
    async def work() -> int:
        tf = read_tariff(args.tariff)
        period = Period.parse(args.period)
        async with _billing(settings) as billing:
            run = await billing.preview(tf, period, actor=args.actor, progress=_progress)
        if args.json:
            out = {"summary": run.summary, "anomalies": run.anomalies, "bills": run.bills}
            print(json.dumps(out, indent=2, ensure_ascii=False))
        else:
            print(format_run(run.summary, run.anomalies, run.reused))
        return 0

    return _guarded(work)


def _issue(args: argparse.Namespace, settings: Settings) -> int:
    async def work() -> int:
        on = args.on or _today()
        async with _billing(settings) as billing:
            done = await billing.issue(
                args.run_id, actor=args.actor, issued_on=on, progress=_progress
            )
        if args.json:
            print(json.dumps(done.__dict__, indent=2))
            return 0
        head = "already issued, nothing written" if done.already else "issued"
        print(f"run {done.run_id} {head}: {len(done.invoices)} invoice(s), ", end="")
        print(f"{done.carried} carried over, {done.cancelled} cancelled")
        if done.invoices:
            print(f"numbers {done.invoices[0]} to {done.invoices[-1]}")
        return 0

    return _guarded(work)


def _credit(args: argparse.Namespace, settings: Settings) -> int:
    async def work() -> int:
        on = args.on or _today()
        async with _billing(settings) as billing:
            note = billing.credit_note(
                args.number, reason=args.reason, actor=args.actor, issued_on=on
            )
        print(
            json.dumps({"credit_note": note}) if args.json else f"{args.number} cancelled by {note}"
        )
        return 0

    return _guarded(work)


def _invoices(args: argparse.Namespace, settings: Settings) -> int:
    async def work() -> int:
        async with _billing(settings) as billing:
            rows = billing.invoices(args.run)
        if args.json:
            print(json.dumps(rows, indent=2))
            return 0
        for r in rows:
            state = f"cancelled by {r['cancelled_by']}" if r["cancelled_by"] else ""
            state = f"cancels {r['cancels']}" if r["cancels"] else state
            print(
                f"{r['number']}\t{r['kind']}\t{r['debtor']}\t{r['period']}\t{r['total']}\t{state}"
            )
        return 0

    return _guarded(work)


def format_run(summary: dict[str, Any], anomalies: list[dict[str, Any]], reused: bool) -> str:
    """The run's totals, excluded events by reason, then one line per anomaly."""
    s = summary
    head = f"run {s['run']} ({s.get('status', 'preview')}) {s['territory']} {s['period']}"
    out = [head + (", already issued: nothing computed" if reused else "")]
    out.append(f"tariff {s['tariff']} (sha256 {s['tariff_digest'][:12]})")
    out.append(
        f"households {s['households']}: to issue {s['to_issue']['count']} = "
        f"{s['to_issue']['total']}; carried over {s['carry_over']['count']} = "
        f"{s['carry_over']['total']}; cancelled {s['cancel']['count']} = {s['cancel']['total']}; "
        f"cannot price {s['cannot_price']}"
    )
    excluded = ", ".join(f"{k} {v}" for k, v in s["excluded"].items()) or "none"
    out.append(f"events left out: {excluded}")
    out.append(f"anomalies: {len(anomalies)}")
    for a in anomalies:
        when = f" {a['at']}" if a["at"] else ""
        cols = (a["reason"], a["household"] or "-", a["ref"], f"{when} {a['detail']}".strip())
        out.append("  " + "\t".join(cols))
    return "\n".join(out)
