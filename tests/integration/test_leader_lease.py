"""The scheduler lease (core/leader.py) on every registry backend: a SQLite file and a
real PostgreSQL (``registry_url`` in tests/conftest.py), racers on their own connections.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from core.leader import LEAD_FRACTION, Leader, Lease
from core.registry import Registry

TTL_S = 30.0
T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
RACERS = 8
ROUNDS = 5


def lease(registry: Registry, holder: str, name: str = "scheduler") -> Lease:
    return Lease(registry, name, holder, TTL_S)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_a_free_lease_is_taken_and_then_refused_to_others(registry: Registry) -> None:
    a, b = lease(registry, "a"), lease(registry, "b")
    assert a.try_acquire_or_renew(at(0))
    assert not b.try_acquire_or_renew(at(1))
    assert a.current() == ("a", at(0), at(TTL_S))


def test_leases_of_other_names_are_independent(registry: Registry) -> None:
    assert lease(registry, "a").try_acquire_or_renew(at(0))
    assert lease(registry, "b", name="other").try_acquire_or_renew(at(0))


def test_renewal_keeps_the_lease_past_its_first_expiry(registry: Registry) -> None:
    a, b = lease(registry, "a"), lease(registry, "b")
    assert a.try_acquire_or_renew(at(0))
    assert a.try_acquire_or_renew(at(20))
    assert not b.try_acquire_or_renew(at(TTL_S + 5))  # past the first expiry, not the renewed
    assert a.current() == ("a", at(0), at(20 + TTL_S))  # taken at 0, renewed at 20


def test_an_expired_lease_passes_to_the_next_taker_and_the_old_holder_loses_it(
    registry: Registry,
) -> None:
    a, b = lease(registry, "a"), lease(registry, "b")
    assert a.try_acquire_or_renew(at(0))
    assert b.try_acquire_or_renew(at(TTL_S + 1))
    assert not a.try_acquire_or_renew(at(TTL_S + 2))  # late renewal: b holds it now
    assert a.current() == ("b", at(TTL_S + 1), at(2 * TTL_S + 1))


def test_a_forced_take_wins_over_a_live_holder(registry: Registry) -> None:
    # an ingest worker's own session lease: the owner takes it back from an adopter
    adopter, owner = lease(registry, "adopter", "mqtt/g/w1"), lease(registry, "owner", "mqtt/g/w1")
    assert adopter.try_acquire_or_renew(at(0))
    assert owner.try_acquire_or_renew(at(1), force=True)
    assert not adopter.try_acquire_or_renew(at(2))
    assert owner.current() == ("owner", at(1), at(1 + TTL_S))


def test_expired_lists_the_run_out_leases_under_a_prefix_only(registry: Registry) -> None:
    assert lease(registry, "a", "mqtt/g/w1").try_acquire_or_renew(at(0))
    assert lease(registry, "b", "mqtt/g/w2").try_acquire_or_renew(at(20))
    assert lease(registry, "c", "mqtt/other/w3").try_acquire_or_renew(at(0))
    assert lease(registry, "d", "mqtt/g_x/w4").try_acquire_or_renew(at(0))  # '_' is no wildcard
    assert Lease.expired(registry, "mqtt/g/", at(TTL_S + 1)) == ["mqtt/g/w1"]
    assert Lease.expired(registry, "mqtt/g/", at(TTL_S + 21)) == ["mqtt/g/w1", "mqtt/g/w2"]
    assert Lease.expired(registry, "mqtt/g/", at(5)) == []


def test_expired_uses_the_database_clock_without_a_time(registry: Registry) -> None:
    assert lease(registry, "a", "mqtt/g/w1").try_acquire_or_renew(at(0))  # 2025: long gone
    assert lease(registry, "b", "mqtt/g/w2").try_acquire_or_renew()  # now: alive
    assert Lease.expired(registry, "mqtt/g/") == ["mqtt/g/w1"]


def test_a_lease_name_may_hold_a_long_mqtt_client_id(registry: Registry) -> None:
    name = "mqtt/foyer/" + "w" * 200  # migration 0010: 255 characters, PostgreSQL enforces it
    assert lease(registry, "a", name).try_acquire_or_renew(at(0))
    assert Lease.expired(registry, "mqtt/foyer/", at(TTL_S + 1)) == [name]


def test_release_hands_the_lease_over_at_once(registry: Registry) -> None:
    a, b = lease(registry, "a"), lease(registry, "b")
    assert a.try_acquire_or_renew(at(0))
    assert a.release()
    assert b.try_acquire_or_renew(at(1))  # long before a's expiry


def test_only_the_holder_can_release(registry: Registry) -> None:
    a, b = lease(registry, "a"), lease(registry, "b")
    assert a.try_acquire_or_renew(at(0))
    assert not b.release()
    assert a.current() == ("a", at(0), at(TTL_S))


def test_without_a_time_the_lease_runs_from_the_database_clock(registry: Registry) -> None:
    a = lease(registry, "a")
    before = datetime.now(UTC)
    assert a.try_acquire_or_renew()
    current = a.current()
    assert current is not None
    # PostgreSQL's now() (the fixture's server runs in Europe/Paris: handed back in UTC),
    # or this host's clock for SQLite; both on this host here, so within a few seconds.
    assert current.holder == "a"
    assert current.expires_at - current.acquired_at == timedelta(seconds=TTL_S)
    assert abs(current.acquired_at - before) < timedelta(seconds=5)
    assert not lease(registry, "b").try_acquire_or_renew()


def race(url: str, take: datetime | None) -> list[str]:
    """RACERS threads, each on its own engine (own connections), released together."""
    start = threading.Barrier(RACERS)
    winners: list[str] = []
    errors: list[BaseException] = []

    def racer(n: int) -> None:
        reg = Registry(url)
        try:
            contender = lease(reg, f"racer-{n}")
            with reg.reading() as session:  # connect before the barrier, not after
                session.execute(text("SELECT 1"))
            start.wait(timeout=10)
            if contender.try_acquire_or_renew(take):
                winners.append(contender.holder)
        except BaseException as err:  # noqa: BLE001 - reported by the test thread
            errors.append(err)
        finally:
            reg.close()

    threads = [threading.Thread(target=racer, args=(n,)) for n in range(RACERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    return winners


def test_racers_for_a_missing_lease_leave_exactly_one_holder(
    registry: Registry, registry_url: str
) -> None:
    winners = race(registry_url, None)  # the database's clock: production's path
    assert len(winners) == 1
    current = lease(registry, "x").current()
    assert current is not None and current.holder == winners[0]


def test_racers_for_an_expired_lease_leave_exactly_one_holder(
    registry: Registry, registry_url: str
) -> None:
    stale = datetime.now(UTC) - timedelta(hours=1)  # expired an hour before the race
    assert lease(registry, "old").try_acquire_or_renew(stale)
    for round_ in range(ROUNDS):
        winners = race(registry_url, None)
        assert len(winners) == 1, f"round {round_}: {winners}"
        # The winner renews its own lease into the past: the next round races for it.
        assert lease(registry, winners[0]).try_acquire_or_renew(stale)


class Monotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_leader_stops_leading_before_its_lease_expires_unless_renewed(
    registry: Registry,
) -> None:
    clock = Monotonic()
    leader = Leader(lease(registry, "a"), clock=clock)
    assert await leader.renew()
    clock.now += TTL_S * LEAD_FRACTION - 0.1
    assert leader.is_leader()
    clock.now += 0.1  # the last third is the margin before anyone else may take it
    assert not leader.is_leader()
    assert await leader.renew()  # still its own lease in the database: renewed
    assert leader.is_leader()


async def test_leadership_changes_are_reported_and_logged_once_each(
    registry: Registry, caplog: pytest.LogCaptureFixture
) -> None:
    a, b = Leader(lease(registry, "a")), Leader(lease(registry, "b"))
    changes: dict[str, list[bool]] = {"a": [], "b": []}
    a.on_change = changes["a"].append
    b.on_change = changes["b"].append
    with caplog.at_level(logging.WARNING, logger="core.leader"):
        for _ in range(3):
            assert await a.renew()
            assert not await b.renew()
        await a.release()
        assert not a.is_leader()
        assert await b.renew()  # at its next try, not after the ttl
    assert changes == {"a": [True], "b": [False, True]}
    messages = [record.getMessage() for record in caplog.records]
    assert sum("leads the scheduler" in m for m in messages) == 2  # a, then b
    assert sum("standing by: another process" in m for m in messages) == 1  # b, once
    assert sum("lease released" in m for m in messages) == 1


async def test_a_standby_has_nothing_to_release(registry: Registry) -> None:
    a, b = Leader(lease(registry, "a")), Leader(lease(registry, "b"))
    assert await a.renew()
    assert not await b.renew()
    await b.release()
    current = a.lease.current()
    assert current is not None and current.holder == "a"
