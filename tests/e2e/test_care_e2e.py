"""Care alerts end to end: readings in InfluxDB, the scheduled scoring job, SMS through the
real twilio library to a local stand-in for Twilio's API, the family's signed reply."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from alerts.enrolment import Enrolment
from alerts.sms import INBOUND_PATH
from core.records import METER_INDEX, Record
from core.registry.devices import Devices
from core.service import Foyer, running
from core.settings import Settings
from tests.servers import InfluxDB, free_port
from tests.twilio_fake import FROM, FakeTwilio, running_fake

ANNE, PAUL = "+33611111111", "+33622222222"
FRAME = timedelta(minutes=15)
HISTORY = timedelta(days=14)
SILENT_FOR = timedelta(hours=14)  # from 02:07: no morning use at all by 16:07
LOCAL = ZoneInfo("Europe/Paris")


def _scoring_time() -> datetime:
    """16:07 yesterday, Paris time: the detector's verdict depends on the hour of day."""
    local = (datetime.now(LOCAL) - timedelta(days=1)).replace(
        hour=16, minute=7, second=0, microsecond=0
    )
    return local.astimezone(UTC)


@pytest.fixture
async def fake() -> AsyncIterator[FakeTwilio]:
    async with running_fake() as f:
        yield f


@pytest.fixture
async def foyer(
    tmp_path: Path, influxdb: InfluxDB, influx_db: str, fake: FakeTwilio
) -> AsyncIterator[Foyer]:
    port = free_port()
    settings = Settings(
        data_dir=tmp_path / "data",
        influx_url=influxdb.url,
        influx_db=influx_db,
        coap_bind="",
        http_bind=f"127.0.0.1:{port}",
        twilio_account_sid=fake.account_sid,
        twilio_auth_token=fake.auth_token,
        twilio_from=FROM,
        twilio_api_url=fake.url,
        public_url=f"http://127.0.0.1:{port}",
    )
    async with running(settings) as f:
        yield f


def _enrol(foyer: Foyer, household: str, meter: str, phone: str) -> None:
    foyer.registry.add_household(household, moved_in=(datetime.now(UTC) - HISTORY * 2).date())
    Devices(foyer.registry).commission(meter, "meter", actor="tech", dwelling_id=f"d-{household}")
    Enrolment(foyer.registry).create(
        actor="care-1",
        household_id=household,
        person_label="Jeanne",
        consent_note="form 2026-7",
        contacts=[{"name": "A", "phone": phone}],
    )


async def _history(
    foyer: Foyer, meter: str, now: datetime, *, uses_until: datetime, frames_until: datetime
) -> None:
    """A resident who draws water every 30 minutes from 07:00 to 22:00, then stops."""
    records, index, t, n = [], 100_000, now - HISTORY, 0
    while t <= frames_until:
        n += 1
        if t <= uses_until and n % 2 == 0 and 7 <= t.astimezone(LOCAL).hour < 22:
            index += 15
        records.append(Record(METER_INDEX, meter, int(t.timestamp() * 1e9), (("index_l", index),)))
        t += FRAME
    await foyer.store.write(records)


async def test_a_silent_resident_alerts_the_family_who_acknowledge_by_signed_sms(
    foyer: Foyer, fake: FakeTwilio
) -> None:
    now = _scoring_time()
    _enrol(foyer, "h-1", "m-1", ANNE)
    await _history(foyer, "m-1", now, uses_until=now - SILENT_FOR, frames_until=now)
    assert await foyer.scoring.retrain_all(now) == 1
    assert await foyer.scoring.retrain_all(now, only_stale=True) == 0  # fresh: kept
    model = foyer.settings.data_dir / "care-models" / "h-1.json"
    good = model.read_text()
    model.write_text(good.replace('"version": 1', '"version": 0'))  # an older release's
    assert await foyer.scoring.retrain_all(now, only_stale=True) == 1  # unreadable: retrained
    assert model.read_text() == good
    # What the scheduler runs every 5 minutes, at a known hour of the day.
    await foyer.scoring.score_all(now)
    [sms] = fake.to(ANNE)
    [alert] = foyer.care.list_alerts()[0]
    assert (alert["kind"], alert["status"]) == ("inactivity", "notified")
    webhook = foyer.settings.public_url + INBOUND_PATH
    status, _ = await fake.reply(webhook, ANNE, "OK", signature=None)
    assert status == 403
    status, _ = await fake.reply(webhook, ANNE, "OK", token="0" * 32)  # wrong signature
    assert status == 403
    assert foyer.care.get_alert(alert["id"])["status"] == "notified"
    status, _ = await fake.reply(webhook, ANNE, "OK")
    assert status == 200
    assert foyer.care.get_alert(alert["id"])["status"] == "acknowledged"
    sample = foyer.metrics.registry.get_sample_value
    assert sample("foyer_http_refused_total", {"reason": "webhook_unsigned"}) == 1
    assert sample("foyer_http_refused_total", {"reason": "webhook_bad_signature"}) == 1
    assert sms.body  # the real twilio library posted a message with a body


async def test_a_silent_meter_alerts_technicians_never_the_family(
    foyer: Foyer, fake: FakeTwilio
) -> None:
    now = _scoring_time()
    _enrol(foyer, "h-2", "m-2", PAUL)
    # Frames stop with the uses: the device is silent, nothing is known of the resident.
    await _history(foyer, "m-2", now, uses_until=now - SILENT_FOR, frames_until=now - SILENT_FOR)
    await foyer.scoring.retrain_all(now)
    await foyer.scoring.score_all(now)
    assert fake.to(PAUL) == []
    family, _ = foyer.care.list_alerts()
    technician, _ = foyer.care.list_alerts(audiences=("technician",))
    assert family == []
    assert [a["kind"] for a in technician] == ["device_silent"]
