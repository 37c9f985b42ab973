"""Scheduler leadership: a lease row in the registry (issue 6, "the scheduler runs as a
single leader"; docs/configuration.md, "Roles").

Several `foyer serve --role scheduler` (or `all`) processes may run. The one holding the
`scheduler` lease runs the registry-wide jobs (care scoring, escalation and its SMS,
retraining, device states, the water roll-up); the others stand by, renew-or-take every
ttl/3, and one of them leads once the lease is released (clean shutdown) or expires
(the leader died or lost the registry).

Clocks. A lease's times are the database's own: PostgreSQL's `now()`, so that pods
with skewed clocks all compare against one server clock. A SQLite registry is a file on
one host, read by processes that share that host's clock: there the Python clock is
the database's clock. The holder never compares wall clocks itself: it counts its lease
from a monotonic reading taken *before* the statement (never later than the moment
the database started the lease) and stops leading after `LEAD_FRACTION` of the ttl
unless a renewal succeeded meanwhile. The last third of the ttl is the margin for a
job that checked the lease just before that deadline. There is no fencing token: a job
still running when its process loses the lease (cut off from the registry, or frozen,
for longer than that margin) may overlap its successor's first run. A long job alone
does not lose the lease: renewals are a job of their own and go on beside it.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import math
import os
import secrets
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Final, NamedTuple

from sqlalchemy import ColumnElement, Interval, case, delete, func, literal, select
from sqlalchemy.exc import SQLAlchemyError

from core.registry import Registry
from core.registry.models import Lease as LeaseRow
from core.registry.service import upsert_insert

log = logging.getLogger(__name__)

SCHEDULER_LEASE: Final = "scheduler"
LEAD_FRACTION: Final = 2 / 3  # lead for 2/3 of the ttl after a renewal began
RENEW_FRACTION: Final = 1 / 3  # renew every ttl/3: a renewal may fail once and lead goes on
RELEASE_DEADLINE_S: Final = 5.0  # shutdown does not wait longer on an unreachable registry


class Skipped(enum.Enum):
    """What a registry-wide job returns when this process stands by (not a run)."""

    STANDBY = "standby"


class LeaseState(NamedTuple):
    holder: str
    acquired_at: datetime  # when this holder took it (kept over renewals)
    expires_at: datetime


def holder_id() -> str:
    """`<hostname>-<pid>-<random>`: who holds a lease, readable in the `leases` table;
    the random part makes a restarted process (same host, reused pid) a new holder."""
    host = socket.gethostname()[:200]  # the column holds 255 characters; a name 253
    return f"{host}-{os.getpid()}-{secrets.token_hex(4)}"


class Lease:
    """A named lease in the registry: one holder at a time, until `expires_at`."""

    def __init__(self, registry: Registry, name: str, holder: str, ttl_s: float) -> None:
        if ttl_s <= 0:
            raise ValueError("a lease's ttl must be positive")
        self.registry = registry
        self.name = name
        self.holder = holder
        self.ttl_s = ttl_s

    def try_acquire_or_renew(self, now: datetime | None = None, *, force: bool = False) -> bool:
        """Take the lease if it is free or expired, extend it if ours; True if we hold it.

        One statement, atomic on both backends: INSERT ... ON CONFLICT DO UPDATE with a
        WHERE re-checked on the locked, latest row (PostgreSQL's guarantee for ON
        CONFLICT; SQLite serialises writers), RETURNING the holder only when it wrote.
        `force` takes it from any holder: for the owner of what the lease names (an
        ingest worker's own MQTT session, core/ingest/adoption.py), never for a leader.
        `now` (aware) replaces the database's clock: for tests.
        """
        with self.registry.transaction() as session:
            dialect = session.get_bind().dialect.name
            start, expires = self._period(dialect, now)
            stmt = upsert_insert(session)(LeaseRow).values(
                name=self.name,
                holder=self.holder,
                acquired_at=start,
                expires_at=expires,
            )
            new = stmt.excluded
            upsert = stmt.on_conflict_do_update(
                index_elements=[LeaseRow.name],
                set_={
                    "holder": new.holder,
                    "expires_at": new.expires_at,
                    # acquired_at: when the current holder took it, kept over renewals
                    "acquired_at": case(
                        (LeaseRow.holder == new.holder, LeaseRow.acquired_at),
                        else_=new.acquired_at,
                    ),
                },
                where=None
                if force
                else (LeaseRow.expires_at < new.acquired_at) | (LeaseRow.holder == new.holder),
            ).returning(LeaseRow.holder)
            return session.execute(upsert).scalar_one_or_none() == self.holder

    def release(self) -> bool:
        """Give the lease up (clean shutdown) so a standby takes it at once; False if it
        was not ours (any more)."""
        stmt = delete(LeaseRow).where(LeaseRow.name == self.name, LeaseRow.holder == self.holder)
        with self.registry.transaction() as session:
            return bool(session.execute(stmt).rowcount)  # type: ignore[attr-defined]

    def current(self) -> LeaseState | None:
        """The lease's row, expired or not; None without a row (free or released)."""
        stmt = select(LeaseRow.holder, LeaseRow.acquired_at, LeaseRow.expires_at)
        with self.registry.reading() as session:
            row = session.execute(stmt.where(LeaseRow.name == self.name)).first()
        return None if row is None else LeaseState(row.holder, row.acquired_at, row.expires_at)

    @staticmethod
    def expired(registry: Registry, prefix: str, now: datetime | None = None) -> list[str]:
        """Names of the leases under `prefix` that ran out, on the lease's clock."""
        with registry.reading() as session:
            dialect = session.get_bind().dialect.name
            if now is None:
                clock: Any = func.now() if dialect == "postgresql" else datetime.now(UTC)
            else:
                clock = now
            stmt = select(LeaseRow.name).where(
                LeaseRow.name.startswith(prefix, autoescape=True), LeaseRow.expires_at < clock
            )
            return list(session.scalars(stmt.order_by(LeaseRow.name)))

    def _period(self, dialect: str, now: datetime | None) -> tuple[Any, Any]:
        """(acquired_at, expires_at) on the lease's clock: `now` if given, else
        PostgreSQL's `now()`, else (SQLite, one host) this host's."""
        ttl = timedelta(seconds=self.ttl_s)
        if now is None and dialect == "postgresql":
            start: ColumnElement[datetime] = func.now()
            return start, start + literal(ttl, Interval())
        start_at = datetime.now(UTC) if now is None else now
        return start_at, start_at + ttl


class Leader:
    """This process's leadership: renews the lease (the `scheduler-lease` job), answers
    `is_leader()` before every registry-wide job, logs each change once."""

    def __init__(
        self,
        lease: Lease,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.lease = lease
        # Called with the new state at each change (and the first answer): catch-up jobs.
        self.on_change: Callable[[bool], None] = lambda _leading: None
        self._clock = clock
        self._until = -math.inf  # monotonic: lead until then
        self._reported: bool | None = None  # as last logged; None before the first try
        self._failing = False

    @property
    def renew_every_s(self) -> float:
        return self.lease.ttl_s * RENEW_FRACTION

    def is_leader(self) -> bool:
        return self._clock() < self._until

    async def renew(self) -> bool:
        """Take or keep the lease; on a registry error, lead on until the deadline."""
        started = self._clock()
        try:
            held = await asyncio.to_thread(self.lease.try_acquire_or_renew)
        except SQLAlchemyError as err:
            self._failed(err)
        else:
            self._renewed(held, started)
        self._report()
        return self.is_leader()

    async def release(self) -> None:
        """On clean shutdown: a standby leads at its next try, not after the ttl."""
        may_hold = self._reported or self._failing  # a standby has nothing to release
        self._until = -math.inf
        if not may_hold:
            return
        try:
            await asyncio.wait_for(asyncio.to_thread(self.lease.release), RELEASE_DEADLINE_S)
        except (SQLAlchemyError, TimeoutError) as err:
            log.warning("scheduler lease not released (%s): a standby leads once it expires",
                        type(err).__name__)  # fmt: skip
            return
        log.warning("scheduler lease released: a standby takes the lead")

    def _renewed(self, held: bool, started: float) -> None:
        if self._failing:
            self._failing = False
            log.warning("scheduler lease: the registry answers again")
        self._until = started + self.lease.ttl_s * LEAD_FRACTION if held else -math.inf

    def _failed(self, err: SQLAlchemyError) -> None:
        if not self._failing:  # once per outage, not every ttl/3
            self._failing = True
            log.warning("scheduler lease not renewed (%s): leading at most %.0f s more",
                        type(err).__name__, max(self._until - self._clock(), 0))  # fmt: skip

    def _report(self) -> None:
        leading = self.is_leader()
        if leading == self._reported:
            return
        first, self._reported = self._reported is None, leading
        if leading:
            log.warning("this process leads the scheduler (lease holder %s)", self.lease.holder)
        elif first:
            log.warning("scheduler standing by: another process holds the lease")
        else:
            log.warning("this process no longer leads the scheduler: standing by")
        self.on_change(leading)
