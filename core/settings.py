"""Typed settings: defaults < TOML file (--config) < environment (FOYER_*)."""

from __future__ import annotations

import os
import re
import socket
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ENV = {
    "data_dir": "FOYER_DATA_DIR",
    "influx_url": "FOYER_INFLUX_URL",
    "influx_db": "FOYER_INFLUX_DB",
    "influx_token": "FOYER_INFLUX_TOKEN",
    "influx_raw_retention": "FOYER_INFLUX_RAW_RETENTION",
    "influx_rollup_retention": "FOYER_INFLUX_ROLLUP_RETENTION",
    "mqtt_url": "FOYER_MQTT_URL",
    "mqtt_client_id": "FOYER_MQTT_CLIENT_ID",
    "mqtt_group": "FOYER_MQTT_GROUP",
    "mqtt_admin_url": "FOYER_MQTT_ADMIN_URL",
    "coap_bind": "FOYER_COAP_BIND",
    "coap_allow_plain": "FOYER_COAP_ALLOW_PLAIN",
    "coap_dtls": "FOYER_COAP_DTLS",
    "http_bind": "FOYER_HTTP_BIND",
    "registry_url": "FOYER_REGISTRY_URL",
    "horizon_days": "FOYER_HORIZON_DAYS",
    "twilio_account_sid": "FOYER_TWILIO_ACCOUNT_SID",
    "twilio_auth_token": "FOYER_TWILIO_AUTH_TOKEN",
    "twilio_from": "FOYER_TWILIO_FROM",
    "twilio_api_url": "FOYER_TWILIO_API_URL",
    "public_url": "FOYER_PUBLIC_URL",
    "role": "FOYER_ROLE",
    "probe_bind": "FOYER_PROBE_BIND",
    "log_format": "FOYER_LOG_FORMAT",
    "scheduler_lease_s": "FOYER_SCHEDULER_LEASE_S",
    "care_score_workers": "FOYER_CARE_SCORE_WORKERS",
    "mqtt_adopt_after_s": "FOYER_MQTT_ADOPT_AFTER_S",
}

# What `foyer serve` runs (docs/configuration.md, "Roles"): ingest = MQTT + CoAP +
# writer, api = HTTP API and pages, scheduler = the jobs (one leads, core/leader.py), all = each.
ROLES = ("all", "ingest", "api", "scheduler")
LOG_FORMATS = ("text", "json")
CHOICES = {"role": ROLES, "log_format": LOG_FORMATS}


class SettingsError(ValueError):
    pass


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path("data")
    influx_url: str = ""  # empty: the embedded store in data_dir
    influx_db: str = "foyer"
    influx_token: str = ""  # secret: from the environment, never logged
    # `foyer store setup` (InfluxDB 1.x): retention policies raw (default) and rollup.
    influx_raw_retention: str = "730d"
    influx_rollup_retention: str = "INF"
    mqtt_url: str = ""  # empty: no MQTT ingestion
    mqtt_client_id: str = f"foyer-ingest-{socket.gethostname()}"
    mqtt_group: str = "foyer"
    # Mosquitto dynamic-security admin (mqtt://user:password@host:port): Foyer creates and
    # disables device accounts through it. Empty: no broker accounts (development broker).
    mqtt_admin_url: str = ""
    coap_bind: str = "127.0.0.1:5683"  # empty: no CoAP ingestion
    # PROTOCOL.md: plain (unprotected) CoAP only where the configuration allows it.
    coap_allow_plain: bool = False
    # Also serve coaps:// (DTLS-PSK, per-device keys) on the CoAP port + 1 (aiocoap's rule).
    coap_dtls: bool = False
    http_bind: str = "127.0.0.1:8080"
    registry_url: str = ""  # empty: SQLite in data_dir
    horizon_days: float = 35.0
    # SMS (care alerts). No account: messages go to an outbox file in data_dir (demo).
    twilio_account_sid: str = ""
    twilio_auth_token: str = ""  # secret: from the environment, never logged
    twilio_from: str = ""  # the sending number (E.164) or messaging service
    twilio_api_url: str = ""  # empty: Twilio's own API; tests point it at a stand-in
    # The address Twilio calls back (webhooks are verified against it), e.g. https://foyer.example.fr
    public_url: str = ""
    role: str = "all"
    # /healthz, /readyz and /metrics of the ingest and scheduler roles, which serve no
    # API: one port per process, so several workers on a host each need their own.
    probe_bind: str = "127.0.0.1:8081"
    log_format: str = "text"  # json: one object per line, for a log collector
    # The scheduler lease's ttl (core/leader.py): a standby leads within about this long
    # after the leader dies, at its next try (every third of it) after a clean stop.
    scheduler_lease_s: float = 30.0
    # Processes the care scoring pass runs its detectors in (alerts/scoring.py); 1 runs
    # them in a thread of the scheduler itself. 100,000 households every 5 minutes
    # need more than one core (docs/care.md, "Scale").
    care_score_workers: int = field(default_factory=lambda: usable_cores())
    # An ingest worker silent this long (its session lease, core/ingest/adoption.py) has
    # its MQTT session adopted by another worker of its group: its queued readings are
    # stored and the broker stops giving it a share. Longer than a restart takes.
    mqtt_adopt_after_s: float = 120.0

    def __repr__(self) -> str:
        return f"Settings({self.redacted()})"

    @property
    def registry(self) -> str:
        return self.registry_url or f"sqlite:///{self.data_dir / 'registry.sqlite'}"

    def redacted(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["influx_token"] = "***" if self.influx_token else ""
        out["twilio_auth_token"] = "***" if self.twilio_auth_token else ""
        for key in ("mqtt_url", "mqtt_admin_url", "registry_url"):
            out[key] = without_secret(out[key])
        return out


def load(path: Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    values: dict[str, Any] = {}
    if path is not None:
        with path.open("rb") as fh:
            values.update(tomllib.load(fh).get("foyer", {}))
    env = os.environ if env is None else env
    values.update({key: env[var] for key, var in ENV.items() if var in env})
    return _coerce(values)


def _coerce(values: dict[str, Any]) -> Settings:
    known = {f.name: f for f in fields(Settings)}
    unknown = set(values) - set(known)
    if unknown:
        raise SettingsError(f"unknown setting(s): {', '.join(sorted(unknown))}")
    settings = Settings()
    for key, raw in values.items():
        try:
            settings = replace(settings, **{key: _convert(key, raw)})
        except (TypeError, ValueError) as err:
            raise SettingsError(f"setting {key}: {err}") from err
    return settings


def _convert(key: str, raw: Any) -> Any:
    if key == "data_dir":
        return Path(raw)
    if key in ("coap_allow_plain", "coap_dtls"):
        return _boolean(raw)
    if key == "care_score_workers":
        return _count(raw)
    if key in ("horizon_days", "scheduler_lease_s", "mqtt_adopt_after_s"):
        value = float(raw)
        if value <= 0:
            raise ValueError("must be positive")
        return value
    if not isinstance(raw, str):
        raise TypeError("must be a string")
    if key in ("influx_raw_retention", "influx_rollup_retention"):
        _retention(raw)
    if key in CHOICES and raw not in CHOICES[key]:
        raise ValueError(f"one of {', '.join(CHOICES[key])}, not {raw!r}")
    return raw


def usable_cores(cgroup: Path = Path("/sys/fs/cgroup/cpu.max")) -> int:
    """The cores this process may use: its CPU affinity, and a cgroup v2 quota where one
    is set (a container limited to 2 CPUs on a 32-core node must not start 32 scoring
    processes: os.cpu_count() counts the node's)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:
        quota, period = cgroup.read_text().split()[:2]
        if quota != "max":
            cores = min(cores or 1, max(1, -(-int(quota) // int(period))))
    except (OSError, ValueError):
        pass  # no cgroup v2 quota: the affinity decides
    return max(1, cores or 1)


def _count(raw: Any) -> int:
    """A whole number >= 1, from TOML (int) or the environment (string)."""
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        raise TypeError("must be a whole number")
    value = int(raw)
    if value < 1:
        raise ValueError("must be at least 1")
    return value


def _retention(raw: str) -> None:
    """InfluxQL durations only (730d, 52w, 24h) or INF: checked here, used by setup."""
    if not re.fullmatch(r"INF|(?:\d+[wdhms])+", raw.strip()):
        raise ValueError(f"a duration such as 730d, 52w, 24h or INF, not {raw!r}")


def _boolean(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"expected true or false, not {raw!r}")


def without_secret(url: str) -> str:
    """mqtt://user:password@host:port -> mqtt://user:***@host:port: secrets are never logged."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def split_bind(bind: str) -> tuple[str, int]:
    host, _, port = bind.rpartition(":")
    if not host or not port.isdigit():
        raise SettingsError(f"bind address must be host:port, not {bind!r}")
    return host.strip("[]"), int(port)
