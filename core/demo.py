"""`make demo`: a simulated commune on the embedded store, a private broker, a live view.

Runs until Ctrl-C (or FOYER_DEMO_SECONDS, for smoke tests). Everything lives in .demo/.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from alerts.enrolment import Enrolment
from core.registry import Registry
from core.registry.people import People
from core.service import Foyer, running
from core.settings import Settings

DEMO_DIR = Path(".demo")
HOUSEHOLDS = 300
SPEED = 600  # ten simulated minutes per second: a day of water use in 2.4 minutes
BACKFILL_HOURS = 24
DEMO_ADMIN = "demo-admin"
CARE_HOUSEHOLDS = 5


def run_demo(settings: Settings) -> int:
    DEMO_DIR.mkdir(exist_ok=True)
    settings = replace(settings, data_dir=DEMO_DIR / "data", influx_url="")
    fleet = DEMO_DIR / "fleet.csv"
    _python("-m", "device_sim", "fleet", "--households", str(HOUSEHOLDS), "--out", str(fleet))
    _register(settings, fleet)
    password = _demo_admin(settings)
    _demo_care(settings, fleet)
    _demo_billing(settings)
    with _mosquitto() as mqtt_url:
        # A development set-up: anonymous private broker, plain CoAP allowed explicitly.
        settings = replace(
            settings,
            mqtt_url=mqtt_url,
            coap_allow_plain=True,
            coap_bind=f"127.0.0.1:{_free_port(udp=True)}",
        )
        print(f"Staff pages: log in as {DEMO_ADMIN} with the password in {password}", flush=True)
        seconds = float(os.environ.get("FOYER_DEMO_SECONDS", "0"))
        return asyncio.run(_demo(settings, seconds))


def _register(settings: Settings, fleet: Path) -> None:
    import csv

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    registry = Registry(settings.registry)
    registry.upgrade()
    known = {row["device_id"] for row in registry.list_devices()}
    with fleet.open(newline="") as fh:
        rows = [
            (r["device_id"], r["kind"], r["household"] or None)
            for r in csv.DictReader(fh)
            if r["device_id"] not in known
        ]
    if rows:
        registry.import_devices(rows)
    registry.close()


def _demo_admin(settings: Settings) -> Path:
    """An admin for the demo's pages; its random password lives in a 0600 file, not logs."""
    secret = DEMO_DIR / "admin-password"
    registry = Registry(settings.registry)
    try:
        people = People(registry)
        if not any(u["username"] == DEMO_ADMIN for u in people.list_users()):
            password = secrets.token_urlsafe(12)
            secret.write_text(password + "\n")
            secret.chmod(0o600)
            people.add_user(DEMO_ADMIN, password, ["admin"], actor="demo")
    finally:
        registry.close()
    return secret


def _demo_care(settings: Settings, fleet: Path) -> None:
    """A few households under care monitoring, so /care has something to show.

    The numbers are fictitious (+336000000xx) and SMS go to the outbox file anyway.
    """
    import csv

    with fleet.open(newline="") as fh:
        metered = [r["household"] for r in csv.DictReader(fh) if r["kind"] == "meter"]
    registry = Registry(settings.registry)
    try:
        enrolment = Enrolment(registry)
        enrolled = {s["household_id"] for s in enrolment.list()}
        for n, household in enumerate(metered[:CARE_HOUSEHOLDS], start=1):
            if household not in enrolled:
                enrolment.create(
                    actor="demo",
                    household_id=household,
                    person_label=f"Resident {n}",
                    consent_note="demo",
                    contacts=[{"name": "Proche", "phone": f"+336000000{n:02d}"}],
                )
    finally:
        registry.close()


DEMO_BIN_L = 120  # the fleet's bins do not report a volume; the demo equips them all alike
DEMO_TARIFF = """# ILLUSTRATIVE, written by `make demo`: not a published grid.
[tariff]
territory = "demo"
name = "Commune de démonstration {year} (illustratif)"
source = "illustrative, written by Foyer's demo"
illustrative = true
effective_from = {year}-01-01
effective_to = {year}-12-31
period = "semester"

[grid]
household_fixed = "42.00"
bin_fixed = {{ "120" = "15.00" }}
included_lifts = 6
lift_price = {{ "120" = "2.50" }}
included_openings = 13
opening_price = "1.10"

[issuer]
name = "Commune de démonstration (illustratif)"
budget_code = "01"
budget_name = "Budget annexe déchets (illustratif)"
siret = "00000000000000"
address = ["1 place de la Mairie", "31000 Démonstration"]
deliberation = "Délibération fixant la redevance incitative {year} (illustrative)"
payment = ["Par virement auprès du comptable public (illustratif)"]
collectivity_code = "001"
post_code = "031000"
"""


def _demo_billing(settings: Settings) -> None:
    """Bins with a volume and this year's illustrative tariff, so /billing can preview."""
    from datetime import UTC, datetime

    from sqlalchemy import update

    from core.registry.models import Device

    registry = Registry(settings.registry)
    try:
        with registry.transaction() as session:
            session.execute(
                update(Device)
                .where(Device.kind == "bin", Device.volume_l.is_(None))
                .values(volume_l=DEMO_BIN_L)
            )
    finally:
        registry.close()
    year = datetime.now(UTC).year
    folder = settings.data_dir / "tariffs"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"demo-{year}.toml").write_text(DEMO_TARIFF.format(year=year), encoding="utf-8")


async def _demo(settings: Settings, seconds: float) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if seconds:
        loop.call_later(seconds, stop.set)
    async with running(settings) as foyer:
        print(f"Foyer demo: open http://{settings.http_bind}  (Ctrl-C to stop)", flush=True)
        sim = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "device_sim",
            "run",
            "--households",
            str(HOUSEHOLDS),
            "--mqtt",
            settings.mqtt_url,
            "--speed",
            str(SPEED),
            "--backfill-hours",
            str(BACKFILL_HOURS),
            "--duration-s",
            "0",
            "--client-id",
            "sim",
            "--dup",
            "0.01",
            "--late",
            "0.01",
            "--garbage",
            "0.005",
            "--silent",
            "0.005",
            stderr=subprocess.DEVNULL,
        )
        try:
            await _summaries(foyer, stop)
        finally:
            sim.terminate()
            await sim.wait()
    return 0


async def _summaries(foyer: Foyer, stop: asyncio.Event) -> None:
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 2.0)
        print(_line(foyer), flush=True)


def _line(foyer: Foyer) -> str:
    totals: dict[str, float] = {}
    for family in foyer.metrics.registry.collect():
        for sample in family.samples:
            if sample.name.endswith("_total"):
                totals[sample.name] = totals.get(sample.name, 0.0) + sample.value
    return (
        f"devices={len(foyer.directory or ())} "
        f"received={totals.get('foyer_messages_received_total', 0):.0f} "
        f"stored={totals.get('foyer_records_stored_total', 0):.0f} "
        f"refused={totals.get('foyer_messages_refused_total', 0):.0f} "
        f"ignored={totals.get('foyer_records_ignored_total', 0):.0f} "
        f"queue={foyer.writer.depth if foyer.writer else 0}"
    )


@contextlib.contextmanager
def _mosquitto() -> Iterator[str]:
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    port = _free_port()
    workdir = (DEMO_DIR / "mosquitto").resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    conf = workdir / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
        f"persistence_location {workdir}/\nmax_queued_messages 0\nmax_inflight_messages 0\n"
        # as root, mosquitto would drop to user `mosquitto` and fail to save in .demo/
        + ("user root\n" if os.geteuid() == 0 else "")
    )
    with (workdir / "mosquitto.log").open("ab") as log:
        # Its own session: Ctrl-C (SIGINT to the terminal's process group) stops Foyer,
        # which then stops cleanly against a live broker; the broker goes last, below.
        proc = subprocess.Popen([binary, "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip
    try:
        _wait_port(port, proc)
        yield f"mqtt://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


def _wait_port(port: int, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(200):
        if proc.poll() is not None:
            raise RuntimeError("mosquitto exited; see .demo/mosquitto/mosquitto.log")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.1):
            return
        proc_wait = 0.05
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(proc_wait)
    raise RuntimeError("mosquitto did not start")


def _free_port(udp: bool = False) -> int:
    kind = socket.SOCK_DGRAM if udp else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _python(*args: str) -> None:
    subprocess.run([sys.executable, *args], check=True, stdout=subprocess.DEVNULL)
