"""`foyer` command line: serve, registry administration, demo."""

from __future__ import annotations

import argparse
import asyncio
import csv
import logging
import signal
import sys
from collections.abc import Sequence
from dataclasses import replace
from datetime import date, datetime, time
from pathlib import Path

from alerts import cli as care_cli
from billing import cli as billing_cli
from core import cli_staff, cli_territory, logs
from core import settings as settings_mod
from core.commissioning import cli as commissioning_cli
from core.commissioning.service import CredentialsError
from core.registry import Registry, RegistryError
from core.settings import Settings

log = logging.getLogger("foyer")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = settings_mod.load(args.config)
    except (OSError, settings_mod.SettingsError) as err:
        print(f"foyer: configuration: {err}", file=sys.stderr)
        return 2
    logs.configure(logging.INFO if args.verbose else logging.WARNING, settings.log_format)
    try:
        code: int = args.func(args, settings)
    except (RegistryError, CredentialsError) as err:
        print(f"foyer: {err}", file=sys.stderr)
        return 1
    return code


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="foyer", description=__doc__)
    p.add_argument("--config", type=Path, help="TOML file with a [foyer] table")
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(required=True, metavar="COMMAND")
    serve = sub.add_parser("serve", help="run ingestion, HTTP API and scheduler (or one role)")
    serve.add_argument(
        "--role",
        choices=settings_mod.ROLES,
        help="what this process runs (default: FOYER_ROLE, else all); docs/configuration.md",
    )
    serve.set_defaults(func=_serve)
    sub.add_parser("demo", help="a simulated commune on the embedded store").set_defaults(
        func=_demo
    )
    db = sub.add_parser("db", help="registry schema").add_subparsers(
        required=True, metavar="ACTION"
    )
    db.add_parser("upgrade", help="apply migrations").set_defaults(func=_db_upgrade)
    _store(sub)
    _households(sub)
    _devices(sub)
    cli_staff.register(sub, _registry)
    cli_territory.register(sub)
    care_cli.register(sub)
    billing_cli.register(sub)
    return p


def _store(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    st = sub.add_parser("store", help="telemetry store").add_subparsers(
        required=True, metavar="ACTION"
    )
    st.add_parser(
        "setup", help="InfluxDB 1.x: database, retention policies raw and rollup (idempotent)"
    ).set_defaults(func=_store_setup)
    ru = st.add_parser(
        "rollup", help="recompute the downsampled water use of whole Paris days (InfluxDB)"
    )
    ru.add_argument("first", type=date.fromisoformat, help="first day, YYYY-MM-DD (Paris)")
    ru.add_argument("last", nargs="?", type=date.fromisoformat, help="last day (default: first)")
    ru.set_defaults(func=_store_rollup)


def _store_rollup(args: argparse.Namespace, settings: Settings) -> int:
    """After a repair of raw data, or a gap longer than the job's 2-day catch-up
    (docs/schema.md, "Downsampled water use")."""
    from sqlalchemy.exc import SQLAlchemyError

    from core import rollup_job
    from core.errors import StoreRejected, StoreUnavailable
    from core.store.influx import InfluxStore
    from meters.rollup import PARIS

    last = args.last or args.first
    if not settings.influx_url:
        print("foyer: store rollup: no influx_url (the embedded store has no rollup)",
              file=sys.stderr)  # fmt: skip
        return 1
    if last < args.first:
        print("foyer: store rollup: the last day is before the first", file=sys.stderr)
        return 2

    def ns(day: date) -> int:
        return int(datetime.combine(day, time(12), PARIS).timestamp()) * 10**9

    async def go() -> list[tuple[int, int, int]]:
        store = InfluxStore(settings.influx_url, settings.influx_db, settings.influx_token or None)
        registry = _registry(settings)
        await store.open()
        try:
            return await rollup_job.recompute(store, registry, ns(args.first), ns(last))
        finally:
            await store.close()
            registry.close()

    try:
        done = asyncio.run(go())
    except (StoreUnavailable, StoreRejected, SQLAlchemyError) as err:
        print(f"foyer: store rollup: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
    for day_ns, meters, hours in done:
        day = datetime.fromtimestamp(day_ns / 10**9, PARIS).date()
        print(f"{day.isoformat()}: {meters} meters, {hours} hourly points")
    return 0


def _store_setup(_args: argparse.Namespace, settings: Settings) -> int:
    """docs/schema.md, "Retention policies"; on InfluxDB 2.x/3.x it prints what to do."""
    from core.errors import StoreUnavailable
    from core.store.setup import SetupError, setup

    if not settings.influx_url:
        print("foyer: store setup: no influx_url; the embedded store needs no setup")
        return 0
    try:
        done = asyncio.run(setup(settings))
    except (SetupError, StoreUnavailable) as err:
        print(f"foyer: store setup: {err}", file=sys.stderr)
        return 1
    for line in done or [f"database {settings.influx_db}: already set up, nothing changed"]:
        print(line)
    return 0


def _households(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    h = sub.add_parser("households", help="households").add_subparsers(
        required=True, metavar="ACTION"
    )
    add = h.add_parser("add", help="add a household and its dwelling")
    add.add_argument("household_id")
    add.add_argument("--address")
    add.set_defaults(func=_household_add)


def _devices(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    d = sub.add_parser("devices", help="devices").add_subparsers(required=True, metavar="ACTION")
    add = d.add_parser("add", help="register a device without credentials (development)")
    add.add_argument("device_id")
    add.add_argument("--kind", required=True, choices=["meter", "bin", "container", "truck"])
    add.add_argument("--household")
    add.set_defaults(func=_device_add)
    imp = d.add_parser("import", help="register devices from CSV (device_id,kind,household)")
    imp.add_argument("file", type=Path)
    imp.set_defaults(func=_device_import)
    d.add_parser("list", help="list devices").set_defaults(func=_device_list)
    commissioning_cli.register(d, _registry)


def _registry(settings: Settings) -> Registry:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    registry = Registry(settings.registry)
    registry.upgrade()
    return registry


def _db_upgrade(_args: argparse.Namespace, settings: Settings) -> int:
    _registry(settings).close()
    return 0


def _household_add(args: argparse.Namespace, settings: Settings) -> int:
    registry = _registry(settings)
    registry.add_household(args.household_id, address=args.address)
    registry.close()
    return 0


def _device_add(args: argparse.Namespace, settings: Settings) -> int:
    registry = _registry(settings)
    registry.add_device(args.device_id, args.kind, household_id=args.household)
    registry.close()
    print(f"registered {args.kind} {args.device_id} (pending until its first valid message)")
    return 0


def _device_import(args: argparse.Namespace, settings: Settings) -> int:
    with args.file.open(newline="") as fh:
        rows = [(r["device_id"], r["kind"], r.get("household") or None) for r in csv.DictReader(fh)]
    registry = _registry(settings)
    count = registry.import_devices(rows)
    registry.close()
    print(f"imported {count} devices")
    return 0


def _device_list(_args: argparse.Namespace, settings: Settings) -> int:
    registry = _registry(settings)
    for row in registry.list_devices():
        household = row["household_id"] or ""
        print(f"{row['device_id']:<24} {row['kind']:<10} {row['status']:<8} {household}")
    registry.close()
    return 0


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    from core.service import running

    if args.role:
        settings = replace(settings, role=args.role)

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        async with running(settings):
            await stop.wait()

    asyncio.run(serve())
    return 0


def _demo(_args: argparse.Namespace, settings: Settings) -> int:
    from core.demo import run_demo

    return run_demo(settings)


if __name__ == "__main__":
    sys.exit(main())
