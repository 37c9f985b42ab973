"""The scheduled side of care alerts: read each monitored household's meter, run the
pure detectors, and hand findings and recoveries to the alert lifecycle.

State lives where a restart cannot lose it: models as JSON files with their training
time in ``models_dir`` (a missed nightly retrain runs at start-up), alert deadlines and
escalations in the registry. The schedule itself is rebuilt at each start.

Times: the rhythm is local (people wake by the clock on the wall, Europe/Paris); the
store and the registry are UTC. Readings are turned into naive local times for the
pure code and findings are stamped back in UTC.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from alerts import detectors, rhythm
from alerts.model import Finding, Recovery
from alerts.service import CareService
from core.records import METER_ALARM, METER_INDEX
from core.store.port import TelemetryStore

log = logging.getLogger(__name__)

LOCAL: Final = ZoneInfo("Europe/Paris")
SCORE_WINDOW: Final = timedelta(days=3)  # enough for the leak (24 h) and silence rules
TRAIN_WINDOW: Final = timedelta(days=rhythm.WINDOW_DAYS)
STALE_MODEL: Final = timedelta(hours=26)  # nightly retrain, with slack for a late run


def _local_naive(t: datetime) -> datetime:
    return t.astimezone(LOCAL).replace(tzinfo=None)


def _utc(t: datetime) -> datetime:
    return t.replace(tzinfo=LOCAL).astimezone(UTC) if t.tzinfo is None else t.astimezone(UTC)


class CareScoring:
    def __init__(self, store: TelemetryStore, care: CareService, models_dir: Path) -> None:
        self._store = store
        self._care = care
        self._models = models_dir

    async def score_all(self, now: datetime | None = None) -> int:
        """Every monitored household once; returns how many were scored."""
        now = now or self._care.now()
        scored = 0
        for household in await asyncio.to_thread(self._care.monitored):
            try:
                await self._score(household, now)
                scored += 1
            except Exception:  # one household's failure must not stop the others
                log.exception("scoring failed for subscription %s", household["subscription_id"])
        return scored

    async def retrain_all(self, now: datetime | None = None, *, only_stale: bool = False) -> int:
        now = now or self._care.now()
        trained = 0
        for household in await asyncio.to_thread(self._care.monitored):
            if only_stale and not self._stale(household["household_id"], now):
                continue
            data = await self._data(household, now - TRAIN_WINDOW, now)
            if data is None:
                continue
            model = await asyncio.to_thread(_fit, data, now)
            await asyncio.to_thread(self._save, household["household_id"], model)
            trained += 1
        return trained

    async def _score(self, household: dict[str, Any], now: datetime) -> None:
        data = await self._data(household, now - SCORE_WINDOW, now)
        if data is None:
            return
        model = await asyncio.to_thread(self._load, household["household_id"])
        results = detectors.detect(data, model, _local_naive(now))
        findings = [dataclasses.replace(r, at=now) for r in results if isinstance(r, Finding)]
        recoveries = [
            dataclasses.replace(r, at=_utc(r.at)) for r in results if isinstance(r, Recovery)
        ]
        await self._care.raise_findings(findings)
        await self._care.recover(recoveries)

    async def _data(
        self, household: dict[str, Any], start: datetime, end: datetime
    ) -> detectors.HouseholdData | None:
        meters: Sequence[str] = household["meter_ids"]
        if not meters:
            return None
        device = meters[-1]  # the newest meter at the dwelling
        span = int(start.timestamp() * 1e9), int(end.timestamp() * 1e9) + 1
        index = await self._store.query(METER_INDEX, device, *span)
        alarms = await self._store.query(METER_ALARM, device, *span)
        times = [_local_naive(datetime.fromtimestamp(r.time_ns / 1e9, UTC)) for r in index]
        litres = [dict(r.fields).get("index_l") for r in index]
        frame = pd.DataFrame({"time": pd.to_datetime(times), "index_l": litres}, dtype=object)
        frame["index_l"] = frame["index_l"].astype(float)
        return detectors.HouseholdData(
            household_id=household["household_id"],
            device_id=device,
            readings=frame,
            away=[(_local_naive(a), _local_naive(b) if b else None) for a, b in household["away"]],
            alarms=[
                (
                    _local_naive(datetime.fromtimestamp(r.time_ns / 1e9, UTC)),
                    str(dict(r.fields)["alarm"]),
                )
                for r in alarms
            ],
        )

    def _path(self, household_id: str) -> Path:
        return self._models / f"{household_id}.json"

    def _stale(self, household_id: str, now: datetime) -> bool:
        path = self._path(household_id)
        if not path.exists():
            return True
        trained = datetime.fromtimestamp(path.stat().st_mtime, UTC)
        # an unreadable model (older version, damaged file) is on the cold-start prior:
        # retrain it now rather than at the next nightly run
        return now - trained > STALE_MODEL or self._load(household_id) is None

    def _load(self, household_id: str) -> rhythm.RhythmModel | None:
        """None = cold start: the detectors use the population prior."""
        try:
            return rhythm.RhythmModel.from_dict(json.loads(self._path(household_id).read_text()))
        except FileNotFoundError:
            return None
        except (ValueError, KeyError) as err:
            log.warning(
                "model of %s unreadable (%s): cold start until retrained", household_id, err
            )
            return None

    def _save(self, household_id: str, model: rhythm.RhythmModel) -> None:
        self._models.mkdir(parents=True, exist_ok=True)
        tmp = self._path(household_id).with_suffix(".tmp")
        tmp.write_text(json.dumps(model.to_dict()))
        os.replace(tmp, self._path(household_id))  # atomic: a crash keeps the old model


def _fit(data: detectors.HouseholdData, now: datetime) -> rhythm.RhythmModel:
    """CPU-bound: runs in a worker thread, off the event loop."""
    r = data.readings.sort_values("time")
    t_s = np.asarray(pd.DatetimeIndex(r["time"]).as_unit("s").asi8, dtype=np.int64)
    mask = detectors.use_mask(t_s, r["index_l"].to_numpy(dtype=np.float64))
    uses = pd.DatetimeIndex(r["time"])[mask]
    away = [(a, b or _local_naive(now)) for a, b in data.away]
    return rhythm.fit(uses, _local_naive(now), excluded=away)
