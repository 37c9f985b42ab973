"""Adopting a departed ingest worker's MQTT session (issue 6: "killing one loses nothing").

Each worker keeps a persistent session (clean_start=False, a week's expiry) in a
shared subscription, so that a restart finds its queue. The broker, though, keeps
routing the group's messages to a member that is gone for good: Mosquitto 2.0 gives
an offline member with a live session its turn in the round robin and queues the
message for it (MQTT 5 §4.8.2 allows it). A worker that is scaled in, or whose host
died, would strand its queue and a share of every new reading until its session
expired, a week later.

So each worker holds a lease ``mqtt/<group>/<client id>`` in the registry
(core/leader.py), renewed every third of ``mqtt_adopt_after_s``. When one runs out,
another worker of the group takes the lease and adopts the session: it connects with
the departed worker's client id, unsubscribes (the broker stops routing new messages
to it and still delivers what it queued, checked on Mosquitto 2.0), stores and acks
the queue through its own pipeline (acks after durable storage, as always), ends the
session (expiry 0 at DISCONNECT) once nothing arrives for ``QUIET_S``, and deletes
the lease. If the owner comes back meanwhile, it takes its lease back (`force`) and
its connection takes the session over (the broker disconnects the adopter, MQTT 5
§3.1.4): the adopter stops, and what it had not acked is redelivered to the owner.

A rolling restart shorter than ``mqtt_adopt_after_s`` is never adopted. Storage is
idempotent (a point is its series and time), so a message redelivered after a
takeover is stored once.

Workers that share a data directory (several `foyer-ingest@NN` on one host) also see
each other's spools: once the session is adopted (or found gone), the departed
worker's spool, readings it acknowledged while InfluxDB was down, is moved batch by
batch into our store (InfluxDB, or our own spool if it is still down), each batch
removed from theirs only once ours has it. Workers on separate volumes (Kubernetes)
keep theirs until they return (deploy/README.md, "Scaling ingestion").
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Final

from sqlalchemy.exc import SQLAlchemyError

from core.ingest.mqtt import MqttIngest, MqttSettings
from core.ingest.pipeline import Pipeline
from core.leader import Lease, holder_id
from core.metrics import Metrics
from core.registry import Registry
from core.store.port import TelemetryStore
from core.store.spool import Spool

log = logging.getLogger(__name__)

PREFIX: Final = "mqtt/"
QUIET_S: Final = 2.0  # nothing received for this long, nothing in hand: the queue is empty
CONNECT_S: Final = 15.0  # an adoption that cannot connect is given up, retried next time
MAX_ADOPTION_S: Final = 600.0  # a backlog bigger than this is finished by the next try


class Outcome(StrEnum):
    ADOPTED = "adopted"  # the queue was stored and the session ended
    EMPTY = "empty"  # the broker had no session left (expired, or ended by its owner)
    TAKEN_OVER = "taken_over"  # the owner came back: it has its session again
    FAILED = "failed"  # broker or registry unreachable: retried at the next check


def lease_name(group: str, client_id: str) -> str:
    return f"{PREFIX}{group}/{client_id}"


def client_id_of(name: str, group: str) -> str:
    """The client id in a lease name of `group` (client ids may contain '/')."""
    return name.removeprefix(lease_name(group, ""))


@dataclass(frozen=True, slots=True)
class Adoption:
    client_id: str
    outcome: Outcome
    messages: int  # handed to the pipeline (stored, or refused and counted)
    spooled_batches: int = 0  # moved from the departed worker's spool into our store


class SessionKeeper:
    """This worker's own session lease, and the adoption of departed workers' sessions."""

    def __init__(
        self,
        registry: Registry,
        settings: MqttSettings,
        pipeline: Pipeline,
        metrics: Metrics,
        adopt_after_s: float,
        *,
        quiet_s: float = QUIET_S,
        spools: tuple[TelemetryStore, Callable[[str], Path]] | None = None,
    ) -> None:
        self._registry = registry
        self._settings = settings
        self._pipeline = pipeline
        self._metrics = metrics
        self._holder = holder_id()
        self._ttl = adopt_after_s
        self._own = Lease(registry, lease_name(settings.group, settings.client_id),
                          self._holder, adopt_after_s)  # fmt: skip
        self._quiet_s = quiet_s
        self._spools = spools  # (our store, client id -> its spool file) on a shared data_dir
        self._failing = False

    @property
    def every_s(self) -> float:
        return self._ttl / 3

    async def heartbeat(self) -> None:
        """Hold our own lease, from anyone: the session is ours (an adopter stops)."""
        try:
            await asyncio.to_thread(self._own.try_acquire_or_renew, force=True)
        except SQLAlchemyError as err:
            if not self._failing:
                log.warning(
                    "MQTT session lease not renewed (%s): if this lasts %.0f s, another "
                    "worker adopts our session", type(err).__name__, self._ttl,
                )  # fmt: skip
            self._failing = True
            return
        if self._failing:
            log.warning("MQTT session lease renewed again")
        self._failing = False

    async def adopt_departed(self, now: datetime | None = None) -> list[Adoption]:
        """Adopt, one after the other, the sessions of this group's workers whose lease
        ran out (`now` replaces the registry's clock: for tests)."""
        group = self._settings.group
        try:
            names = await asyncio.to_thread(Lease.expired, self._registry,
                                            lease_name(group, ""), now)  # fmt: skip
        except SQLAlchemyError as err:
            log.warning("departed MQTT sessions not listed (%s)", type(err).__name__)
            return []
        done = []
        for name in names:
            client_id = client_id_of(name, group)
            if client_id == self._settings.client_id:
                continue  # ours: renewed by heartbeat()
            lease = Lease(self._registry, name, self._holder, self._ttl)
            try:
                taken = await asyncio.to_thread(lease.try_acquire_or_renew, now)
            except SQLAlchemyError:
                continue
            if taken:  # another worker may have been faster: then it adopts
                done.append(await self.adopt(client_id, lease))
        return done

    async def adopt(self, client_id: str, lease: Lease) -> Adoption:
        """Take `client_id`'s session while holding its `lease` (see the module doc)."""
        settings = replace(self._settings, client_id=client_id)
        mqtt = MqttIngest(settings, self._pipeline, self._metrics, adopt=True)
        log.warning("adopting the MQTT session of departed worker %s", client_id)
        outcome = Outcome.FAILED
        try:
            await mqtt.start()
            outcome = await self._take(mqtt, lease)
        except Exception:  # one adoption's failure must not stop ingestion
            log.exception("adoption of %s failed; retried at the next check", client_id)
        finally:
            end = outcome in (Outcome.ADOPTED, Outcome.EMPTY)
            if not await mqtt.stop(end_session=end) and outcome is Outcome.ADOPTED:
                outcome = Outcome.FAILED  # kept: something came in at the very end
        received = int(mqtt.handled)
        moved = 0
        if outcome in (Outcome.ADOPTED, Outcome.EMPTY):
            try:
                # the lease again before the spool: the move may take a while
                await asyncio.to_thread(lease.try_acquire_or_renew)
                moved = await self._take_spool(client_id)
            except Exception:  # its batches stay in its spool; retried if it is seen again
                log.exception("spool of departed worker %s not taken over", client_id)
        await self._settle(lease, outcome)
        self._metrics.adoptions.labels(outcome.value).inc()
        log.warning("MQTT session of %s: %s (%d messages, %d spooled batches)", client_id,
                    outcome.value, received, moved)  # fmt: skip
        return Adoption(client_id, outcome, received, moved)

    async def _take_spool(self, client_id: str) -> int:
        """Move the departed worker's spool into our store, oldest batch first."""
        if self._spools is None:
            return 0
        store, path_of = self._spools
        path = path_of(client_id)
        if not path.exists():
            return 0
        spool = Spool(path)
        await asyncio.to_thread(spool.open)
        moved = 0
        try:
            while (batch := await asyncio.to_thread(spool.oldest)) is not None:
                batch_id, records = batch
                await store.write(records)  # ours (or our spool) has it: then theirs drops it
                self._pipeline.note_stored(records)  # e.g. days for the water roll-up
                await asyncio.to_thread(spool.remove, batch_id)
                moved += 1
            _pending, dead = await asyncio.to_thread(spool.depth)
            if dead:
                log.error("spool of %s keeps %d batches InfluxDB refused (%s, table dead)",
                          client_id, dead, path)  # fmt: skip
        finally:
            await asyncio.to_thread(spool.close)
        return moved

    async def _take(self, mqtt: MqttIngest, lease: Lease) -> Outcome:
        try:
            await asyncio.wait_for(mqtt.connected.wait(), CONNECT_S)
        except TimeoutError:
            return Outcome.FAILED
        if not mqtt.session_present:
            return Outcome.EMPTY
        try:
            await asyncio.wait_for(mqtt.unsubscribed.wait(), CONNECT_S)
        except TimeoutError:
            return Outcome.FAILED
        started = renewed = time.monotonic()
        while time.monotonic() - started < MAX_ADOPTION_S:
            await asyncio.sleep(0.2)
            if mqtt.ended is not None:
                return await self._why_ended(mqtt, lease)
            if mqtt.idle() and time.monotonic() - mqtt.last_message >= self._quiet_s:
                # a message not stored (and so not acked) must not go with the session
                return Outcome.ADOPTED if mqtt.skipped == 0 else Outcome.FAILED
            if time.monotonic() - renewed >= self.every_s:
                renewed = time.monotonic()
                if not await asyncio.to_thread(lease.try_acquire_or_renew):
                    return Outcome.TAKEN_OVER  # the owner took its lease back
        return Outcome.FAILED  # still draining: the lease runs out and the next try goes on

    @staticmethod
    async def _why_ended(mqtt: MqttIngest, lease: Lease) -> Outcome:
        """The owner, back, forces its lease before it connects (core/service.py), and
        its connection takes the session over; some brokers also say so (0x8E)."""
        if mqtt.ended_by_takeover:
            return Outcome.TAKEN_OVER
        try:
            state = await asyncio.to_thread(lease.current)
        except SQLAlchemyError:
            return Outcome.FAILED
        return Outcome.TAKEN_OVER if state and state.holder != lease.holder else Outcome.FAILED

    async def _settle(self, lease: Lease, outcome: Outcome) -> None:
        """Adopted or empty: the session is gone, so is its lease. Failed: the lease
        runs out and the next check tries again. Taken over: it is the owner's again."""
        if outcome not in (Outcome.ADOPTED, Outcome.EMPTY):
            return
        try:
            await asyncio.to_thread(lease.release)
        except SQLAlchemyError as err:
            log.warning("lease %s not released (%s): it runs out", lease.name,
                        type(err).__name__)  # fmt: skip
