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
import functools
import json
import logging
import multiprocessing
import os
import traceback
import zlib
from collections import deque
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
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
from core.store.port import Columns, TelemetryStore

log = logging.getLogger(__name__)

LOCAL: Final = ZoneInfo("Europe/Paris")
SCORE_WINDOW: Final = timedelta(days=3)  # enough for the leak (24 h) and silence rules
TRAIN_WINDOW: Final = timedelta(days=rhythm.WINDOW_DAYS)
STALE_MODEL: Final = timedelta(hours=26)  # nightly retrain, with slack for a late run
CHUNK: Final = 250  # households per bulk read: one InfluxQL answer of up to ~70,000 points
# Chunks read at once: the store's answer, not the detectors, bounded a pass (docs/care.md,
# "Scale"), and InfluxDB serves concurrent queries on as many cores.
READ_AHEAD: Final = 2
INDEX_FIELD: Final = "index_l"  # docs/schema.md: the meter index, integer litres


def _local_naive(t: datetime) -> datetime:
    return t.astimezone(LOCAL).replace(tzinfo=None)


def _utc(t: datetime) -> datetime:
    return t.replace(tzinfo=LOCAL).astimezone(UTC) if t.tzinfo is None else t.astimezone(UTC)


class CareScoring:
    def __init__(
        self, store: TelemetryStore, care: CareService, models_dir: Path, workers: int = 1
    ) -> None:
        """``workers``: processes the detectors run in (1: a thread of this process)."""
        if workers < 1:
            raise ValueError("care scoring needs at least one worker")
        self._store = store
        self._care = care
        self._models = models_dir
        self._cache = _Models(models_dir)
        self._lanes = _Lanes(workers)
        self._generation = 0

    async def close(self) -> None:
        """Stop the scoring processes (the service does, after its scheduler)."""
        await asyncio.to_thread(self._lanes.close)

    async def score_all(self, now: datetime | None = None) -> int:
        """Every monitored household once; returns how many were scored.

        At territory scale (issue 6: 100,000 households every CARE_SCORE_S) meters are
        read CHUNK households per store query, as arrays, and each chunk's detectors run
        in one of the worker processes (a thread with one worker) while the next chunks
        are read and the finished ones acted upon; the registry writes stay here. One
        household's failure must not stop the others: a chunk whose read fails is scored
        household by household.
        """
        now = now or self._care.now()
        households = await asyncio.to_thread(self._care.monitored)
        chunks = [households[i : i + CHUNK] for i in range(0, len(households), CHUNK)]
        self._generation += 1
        scored = 0
        detecting: deque[tuple[int, Sequence[dict[str, Any]], asyncio.Future[_Detected]]]
        detecting = deque()
        reads = deque(self._read(chunks, k, now) for k in range(READ_AHEAD))
        try:
            for k, chunk in enumerate(chunks):
                read = await _settled(reads.popleft())
                reads.append(self._read(chunks, k + READ_AHEAD, now))
                if isinstance(read, Exception):
                    log.warning("bulk read failed (%r): scoring %d one by one", read, len(chunk))
                    scored += await self._score_each(chunk, now)
                else:
                    detecting.append((k, chunk, self._detect(k, read, now)))
                # every worker busy, one chunk queued behind them: act on the oldest
                while len(detecting) > self._lanes.size or (detecting and k == len(chunks) - 1):
                    lane, done, job = detecting.popleft()
                    outcomes = await self._detected(job, lane, len(done))
                    scored += await self._score_chunk(done, outcomes, now)
        finally:
            for task in reads:
                if task is not None:
                    task.cancel()
            for _, _, job in detecting:
                job.cancel()
        return scored

    def _read(
        self, chunks: Sequence[Sequence[dict[str, Any]]], k: int, now: datetime
    ) -> asyncio.Task[list[_Meter | None]] | None:
        if k >= len(chunks):
            return None
        return asyncio.create_task(self._read_chunk(chunks[k], now))

    async def _read_chunk(
        self, chunk: Sequence[dict[str, Any]], now: datetime
    ) -> list[_Meter | None]:
        devices = [h["meter_ids"][-1] for h in chunk if h["meter_ids"]]
        span = _span(now - SCORE_WINDOW, now)
        index = await self._store.query_columns(METER_INDEX, devices, INDEX_FIELD, *span)
        alarms: dict[str, list[tuple[int, str]]] = {}
        for r in await self._store.query_many(METER_ALARM, devices, *span):
            alarms.setdefault(r.device_id, []).append((r.time_ns, str(dict(r.fields)["alarm"])))
        return [_meter(h, index, alarms) if h["meter_ids"] else None for h in chunk]

    def _detect(
        self, k: int, meters: list[_Meter | None], now: datetime
    ) -> asyncio.Future[_Detected]:
        loop = asyncio.get_running_loop()
        local, gen = _local_naive(now), self._generation
        if self._lanes.size == 1:  # here: this process's model cache
            return loop.run_in_executor(
                self._lanes.pool(k), _detect_with, self._cache, gen, local, meters
            )
        # picklable in and out: arrays, datetimes, findings (the pure part of a chunk)
        return loop.run_in_executor(
            self._lanes.pool(k), _detect_in_worker, self._models, gen, local, meters
        )

    async def _detected(self, job: asyncio.Future[_Detected], k: int, size: int) -> list[_Outcome]:
        try:
            outcomes, warnings = await job
        except Exception as err:  # noqa: BLE001 - reported per household by the caller
            # a worker died (killed, out of memory) or the chunk could not be sent: its
            # households are reported failed, never dropped silently, and a dead
            # worker's lane starts a new process for its next chunk
            if isinstance(err, BrokenProcessPool):
                self._lanes.repair(k)
            return [err] * size
        for warning in warnings:
            log.warning("%s", warning)
        return outcomes

    async def _score_each(self, chunk: Sequence[dict[str, Any]], now: datetime) -> int:
        scored = 0
        for household in chunk:
            try:
                await self._score(household, now)
                scored += 1
            except Exception:  # one household's failure must not stop the others
                log.exception("scoring failed for subscription %s", household["subscription_id"])
        return scored

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
        return self._cache.path(household_id)

    async def _score_chunk(
        self, chunk: Sequence[dict[str, Any]], outcomes: Sequence[_Outcome], now: datetime
    ) -> int:
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

    async def _act(
        self, results: Sequence[Finding | Recovery], now: datetime, open_keys: set[str]
    ) -> None:
        findings = [dataclasses.replace(r, at=now) for r in results if isinstance(r, Finding)]
        await self._care.raise_findings(findings)
        open_keys.update(f.dedupe_key for f in findings)
        recoveries = [
            dataclasses.replace(r, at=_utc(r.at))
            for r in results
            if isinstance(r, Recovery) and r.dedupe_key in open_keys
        ]
        if recoveries:
            await self._care.recover(recoveries)

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
        model, warning = self._cache.load(household_id)
        if warning:
            log.warning("%s", warning)
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


_Outcome = list[Finding | Recovery] | Exception | None  # None: no meter to read
_Detected = tuple[list[_Outcome], list[str]]  # per household, and warnings to log


async def _settled(
    task: asyncio.Task[list[_Meter | None]] | None,
) -> list[_Meter | None] | Exception:
    """The task's result, or the exception it raised (the caller falls back on it)."""
    assert task is not None
    try:
        return await task
    except Exception as err:  # noqa: BLE001 - handed back to the caller, which logs it
        return err


@dataclasses.dataclass(frozen=True)
class _Meter:
    """One household's detection input, as read: picklable, sent to a scoring process."""

    household_id: str
    device_id: str
    time_ns: np.ndarray  # UTC
    index_l: np.ndarray
    away: tuple[tuple[datetime, datetime | None], ...]  # UTC, end None = open
    alarms: tuple[tuple[int, str], ...]  # (UTC ns, flag)


def _meter(
    household: dict[str, Any],
    index: Mapping[str, Columns],
    alarms: Mapping[str, list[tuple[int, str]]],
) -> _Meter:
    device = household["meter_ids"][-1]  # the newest meter at the dwelling
    columns = index.get(device)
    return _Meter(
        household["household_id"],
        device,
        columns.time_ns if columns is not None else np.empty(0, dtype=np.int64),
        columns.values if columns is not None else np.empty(0, dtype=np.float64),
        tuple(household["away"]),
        tuple(alarms.get(device, ())),
    )


def _data_of(m: _Meter) -> detectors.HouseholdData:
    """Local naive times for the pure detectors (see the module's docstring)."""
    local_s = _local_naive_ns(m.time_ns).view(np.int64) // 10**9
    return detectors.HouseholdData(
        household_id=m.household_id,
        device_id=m.device_id,
        readings=detectors.Readings(local_s, m.index_l),
        away=[(_local_naive(a), _local_naive(b) if b else None) for a, b in m.away],
        alarms=[(_local_naive(datetime.fromtimestamp(t / 1e9, UTC)), flag) for t, flag in m.alarms],
    )


def _detect_with(
    models: _Models, generation: int, now_local: datetime, meters: Sequence[_Meter | None]
) -> _Detected:
    """The pure part of a chunk: CPU-bound (numpy), off the event loop."""
    models.begin(generation)
    out: list[_Outcome] = []
    for m in meters:
        if m is None:
            out.append(None)
            continue
        models.touch(m.household_id)
        try:
            model = functools.partial(models.cached, m.household_id)
            out.append(detectors.detect(_data_of(m), model, now_local))
        except Exception as err:  # noqa: BLE001 - reported per household by the caller
            out.append(_portable(err))
    return out, models.drain_warnings()


def _portable(err: Exception) -> Exception:
    """An exception that crosses a process boundary whatever its type, traceback kept."""
    text = "".join(traceback.format_exception(err)).rstrip()
    return RuntimeError(f"detection failed:\n{text}")


_WORKER_MODELS: dict[Path, _Models] = {}  # in a scoring process: its model cache


def _detect_in_worker(
    models_dir: Path, generation: int, now_local: datetime, meters: Sequence[_Meter | None]
) -> _Detected:
    """``_detect_with`` in a scoring process, on that process's own model cache."""
    models = _WORKER_MODELS.setdefault(models_dir, _Models(models_dir))
    return _detect_with(models, generation, now_local, meters)


class _Models:
    """Models read from ``models_dir`` through a cache keyed by the file's identity.

    Parsing a model costs milliseconds, a hundred seconds a pass at 100,000
    households; a retrain replaces the file (new inode and mtime), which misses the
    cache. Models are kept compressed (~0.5 kB each, not ~75 kB of Python lists).
    Cold starts and unreadable files are not cached: they warn as before. A household
    not scored through this cache during a whole pass (ended subscription, or now
    scored by another process) leaves it at the next pass.
    """

    def __init__(self, directory: Path) -> None:
        self._dir = directory
        self._cache: dict[str, tuple[tuple[int, int, int], _Packed]] = {}
        self._generation = 0
        self._seen: set[str] = set()
        self._warnings: list[str] = []

    def begin(self, generation: int) -> None:
        if generation != self._generation:
            self._cache = {k: v for k, v in self._cache.items() if k in self._seen}
            self._generation, self._seen = generation, set()

    def touch(self, household_id: str) -> None:
        self._seen.add(household_id)

    def drain_warnings(self) -> list[str]:
        out, self._warnings = self._warnings, []
        return out

    def path(self, household_id: str) -> Path:
        return self._dir / f"{household_id}.json"

    def load(self, household_id: str) -> tuple[rhythm.RhythmModel | None, str | None]:
        """(model, None), (None, None) = cold start, or (None, why it is unreadable)."""
        try:
            text = self.path(household_id).read_text()
            return rhythm.RhythmModel.from_dict(json.loads(text)), None
        except FileNotFoundError:
            return None, None
        except (ValueError, KeyError) as err:
            return None, f"model of {household_id} unreadable ({err}): cold start until retrained"

    def cached(self, household_id: str) -> rhythm.RhythmModel | None:
        try:
            st = self.path(household_id).stat()
        except FileNotFoundError:
            return None
        key = (st.st_ino, st.st_mtime_ns, st.st_size)
        hit = self._cache.get(household_id)
        if hit is not None and hit[0] == key:
            return hit[1].model()
        model, warning = self.load(household_id)
        if warning:
            self._warnings.append(warning)
        if model is not None:
            self._cache[household_id] = (key, _Packed.of(model))
        return model


class _Lanes:
    """Where the detectors run: one thread, or ``workers`` single-process pools.

    Chunk k always goes to lane k % workers, so a household is scored by the same
    process pass after pass and that process's model cache keeps serving it. Processes
    are spawned (never forked: the service has threads), at the first pass.
    """

    def __init__(self, workers: int) -> None:
        self.size = workers
        self._pools: list[Executor | None] = [None] * workers

    def pool(self, k: int) -> Executor:
        lane = k % self.size
        pool = self._pools[lane]
        if pool is None:
            pool = self._pools[lane] = self._start()
        return pool

    def _start(self) -> Executor:
        if self.size == 1:
            return ThreadPoolExecutor(1, thread_name_prefix="care-scoring")
        return ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))

    def repair(self, k: int) -> None:
        """Forget chunk k's broken pool: the lane's next chunk starts a new process."""
        pool, self._pools[k % self.size] = self._pools[k % self.size], None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        pools, self._pools = self._pools, [None] * self.size
        for pool in pools:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)


def _fit(data: detectors.HouseholdData, now: datetime) -> rhythm.RhythmModel:
    """CPU-bound: runs in a worker thread, off the event loop."""
    assert isinstance(data.readings, pd.DataFrame)  # retraining reads Records (_data)
    r = data.readings.sort_values("time")
    t_s = np.asarray(pd.DatetimeIndex(r["time"]).as_unit("s").asi8, dtype=np.int64)
    mask = detectors.use_mask(t_s, r["index_l"].to_numpy(dtype=np.float64))
    uses = pd.DatetimeIndex(r["time"])[mask]
    away = [(a, b or _local_naive(now)) for a, b in data.away]
    return rhythm.fit(uses, _local_naive(now), excluded=away)
