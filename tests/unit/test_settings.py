"""Settings loading and the redaction of secrets in what Foyer logs."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.settings import SettingsError, load, without_secret


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
    assert without_secret("mqtt://foyer:s3cret@broker:1883") == "mqtt://foyer:***@broker:1883"
    assert without_secret("mqtt://broker:1883") == "mqtt://broker:1883"


def test_plain_coap_is_off_unless_explicitly_allowed() -> None:
    assert load(None, {}).coap_allow_plain is False
    assert load(None, {"FOYER_COAP_ALLOW_PLAIN": "true"}).coap_allow_plain is True
    with pytest.raises(SettingsError, match="coap_allow_plain"):
        load(None, {"FOYER_COAP_ALLOW_PLAIN": "maybe"})


def test_redacted_settings_hide_every_broker_and_database_password() -> None:
    settings = load(
        None,
        {
            "FOYER_MQTT_URL": "mqtt://ingest:pw1@b:1883",
            "FOYER_MQTT_ADMIN_URL": "mqtt://admin:pw2@b:1883",
            "FOYER_REGISTRY_URL": "postgresql+psycopg://foyer:pw3@db:5432/foyer",
        },
    )
    shown = repr(settings.redacted())
    assert "pw1" not in shown and "pw2" not in shown and "pw3" not in shown
    assert "postgresql+psycopg://foyer:***@db:5432/foyer" in shown
