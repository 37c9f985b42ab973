"""Care scoring in worker processes (care_score_workers > 1) decides exactly as in one.

Real parts: a SQLite registry with enrolled households, their meters' readings in a
real InfluxDB, models trained by the scoring job itself, detectors run in spawned
processes. Households cover every kind of finding the scheduled pass raises.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from alerts.enrolment import Enrolment
from alerts.scoring import CareScoring
from alerts.service import CareService
from alerts.sms import OutboxChannel
from core.records import METER_ALARM, METER_INDEX, Record
from core.registry import Registry
from core.registry.devices import Devices
from core.registry.models import Alert
from core.store.influx import InfluxStore
from tests.servers import InfluxDB

LOCAL = ZoneInfo("Europe/Paris")
FRAME = timedelta(minutes=15)
HISTORY = timedelta(days=14)
# h-<case> with meter m-<case>: what the meter shows (see _history)
CASES = ("silent", "leak", "device", "alarm", "ok", "quiet")


def _now() -> datetime:
    """16:07 yesterday, Paris time: the verdicts depend on the hour of day."""
    local = (datetime.now(LOCAL) - timedelta(days=1)).replace(
        hour=16, minute=7, second=0, microsecond=0
    )
    return local.astimezone(UTC)


def _history(case: str, meter: str, now: datetime) -> Iterator[Record]:
    """Water every 30 minutes from 07:00 to 22:00, then each case's trouble."""
    if case == "quiet":
        return  # a meter commissioned but never heard from: nothing to say yet
    index, t, n = 100_000, now - HISTORY, 0
    while t <= now:
        n += 1
        hour = t.astimezone(LOCAL).hour
        silent = case == "silent" and t > now - timedelta(hours=14)
        if not silent and n % 2 == 0 and 7 <= hour < 22:
            index += 15
        if case == "leak" and t > now - timedelta(hours=30):
            index += 3  # 12 L/h that never stops
        if case == "device" and t > now - timedelta(hours=10):
            break  # the meter stops reporting
        yield Record(METER_INDEX, meter, int(t.timestamp() * 1e9), (("index_l", index),))
        t += FRAME
    if case == "alarm":
        at = int((now - timedelta(hours=3)).timestamp() * 1e9)
        yield Record(METER_ALARM, meter, at, (("alarm", "tamper"),))


@pytest.fixture
async def store(influxdb: InfluxDB, influx_db: str) -> AsyncIterator[InfluxStore]:
    s = InfluxStore(influxdb.url, influx_db)
    await s.open()
    now = _now()
    await s.write([r for case in CASES for r in _history(case, f"m-{case}", now)])
    yield s
    await s.close()


def _care(tmp: Path) -> CareService:
    tmp.mkdir(exist_ok=True)
    registry = Registry(f"sqlite:///{tmp / 'registry.sqlite'}")
    registry.upgrade()
    for case in CASES:
        registry.add_household(f"h-{case}", moved_in=(datetime.now(UTC) - HISTORY * 2).date())
        Devices(registry).commission(f"m-{case}", "meter", actor="tech", dwelling_id=f"d-h-{case}")
        Enrolment(registry).create(
            actor="care-1",
            household_id=f"h-{case}",
            person_label="Jeanne",
            consent_note="form 2026-7",
            contacts=[{"name": "A", "phone": "+33611111111"}],
        )
    return CareService(registry, OutboxChannel(tmp / "outbox.jsonl"))


def _alerts(care: CareService) -> list[tuple[Any, ...]]:
    with care.registry.reading() as s:
        rows = s.scalars(select(Alert).order_by(Alert.dedupe_key)).all()
        return [(a.kind, a.audience, a.household_id, a.dedupe_key, a.status) for a in rows]


async def _score(tmp: Path, store: InfluxStore, workers: int, models: Path) -> Any:
    care = _care(tmp)
    job = CareScoring(store, care, models, workers=workers)
    try:
        scored = await job.score_all(_now())
    finally:
        await job.close()
    alerts = _alerts(care)
    care.registry.close()
    return scored, alerts


async def test_two_worker_processes_raise_the_same_alerts_as_one_thread(
    tmp_path: Path, store: InfluxStore
) -> None:
    models = tmp_path / "models"
    trainer = CareScoring(store, _care(tmp_path), models)
    assert await trainer.retrain_all(_now()) == len(CASES)
    one = await _score(tmp_path / "one", store, 1, models)
    two = await _score(tmp_path / "two", store, 2, models)
    assert two == one
    scored, alerts = one
    assert scored == len(CASES)
    kinds = {(kind, household) for kind, _, household, _, _ in alerts}
    assert {
        ("inactivity", "h-silent"),
        ("device_silent", "h-device"),
        ("meter_alarm", "h-alarm"),
    } <= kinds
    assert any(k in ("leak", "continuous_flow") and h == "h-leak" for k, h in kinds)
    assert not any(h in ("h-ok", "h-quiet") for _, h in kinds)


async def test_a_worker_sees_a_retrained_model_and_the_service_logs_its_warnings(
    tmp_path: Path, store: InfluxStore, caplog: pytest.LogCaptureFixture
) -> None:
    models = tmp_path / "models"
    care = _care(tmp_path)
    job = CareScoring(store, care, models, workers=2)
    try:
        await job.retrain_all(_now())
        await job.score_all(_now())  # the silent household's model is now cached in a worker
        path = models / "h-silent.json"
        broken = path.with_suffix(".new")
        broken.write_text(path.read_text().replace('"version": 1', '"version": 0'))
        os.replace(broken, path)  # what a retrain does: a new file, a new identity
        with caplog.at_level(logging.WARNING, logger="alerts.scoring"):
            assert await job.score_all(_now()) == len(CASES)
        assert "model of h-silent unreadable" in caplog.text
        assert multiprocessing.active_children()  # one chunk: one process started
    finally:
        await job.close()
        care.registry.close()
    assert multiprocessing.active_children() == []  # closed with the service
