"""Command line: `fleet` writes the device list, `run` simulates and sends."""

from __future__ import annotations

import argparse
import asyncio
import sys

from device_sim.clock import SimClock
from device_sim.faults import FaultConfig
from device_sim.fleet import build_fleet, write_csv
from device_sim.runner import Runner
from device_sim.simulation import Simulation
from device_sim.transport import CoapSender, MqttSender


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m device_sim", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    for name in ("fleet", "run"):
        s = sub.add_parser(name)
        s.add_argument("--households", type=int, default=100)
        s.add_argument("--seed", type=int, default=1)
    sub.choices["fleet"].add_argument("--out", default="fleet.csv")
    r = sub.choices["run"]
    target = r.add_mutually_exclusive_group(required=True)
    target.add_argument("--mqtt", metavar="mqtt://[user:pass@]host:port")
    target.add_argument("--coap", metavar="coap://host:port")
    r.add_argument("--format", choices=("json", "cbor"), default="json")
    r.add_argument("--speed", type=float, default=60.0, help="simulated seconds per real second")
    r.add_argument("--backfill-hours", type=float, default=48.0)
    r.add_argument("--report-interval-s", type=float, default=900.0)
    r.add_argument("--duration-s", type=float, default=120.0, help="0 = until Ctrl-C")
    r.add_argument("--concurrency", type=int, default=16, help="sends in flight at most")
    r.add_argument(
        "--max-rate", type=float, default=200.0, help="packs per second at most (0 = no limit)"
    )
    r.add_argument("--client-id", default="", help="MQTT client id")
    for fault in ("dup", "late", "garbage", "silent"):
        r.add_argument(
            f"--{fault}", type=float, default=0.0, help=f"probability per pack of {fault}"
        )
    return p


async def _run(args: argparse.Namespace) -> int:
    fleet = build_fleet(args.households, args.seed)
    clock = SimClock(args.speed, args.backfill_hours * 3600)
    sim = Simulation(fleet, clock.start, args.report_interval_s, args.seed)
    sender = CoapSender(args.coap) if args.coap else MqttSender(args.mqtt, args.client_id)
    await sender.start()
    faults = FaultConfig(dup=args.dup, late=args.late, garbage=args.garbage, silent=args.silent)
    runner = Runner(
        sim, clock, sender, args.format, faults, args.seed, args.concurrency, args.max_rate
    )
    try:
        await runner.run(args.duration_s)
    finally:
        await sender.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "fleet":
        fleet = build_fleet(args.households, args.seed)
        write_csv(fleet, args.out)
        print(f"{len(fleet.devices())} devices written to {args.out}", file=sys.stderr)
        return 0
    try:
        return asyncio.run(_run(args))
    except KeyboardInterrupt:
        return 130
