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
import zlib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from sqlalchemy import select

from alerts import detectors, lifecycle, rhythm
from alerts.model import Finding, Recovery
from alerts.service import CareService
from core.records import METER_ALARM, METER_INDEX, Record
from core.registry.models import Alert
from core.store.port import TelemetryStore

log = logging.getLogger(__name__)

LOCAL: Final = ZoneInfo("Europe/Paris")
SCORE_WINDOW: Final = timedelta(days=3)  # enough for the leak (24 h) and silence rules
TRAIN_WINDOW: Final = timedelta(days=rhythm.WINDOW_DAYS)
STALE_MODEL: Final = timedelta(hours=26)  # nightly retrain, with slack for a late run
CHUNK: Final = 250  # households per bulk read: one InfluxQL answer of up to ~70,000 points


def _local_naive(t: datetime) -> datetime:
    return t.astimezone(LOCAL).replace(tzinfo=None)


def _utc(t: datetime) -> datetime:
    return t.replace(tzinfo=LOCAL).astimezone(UTC) if t.tzinfo is None else t.astimezone(UTC)


class CareScoring:
    def __init__(self, store: TelemetryStore, care: CareService, models_dir: Path) -> None:
        self._store = store
        self._care = care
        self._models = models_dir
        self._cache: dict[str, tuple[tuple[int, int, int], _Packed]] = {}

    async def score_all(self, now: datetime | None = None) -> int:
        """Every monitored household once; returns how many were scored.

        At territory scale (issue 6: 100,000 households every CARE_SCORE_S) meters are
        read CHUNK households per store query, and the next chunk is read while the
        detectors run on this one in a worker thread. One household's failure must not
        stop the others: a chunk whose read fails is scored household by household.
        """
        now = now or self._care.now()
        households = await asyncio.to_thread(self._care.monitored)
        chunks = [households[i : i + CHUNK] for i in range(0, len(households), CHUNK)]
        scored = 0
        pending = self._read_ahead(chunks, 0, now)
        try:
            for k, chunk in enumerate(chunks):
                read = await _settled(pending)
                pending = self._read_ahead(chunks, k + 1, now)
                if isinstance(read, Exception):
                    log.warning("bulk read failed (%r): scoring %d one by one", read, len(chunk))
                    scored += await self._score_each(chunk, now)
                else:
                    scored += await self._score_chunk(chunk, read, now)
        finally:
            if pending is not None:
                pending.cancel()
        kept = {h["household_id"] for h in households}  # ended subscriptions leave the cache
        self._cache = {k: v for k, v in self._cache.items() if k in kept}
        return scored

    def _read_ahead(
        self, chunks: Sequence[Sequence[dict[str, Any]]], k: int, now: datetime
    ) -> asyncio.Task[_Readings] | None:
        if k >= len(chunks):
            return None
        return asyncio.create_task(self._read_chunk(chunks[k], now))

    async def _read_chunk(self, chunk: Sequence[dict[str, Any]], now: datetime) -> _Readings:
        devices = [h["meter_ids"][-1] for h in chunk if h["meter_ids"]]
        span = _span(now - SCORE_WINDOW, now)
        index = await self._store.query_many(METER_INDEX, devices, *span)
        alarms = await self._store.query_many(METER_ALARM, devices, *span)
        out: _Readings = {d: ([], []) for d in devices}
        for r in index:
            out[r.device_id][0].append(r)
        for r in alarms:
            out[r.device_id][1].append(r)
        return out

    async def _score_each(self, chunk: Sequence[dict[str, Any]], now: datetime) -> int:
        scored = 0
        for household in chunk:
            try:
                await self._score(household, now)
                scored += 1
            except Exception:  # one household's failure must not stop the others
                log.exception("scoring failed for subscription %s", household["subscription_id"])
        return scored

    async def _score_chunk(
        self, chunk: Sequence[dict[str, Any]], read: _Readings, now: datetime
    ) -> int:
        outcomes = await asyncio.to_thread(self._detect_chunk, chunk, read, now)
        # A recovery only acts on an unresolved alert of its key (the lifecycle ignores
        # the others), and every household sends some: asking the registry once per
        # chunk which keys are open spares a transaction per household.
        open_keys = await asyncio.to_thread(self._open_keys)
        scored = 0
        for household, outcome in zip(chunk, outcomes, strict=True):
            try:
                if isinstance(outcome, Exception):
                    raise outcome
                if outcome is not None:
                    await self._act(outcome, now, open_keys)
                scored += 1
            except Exception:  # one household's failure must not stop the others
                log.exception("scoring failed for subscription %s", household["subscription_id"])
        return scored

    def _detect_chunk(
        self, chunk: Sequence[dict[str, Any]], read: _Readings, now: datetime
    ) -> list[list[Finding | Recovery] | Exception | None]:
        """CPU-bound (pandas, numpy): runs in a worker thread, off the event loop."""
        out: list[list[Finding | Recovery] | Exception | None] = []
        for household in chunk:
            try:
                out.append(self._detect_one(household, read, now))
            except Exception as err:  # noqa: BLE001 - reported per household by the caller
                out.append(err)
        return out

    def _detect_one(
        self, household: dict[str, Any], read: _Readings, now: datetime
    ) -> list[Finding | Recovery] | None:
        meters: Sequence[str] = household["meter_ids"]
        if not meters:
            return None
        index, alarms = read[meters[-1]]
        data = _household_data(household, meters[-1], index, alarms)
        hid = household["household_id"]
        return detectors.detect(data, lambda: self._load_cached(hid), _local_naive(now))

    async def _act(
        self, results: Sequence[Finding | Recovery], now: datetime, open_keys: set[str]
    ) -> None:
        findings = [dataclasses.replace(r, at=now) for r in results if isinstance(r, Finding)]
        recoveries = [
            dataclasses.replace(r, at=_utc(r.at)) for r in results if isinstance(r, Recovery)
        ]
        await self._care.raise_findings(findings)
        open_keys.update(f.dedupe_key for f in findings)
        recoveries = [r for r in recoveries if r.dedupe_key in open_keys]
        if recoveries:
            await self._care.recover(recoveries)

    def _open_keys(self) -> set[str]:
        stmt = select(Alert.dedupe_key).where(Alert.status != lifecycle.RESOLVED)
        with self._care.registry.reading() as session:
            return set(session.scalars(stmt))

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
        span = _span(start, end)
        index = await self._store.query(METER_INDEX, device, *span)
        alarms = await self._store.query(METER_ALARM, device, *span)
        return _household_data(household, device, index, alarms)

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

    def _load_cached(self, household_id: str) -> rhythm.RhythmModel | None:
        """``_load`` through an in-memory cache keyed by the file's identity.

        Parsing a model costs milliseconds, a hundred seconds a pass at 100,000
        households; a retrain replaces the file (new inode and mtime), which misses the
        cache. Models are kept compressed (~0.5 kB each, not ~75 kB of Python lists).
        Cold starts and unreadable files are not cached: they log as before.
        """
        path = self._path(household_id)
        try:
            st = path.stat()
        except FileNotFoundError:
            return None
        key = (st.st_ino, st.st_mtime_ns, st.st_size)
        hit = self._cache.get(household_id)
        if hit is not None and hit[0] == key:
            return hit[1].model()
        model = self._load(household_id)
        if model is not None:
            self._cache[household_id] = (key, _Packed.of(model))
        return model

    def _save(self, household_id: str, model: rhythm.RhythmModel) -> None:
        self._models.mkdir(parents=True, exist_ok=True)
        tmp = self._path(household_id).with_suffix(".tmp")
        tmp.write_text(json.dumps(model.to_dict()))
        os.replace(tmp, self._path(household_id))  # atomic: a crash keeps the old model


def _span(start: datetime, end: datetime) -> tuple[int, int]:
    return int(start.timestamp() * 1e9), int(end.timestamp() * 1e9) + 1


def _local_naive_ns(time_ns: np.ndarray) -> np.ndarray:
    """Vectorised ``_local_naive`` of store times, as datetime64[ns].

    Per-record datetimes cost ~0.5 ms a meter, a minute a pass at 100,000 households.
    Europe/Paris changes offset twice a year, months apart: when the first and the last
    time of a few days' readings share an offset, every time between does.
    """
    if len(time_ns) == 0:
        return np.array([], dtype="datetime64[ns]")
    lo, hi = (datetime.fromtimestamp(int(t) // 10**9, UTC) for t in (time_ns.min(), time_ns.max()))
    offset = lo.astimezone(LOCAL).utcoffset()
    if offset is not None and offset == hi.astimezone(LOCAL).utcoffset():
        shift = offset // timedelta(microseconds=1) * 1000
        return np.asarray(time_ns + shift, dtype=np.int64).view("datetime64[ns]")
    local = pd.to_datetime(time_ns, utc=True).tz_convert(LOCAL).tz_localize(None)
    return np.asarray(local.as_unit("ns").to_numpy(), dtype="datetime64[ns]")


def _household_data(
    household: dict[str, Any], device: str, index: Sequence[Record], alarms: Sequence[Record]
) -> detectors.HouseholdData:
    times = np.fromiter((r.time_ns for r in index), dtype=np.int64, count=len(index))
    litres = np.array([dict(r.fields).get("index_l") for r in index], dtype=np.float64)
    frame = pd.DataFrame({"time": _local_naive_ns(times), "index_l": litres})
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


@dataclasses.dataclass(frozen=True)
class _Packed:
    """A RhythmModel in a few hundred bytes: its counts are small non-negative ints."""

    trained_at: datetime
    n_uses: int
    n: tuple[int, ...]
    dtype: str
    exceed: bytes  # zlib of the (N_SLOTS, N_STEPS) array in ``dtype``
    first_uses: tuple[tuple[int, ...], ...]
    last_uses: tuple[tuple[int, ...], ...]

    @classmethod
    def of(cls, m: rhythm.RhythmModel) -> _Packed:
        exceed = np.asarray(m.exceed, dtype=np.int64)
        dtype = (
            np.min_scalar_type(int(exceed.max(initial=0)))
            if exceed.min(initial=0) >= 0
            else np.dtype(np.int64)
        )
        return cls(
            m.trained_at,
            m.n_uses,
            tuple(m.n),
            dtype.str,
            zlib.compress(exceed.astype(dtype).tobytes(), 1),
            tuple(tuple(r) for r in m.first_uses),
            tuple(tuple(r) for r in m.last_uses),
        )

    def model(self) -> rhythm.RhythmModel:
        exceed = np.frombuffer(zlib.decompress(self.exceed), dtype=self.dtype)
        return rhythm.RhythmModel(
            trained_at=self.trained_at,
            n_uses=self.n_uses,
            n=list(self.n),
            exceed=exceed.reshape(rhythm.N_SLOTS, rhythm.N_STEPS).tolist(),
            first_uses=[list(r) for r in self.first_uses],
            last_uses=[list(r) for r in self.last_uses],
        )


_Readings = dict[str, tuple[list[Record], list[Record]]]  # device -> (index, alarms)


async def _settled(task: asyncio.Task[_Readings] | None) -> _Readings | Exception:
    """The task's result, or the exception it raised (the caller falls back on it)."""
    assert task is not None
    try:
        return await task
    except Exception as err:  # noqa: BLE001 - handed back to the caller, which logs it
        return err


def _fit(data: detectors.HouseholdData, now: datetime) -> rhythm.RhythmModel:
    """CPU-bound: runs in a worker thread, off the event loop."""
    r = data.readings.sort_values("time")
    t_s = np.asarray(pd.DatetimeIndex(r["time"]).as_unit("s").asi8, dtype=np.int64)
    mask = detectors.use_mask(t_s, r["index_l"].to_numpy(dtype=np.float64))
    uses = pd.DatetimeIndex(r["time"])[mask]
    away = [(a, b or _local_naive(now)) for a, b in data.away]
    return rhythm.fit(uses, _local_naive(now), excluded=away)
