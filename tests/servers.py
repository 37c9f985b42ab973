"""Real servers for tests and benchmarks: Mosquitto, InfluxDB 1.x and PostgreSQL on free
loopback ports."""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import IO

import psycopg
from psycopg import sql

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


POSTGRES_BIN_DIRS = "/usr/lib/postgresql/*/bin"  # Debian's layout; PATH is the fallback
POSTGRES_SUPERUSER = "foyer"


def postgres_binary(name: str) -> str:
    """A PostgreSQL server binary: Debian keeps initdb and postgres off PATH."""

    def version(bindir: str) -> int:
        number = Path(bindir).parent.name
        return int(number) if number.isdigit() else 0

    for bindir in sorted(glob.glob(POSTGRES_BIN_DIRS), key=version, reverse=True):
        candidate = Path(bindir) / name
        if candidate.is_file():
            return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(
            f"PostgreSQL's {name} not found: install Debian's `postgresql` "
            "(`make deps`, deploy/dev/bootstrap.sh)"
        )
    return found


def _unprivileged_account() -> tuple[int, int]:
    """(uid, gid) to run PostgreSQL as: it refuses to start as root.

    Debian's package creates the `postgres` account; `nobody` serves otherwise.
    """
    for name in ("postgres", "nobody"):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        return entry.pw_uid, entry.pw_gid
    raise RuntimeError("running as root and neither `postgres` nor `nobody` exists")


class PostgreSQL(Server):
    """A throw-away cluster: trust auth on loopback, its socket in its own directory.

    ``workdir`` is made here, not under pytest's tmp_path: as root the server runs as
    an unprivileged account, which cannot enter pytest's 0700 root-owned base dir.
    Call ``remove`` after ``stop``.
    """

    name = "postgres"

    def __init__(self) -> None:
        self._account = _unprivileged_account() if os.geteuid() == 0 else None
        workdir = Path(tempfile.mkdtemp(prefix="foyer-pg-"))
        super().__init__(workdir)
        self.datadir = workdir / "data"
        self.sockdir = workdir / "sock"
        self.sockdir.mkdir()
        self.log.touch()
        if self._account is not None:
            for path in (workdir, self.sockdir, self.log):
                os.chown(path, *self._account)
        try:
            self._run([postgres_binary("initdb"), "-D", str(self.datadir),
                       "-U", POSTGRES_SUPERUSER, "--auth=trust", "-E", "UTF8", "--locale=C",
                       "--no-sync"])  # fmt: skip
        except BaseException:
            self.remove()
            raise

    def _spawn(self, argv: list[str], out: IO[bytes] | int) -> subprocess.Popen[bytes]:
        """Start ``argv`` as the unprivileged account when running as root."""
        uid, gid = self._account or (None, None)
        return subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, cwd=self.workdir, user=uid, group=gid,
            extra_groups=None if uid is None else [],
        )  # fmt: skip

    def _run(self, argv: list[str]) -> None:
        proc = self._spawn(argv, subprocess.PIPE)
        output, _ = proc.communicate(timeout=START_TIMEOUT_S)
        if proc.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed: {output.decode()[-2000:]}")

    def command(self) -> list[str]:
        # Durability is not what these tests prove: fsync off makes DDL fast.
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": str(self.sockdir),
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "200",
            # Not UTC on purpose, as many production servers: the registry must still
            # hand back UTC datetimes (core/registry/service.py sets the session's zone).
            "timezone": "Europe/Paris",
        }
        argv = [postgres_binary("postgres"), "-D", str(self.datadir)]
        for key, value in settings.items():
            argv += ["-c", f"{key}={value}"]
        return argv

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = self._spawn(self.command(), out)
        _wait_for(self.ready, self.name, self.proc, self.log)

    def stop(self) -> None:
        # SIGTERM waits for clients to leave ("smart"); SIGINT is the "fast" shutdown.
        if self.proc is not None:
            self.proc.send_signal(signal.SIGINT)
        super().stop()

    def remove(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{POSTGRES_SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def _connect(self, database: str = "postgres") -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(
            host="127.0.0.1", port=self.port, user=POSTGRES_SUPERUSER, dbname=database,
            autocommit=True, connect_timeout=2,
        )  # fmt: skip

    def ready(self) -> bool:
        try:
            with self._connect():
                return True
        except psycopg.OperationalError:
            return False

    def create_database(self, name: str) -> None:
        with self._connect() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))

    def drop_database(self, name: str) -> None:
        # FORCE: a test that leaked a connection must not keep its database alive.
        with self._connect() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
