"""Typed settings: defaults < TOML file (--config) < environment (FOYER_*)."""

from __future__ import annotations

import os
import socket
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

ENV = {
    "data_dir": "FOYER_DATA_DIR",
    "influx_url": "FOYER_INFLUX_URL",
    "influx_db": "FOYER_INFLUX_DB",
    "influx_token": "FOYER_INFLUX_TOKEN",
    "mqtt_url": "FOYER_MQTT_URL",
    "mqtt_client_id": "FOYER_MQTT_CLIENT_ID",
    "mqtt_group": "FOYER_MQTT_GROUP",
    "coap_bind": "FOYER_COAP_BIND",
    "http_bind": "FOYER_HTTP_BIND",
    "registry_url": "FOYER_REGISTRY_URL",
    "horizon_days": "FOYER_HORIZON_DAYS",
}


class SettingsError(ValueError):
    pass


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path("data")
    influx_url: str = ""  # empty: the embedded store in data_dir
    influx_db: str = "foyer"
    influx_token: str = ""  # secret: from the environment, never logged
    mqtt_url: str = ""  # empty: no MQTT ingestion
    mqtt_client_id: str = f"foyer-ingest-{socket.gethostname()}"
    mqtt_group: str = "foyer"
    coap_bind: str = "127.0.0.1:5683"  # empty: no CoAP ingestion
    http_bind: str = "127.0.0.1:8080"
    registry_url: str = ""  # empty: SQLite in data_dir
    horizon_days: float = 35.0

    @property
    def registry(self) -> str:
        return self.registry_url or f"sqlite:///{self.data_dir / 'registry.sqlite'}"

    def redacted(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["influx_token"] = "***" if self.influx_token else ""
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
    if key == "horizon_days":
        value = float(raw)
        if value <= 0:
            raise ValueError("must be positive")
        return value
    if not isinstance(raw, str):
        raise TypeError("must be a string")
    return raw


def split_bind(bind: str) -> tuple[str, int]:
    host, _, port = bind.rpartition(":")
    if not host or not port.isdigit():
        raise SettingsError(f"bind address must be host:port, not {bind!r}")
    return host.strip("[]"), int(port)
