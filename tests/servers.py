"""Real servers for tests and benchmarks: Mosquitto and InfluxDB 1.x on free loopback ports."""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

START_TIMEOUT_S = 30.0


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def binary(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")
    if found is None:
        raise RuntimeError(f"{name} not installed: run `make deps` (deploy/dev/bootstrap.sh)")
    return found


def _wait_for(check: object, what: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited: {log.read_text()[-2000:]}")
        if check():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not start: {log.read_text()[-2000:]}")


class Server:
    """A process that can be started, stopped, killed and restarted on the same port."""

    name = "server"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = workdir / f"{self.name}.log"

    def command(self) -> list[str]:
        raise NotImplementedError

    def ready(self) -> bool:
        raise NotImplementedError

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(self.command(), stdout=out, stderr=subprocess.STDOUT)
        _wait_for(self.ready, self.name, self.proc, self.log)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


class Mosquitto(Server):
    name = "mosquitto"

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.conf = workdir / "mosquitto.conf"
        self.conf.write_text("".join(f"{line}\n" for line in self.config_lines()))

    def config_lines(self) -> list[str]:
        return [
            f"listener {self.port} 127.0.0.1",
            "allow_anonymous true",
            *self.common_lines(),
        ]

    def common_lines(self) -> list[str]:
        lines = [
            "persistence true",
            f"persistence_location {self.workdir}/",
            "autosave_interval 1",
            # deploy/mosquitto/mosquitto.conf explains these two: no silent drops.
            "max_queued_messages 0",
            "max_inflight_messages 0",
        ]
        # As root, mosquitto drops to user `mosquitto`, who cannot write a root-owned
        # temp dir: its persistence file (and the dynsec json) would silently never be saved.
        return lines + (["user root"] if os.geteuid() == 0 else [])

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [binary("mosquitto"), "-c", str(self.conf)]

    def ready(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return True
        except OSError:
            return False


DYNSEC_PLUGINS = (  # Debian's multiarch path first, then upstream's default prefixes
    "/usr/lib/*/mosquitto_dynamic_security.so",
    "/usr/lib/mosquitto_dynamic_security.so",
    "/usr/local/lib/mosquitto_dynamic_security.so",
)


def dynsec_plugin() -> str:
    for pattern in DYNSEC_PLUGINS:
        found = sorted(glob.glob(pattern))
        if found:
            return found[0]
    raise RuntimeError("mosquitto_dynamic_security.so not found: install mosquitto 2.0")


class SecureMosquitto(Mosquitto):
    """Mosquitto with the dynamic security plugin, as deploy/mosquitto/mosquitto.conf.

    No anonymous clients; the plugin's json starts with only the admin account that
    `mosquitto_ctrl dynsec init` creates (ACL defaults: no publish, no subscribe).
    """

    name = "mosquitto-dynsec"
    admin_user = "admin"

    def __init__(self, workdir: Path) -> None:
        self.admin_password = secrets.token_urlsafe(16)
        self.dynsec_json = workdir / "dynamic-security.json"
        subprocess.run(
            [binary("mosquitto_ctrl"), "dynsec", "init", str(self.dynsec_json),
             self.admin_user, self.admin_password],
            check=True, capture_output=True,
        )  # fmt: skip
        super().__init__(workdir)

    def config_lines(self) -> list[str]:
        return [
            "per_listener_settings false",
            f"listener {self.port} 127.0.0.1",
            "allow_anonymous false",
            f"plugin {dynsec_plugin()}",
            f"plugin_opt_config_file {self.dynsec_json}",
            *self.common_lines(),
        ]

    @property
    def admin_url(self) -> str:
        return f"mqtt://{self.admin_user}:{self.admin_password}@127.0.0.1:{self.port}"


class InfluxDB(Server):
    name = "influxd"

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.conf = workdir / "influxdb.conf"
        self.conf.write_text(
            "reporting-disabled = true\n"
            f'bind-address = "127.0.0.1:{free_port()}"\n'
            f'[meta]\n  dir = "{workdir}/meta"\n'
            f'[data]\n  dir = "{workdir}/data"\n  wal-dir = "{workdir}/wal"\n'
            "  query-log-enabled = false\n"
            f'[http]\n  bind-address = "127.0.0.1:{self.port}"\n  log-enabled = false\n'
            "[monitor]\n  store-enabled = false\n"
            "[continuous_queries]\n  enabled = false\n"
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [binary("influxd"), "-config", str(self.conf)]

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/ping", timeout=0.5) as resp:  # noqa: S310
                return bool(resp.status == 204)
        except (urllib.error.URLError, OSError):
            return False

    def create_database(self, name: str) -> None:
        data = urllib.parse.urlencode({"q": f'CREATE DATABASE "{name}"'}).encode()
        with urllib.request.urlopen(f"{self.url}/query", data=data, timeout=5):  # noqa: S310
            pass
