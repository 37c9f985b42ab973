"""Settings loading and the redaction of secrets in what Foyer logs."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.service import _without_secret
from core.settings import SettingsError, load


def test_environment_overrides_the_toml_file(tmp_path: Path) -> None:
    conf = tmp_path / "foyer.toml"
    conf.write_text('[foyer]\ninflux_db = "from_file"\nhttp_bind = "127.0.0.1:9000"\n')
    settings = load(conf, {"FOYER_INFLUX_DB": "from_env"})
    assert (settings.influx_db, settings.http_bind) == ("from_env", "127.0.0.1:9000")


def test_unknown_or_bad_settings_are_refused_by_name(tmp_path: Path) -> None:
    conf = tmp_path / "foyer.toml"
    conf.write_text("[foyer]\ninflux_dbb = 1\n")
    with pytest.raises(SettingsError, match="influx_dbb"):
        load(conf, {})
    with pytest.raises(SettingsError, match="horizon_days"):
        load(None, {"FOYER_HORIZON_DAYS": "-1"})


def test_broker_password_is_masked_in_logs() -> None:
    assert _without_secret("mqtt://foyer:s3cret@broker:1883") == "mqtt://foyer:***@broker:1883"
    assert _without_secret("mqtt://broker:1883") == "mqtt://broker:1883"
