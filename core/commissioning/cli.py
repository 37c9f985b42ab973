"""`foyer devices commission|credentials|swap|retire|show`: the commissioning flow from
a shell, with the same service (and so the same credentials and audit) as the API."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from core.cli_staff import cli_actor
from core.commissioning.service import Commissioning
from core.ingest.broker_accounts import BrokerAccounts
from core.ingest.oscore import OscoreKeys
from core.registry import Registry
from core.registry.devices import Devices
from core.registry.models import BIN_STREAMS
from core.settings import Settings

Opener = Callable[[Settings], Registry]
KINDS = ("meter", "bin", "container", "truck")


def register(devices: argparse._SubParsersAction[argparse.ArgumentParser], opener: Opener) -> None:
    c = devices.add_parser("commission", help="register, place and credential a device")
    c.add_argument("device_id")
    c.add_argument("--kind", required=True, choices=KINDS)
    c.add_argument("--dwelling", dest="dwelling_id")
    c.add_argument("--collection-point", dest="collection_point_id")
    c.add_argument("--model")
    c.add_argument("--serial")
    c.add_argument("--volume", dest="volume_l", type=int, help="litres (bins, containers)")
    c.add_argument("--interval", dest="report_interval_s", type=int, help="expected report period")
    c.add_argument(
        "--stream",
        choices=BIN_STREAMS,
        help="waste stream of a bin or container (default residual; yellow bin: recyclables)",
    )
    c.set_defaults(func=lambda a, s: _run(s, opener, lambda svc: _commission(svc, a)))
    r = devices.add_parser("credentials", help="issue new credentials (old ones stop working)")
    r.add_argument("device_id")
    r.set_defaults(
        func=lambda a, s: _run(s, opener, lambda svc: svc.reissue(a.device_id, cli_actor()))
    )
    sw = devices.add_parser("swap", help="replace a device at its place")
    sw.add_argument("old_device_id")
    sw.add_argument("new_device_id")
    sw.add_argument("--final-index", dest="old_final_index_l", type=int, help="old meter, litres")
    sw.add_argument(
        "--initial-index", dest="new_initial_index_l", type=int, help="new meter, litres"
    )
    sw.add_argument("--model")
    sw.add_argument("--serial")
    sw.set_defaults(func=lambda a, s: _run(s, opener, lambda svc: _swap(svc, a)))
    rt = devices.add_parser("retire", help="revoke credentials at once; history stays")
    rt.add_argument("device_id")
    rt.set_defaults(
        func=lambda a, s: _run(s, opener, lambda svc: svc.retire(a.device_id, cli_actor()))
    )
    sh = devices.add_parser("show", help="one device: state, place, swaps, history")
    sh.add_argument("device_id")
    sh.set_defaults(func=lambda a, s: _run(s, opener, lambda svc: _show(svc, a.device_id)))


def _fields(args: argparse.Namespace, names: tuple[str, ...]) -> dict[str, Any]:
    return {n: getattr(args, n) for n in names if getattr(args, n) is not None}


async def _commission(svc: Commissioning, args: argparse.Namespace) -> dict[str, Any]:
    names = (
        "dwelling_id",
        "collection_point_id",
        "model",
        "serial",
        "volume_l",
        "report_interval_s",
        "stream",
    )
    return await svc.commission(
        cli_actor(), device_id=args.device_id, kind=args.kind, **_fields(args, names)
    )


async def _swap(svc: Commissioning, args: argparse.Namespace) -> dict[str, Any]:
    names = ("old_final_index_l", "new_initial_index_l", "model", "serial")
    return await svc.swap(
        args.old_device_id, args.new_device_id, cli_actor(), **_fields(args, names)
    )


async def _show(svc: Commissioning, device_id: str) -> dict[str, Any]:
    return await asyncio.to_thread(svc.devices.get, device_id)


def _run(settings: Settings, opener: Opener, action: Callable[[Commissioning], Any]) -> int:
    """Open the registry, the broker admin (if configured) and the key store; print JSON.

    Credentials appear in this output once; nothing else keeps them in clear.
    """

    async def go() -> Any:
        registry = opener(settings)
        try:
            async with _commissioning(settings, registry) as svc:
                return await action(svc)
        finally:
            registry.close()

    print(json.dumps(asyncio.run(go()), indent=2, ensure_ascii=False))
    return 0


@contextlib.asynccontextmanager
async def _commissioning(settings: Settings, registry: Registry) -> AsyncIterator[Commissioning]:
    keys = OscoreKeys(settings.data_dir / "oscore")
    svc = Commissioning(Devices(registry), keys=keys)
    if not settings.mqtt_admin_url:
        yield svc
        return
    broker = BrokerAccounts(settings.mqtt_admin_url, client_id=f"{settings.mqtt_client_id}-cli")
    await broker.open()
    try:
        svc.broker = broker
        yield svc
    finally:
        await broker.close()
