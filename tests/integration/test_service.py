"""The composition root: each role builds and schedules only its own parts, probes
answer for its dependencies, and the stage counters move."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from alerts.sms import OutboxChannel, SmsSettings, TwilioChannel
from core.ingest.model import RawMessage
from core.metrics import Metrics
from core.registry import Registry
from core.service import CountedSms, Foyer, running
from core.settings import Settings, SettingsError, load
from tests.e2e.conftest import eventually
from tests.servers import InfluxDB, Mosquitto, free_port

REGISTRY_JOBS = {"device-states", "care-score", "care-escalate", "care-retrain-nightly"}


def role_settings(tmp_path: Path, role: str, **kw: Any) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        coap_bind="",
        http_bind="127.0.0.1:0",
        probe_bind="127.0.0.1:0",
        role=role,
        **kw,
    )


async def get(foyer: Foyer, path: str) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{foyer.http_port}{path}") as resp,
    ):
        body = await resp.text()
        is_json = resp.content_type == "application/json"
        return resp.status, json.loads(body) if is_json else body


def jobs(foyer: Foyer) -> set[str]:
    return {job.id for job in foyer.scheduler.get_jobs()} if foyer.scheduler else set()


def sample(foyer: Foyer, name: str, **labels: str) -> float:
    return foyer.metrics.registry.get_sample_value(name, labels) or 0.0


async def test_every_scheduled_job_is_due_to_run(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", coap_bind="", http_bind="127.0.0.1:0")
    async with running(settings) as foyer:
        assert foyer.scheduler is not None
        all_jobs = {job.id: job for job in foyer.scheduler.get_jobs()}
        paused = [job_id for job_id, job in all_jobs.items() if job.next_run_time is None]
    assert paused == []
    assert {"directory-refresh", "first-contact"} | REGISTRY_JOBS <= set(all_jobs)


async def test_ingest_role_serves_only_probes_and_runs_no_registry_job(tmp_path: Path) -> None:
    async with running(role_settings(tmp_path, "ingest")) as foyer:
        assert foyer.pipeline is not None and foyer.writer is not None
        assert foyer.care is None and foyer.billing is None and foyer.http_app is None
        assert jobs(foyer) == {"directory-refresh", "first-contact"}
        assert (await get(foyer, "/healthz"))[0] == 200
        assert (await get(foyer, "/readyz")) == (
            200, {"status": "ready", "checks": {"registry": "ok", "store": "ok"}},
        )  # fmt: skip
        assert "foyer_write_queue_depth" in (await get(foyer, "/metrics"))[1]
        assert (await get(foyer, "/api/summary"))[0] == 404


async def test_api_role_ingests_nothing_and_schedules_no_registry_job(tmp_path: Path) -> None:
    async with running(role_settings(tmp_path, "api")) as foyer:
        assert foyer.pipeline is None and foyer.writer is None and foyer.mqtt is None
        assert foyer.http_app is not None and foyer.commissioning is not None
        assert jobs(foyer) == {"directory-refresh"}
        assert (await get(foyer, "/readyz"))[0] == 200
        status, summary = await get(foyer, "/api/summary")
        assert (status, summary["queue_depth"]) == (200, 0)


async def test_scheduler_role_runs_the_registry_jobs_and_counts_their_runs(tmp_path: Path) -> None:
    async with running(role_settings(tmp_path, "scheduler")) as foyer:
        assert foyer.pipeline is None and foyer.http_app is None and foyer.directory is None
        assert jobs(foyer) >= REGISTRY_JOBS
        assert "directory-refresh" not in jobs(foyer)
        # device-states runs at start-up: its run is counted by job and outcome.
        await eventually(lambda: sample(foyer, "foyer_job_runs_total", job="device-states",
                                        outcome="ok") >= 1)  # fmt: skip
        assert 'job="device-states"' in (await get(foyer, "/metrics"))[1]


async def test_ingest_is_not_ready_until_the_broker_is_there(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    settings = role_settings(tmp_path, "ingest", mqtt_url=f"mqtt://127.0.0.1:{free_port()}")
    async with running(settings) as foyer:
        status, body = await get(foyer, "/readyz")
        assert (status, body["status"]) == (503, "not ready")
        assert body["checks"] == {
            "registry": "ok", "store": "ok", "mqtt": "not connected to the broker",
        }  # fmt: skip
        assert (await get(foyer, "/healthz"))[0] == 200  # alive: a restart would not help
    async with running(replace(settings, mqtt_url=mosquitto.url)) as foyer:
        await eventually(lambda: foyer.mqtt is not None and foyer.mqtt.subscribed.is_set())
        assert (await get(foyer, "/readyz"))[0] == 200


async def test_a_reading_role_is_not_ready_without_influxdb(tmp_path: Path) -> None:
    settings = role_settings(tmp_path, "api", influx_url=f"http://127.0.0.1:{free_port()}")
    async with running(settings) as foyer:
        status, body = await get(foyer, "/readyz")
    assert (status, body["checks"]["store"]) == (503, "unreachable")


async def test_spooled_and_replayed_batches_are_counted(
    tmp_path: Path, influxdb: InfluxDB, influx_db: str
) -> None:
    settings = role_settings(tmp_path, "ingest", influx_url=influxdb.url, influx_db=influx_db)
    registry = Registry(settings.registry)
    settings.data_dir.mkdir(parents=True)
    registry.upgrade()
    registry.import_devices([("m-1", "meter", None)])
    registry.close()
    async with running(settings) as foyer:
        assert foyer.pipeline is not None
        influxdb.stop()
        try:
            pack = [{"bn": "urn:dev:foyer:m-1:", "n": "volume", "u": "l", "v": 1,
                     "t": int(time.time()) - 60}]  # fmt: skip
            msg = RawMessage("mqtt", "meters", "m-1", json.dumps(pack).encode(), None, time.time())
            await foyer.pipeline.handle(msg)  # acknowledged from the spool
            assert sample(foyer, "foyer_spool_spooled_batches_total") == 1
            assert sample(foyer, "foyer_spool_batches") == 1
        finally:
            influxdb.start()
        await eventually(lambda: sample(foyer, "foyer_spool_replayed_batches_total") == 1,
                         within=30)  # fmt: skip
        assert sample(foyer, "foyer_spool_batches") == 0


async def test_sms_handed_over_and_refused_are_counted(tmp_path: Path) -> None:
    metrics = Metrics()
    sent = CountedSms(OutboxChannel(tmp_path / "outbox.jsonl"), metrics)
    await sent.send("+33612345678", "hello", None)
    # A provider that cannot be reached: the real twilio library, a closed port.
    unreachable = SmsSettings("AC" + "0" * 32, "t" * 32, "+33700000000",
                              f"http://127.0.0.1:{free_port()}")  # fmt: skip
    failing = CountedSms(TwilioChannel(unreachable), metrics)
    with pytest.raises(OSError):  # requests' ConnectionError: the care service records it
        await failing.send("+33612345678", "hello", None)
    get_value = metrics.registry.get_sample_value
    assert get_value("foyer_sms_total", {"outcome": "sent"}) == 1
    assert get_value("foyer_sms_total", {"outcome": "failed"}) == 1


@pytest.mark.parametrize(("var", "value"), [("FOYER_ROLE", "worker"), ("FOYER_LOG_FORMAT", "xml")])
def test_an_unknown_role_or_log_format_is_a_configuration_error(var: str, value: str) -> None:
    with pytest.raises(SettingsError, match="one of"):
        load(env={var: value})
    assert load(env={"FOYER_ROLE": "ingest", "FOYER_LOG_FORMAT": "json"}).role == "ingest"


async def test_a_clean_stop_lets_a_scheduled_run_under_way_finish(tmp_path: Path) -> None:
    started, finished = asyncio.Event(), asyncio.Event()

    async def slow_run() -> None:  # e.g. an escalation between its SMS and its record
        started.set()
        await asyncio.sleep(0.5)
        finished.set()

    async with running(role_settings(tmp_path, "scheduler")) as foyer:
        assert foyer.scheduler is not None
        foyer.scheduler.add_job(foyer.runs.track(slow_run), "date", id="slow")
        await asyncio.wait_for(started.wait(), 10)
    assert finished.is_set()  # APScheduler's own shutdown would have cancelled it
