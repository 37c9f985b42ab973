"""Settings loading and the redaction of secrets in what Foyer logs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from core.settings import SettingsError, load, usable_cores, without_secret


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
    with pytest.raises(SettingsError, match="mqtt_adopt_after_s: must be positive"):
        load(None, {"FOYER_MQTT_ADOPT_AFTER_S": "0"})
    for bad in ("0", "two", "1.5"):
        with pytest.raises(SettingsError, match="care_score_workers"):
            load(None, {"FOYER_CARE_SCORE_WORKERS": bad})


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


def test_scoring_processes_default_to_the_cores_a_cgroup_quota_allows(tmp_path: Path) -> None:
    cpu_max = tmp_path / "cpu.max"
    affinity = len(os.sched_getaffinity(0))
    cpu_max.write_text("150000 100000\n")  # 1.5 CPUs: 2 processes, never more than affinity
    assert usable_cores(cpu_max) == min(2, affinity)
    cpu_max.write_text("max 100000\n")  # no quota: the affinity decides
    assert usable_cores(cpu_max) == affinity
    assert usable_cores(tmp_path / "absent") == affinity  # cgroup v1 or no cgroup
    cpu_max.write_text("50000 100000\n")  # half a CPU: still one process
    assert usable_cores(cpu_max) == 1
