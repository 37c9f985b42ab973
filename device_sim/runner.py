"""The async send loop: due packs -> faults -> bounded, rate-limited sends."""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import sys
import time
from dataclasses import dataclass, field

from device_sim.clock import SimClock
from device_sim.faults import Fault, FaultConfig, Silence, choose_fault, garbage_payload, late_delay
from device_sim.senml import encode
from device_sim.simulation import Outgoing, Simulation
from device_sim.transport import Sender

TICK_S = 0.2
SUMMARY_EVERY_S = 5.0


@dataclass
class Stats:
    sent: int = 0
    errors: int = 0
    faults: dict[str, int] = field(
        default_factory=lambda: {f.value: 0 for f in Fault if f is not Fault.NONE}
    )
    silenced: int = 0

    def line(self, clock: SimClock, inflight: int, held: int) -> str:
        sim = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(clock.now()))
        faults = " ".join(f"{k}={v}" for k, v in self.faults.items())
        return (
            f"sim={sim} lag={clock.lag() / 3600:.1f}h sent={self.sent} errors={self.errors} "
            f"{faults} silent={self.silenced} inflight={inflight} held={held}"
        )


class Runner:
    def __init__(
        self,
        sim: Simulation,
        clock: SimClock,
        sender: Sender,
        fmt: str,
        faults: FaultConfig,
        seed: int,
        concurrency: int = 16,
        max_rate: float = 200.0,
    ) -> None:
        self.sim, self.clock, self.sender, self.fmt, self.faults = sim, clock, sender, fmt, faults
        self.stats = Stats()
        self._rng = random.Random(f"faults/{seed}")
        self._silence = Silence(faults)
        self._sem = asyncio.Semaphore(concurrency)
        self._min_gap = 1.0 / max_rate if max_rate > 0 else 0.0
        self._next_slot = 0.0
        self._tasks: set[asyncio.Task[None]] = set()
        self._held: list[tuple[float, Outgoing, bytes]] = []

    async def run(self, duration_s: float) -> Stats:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError):  # no signal handlers on some platforms
            loop.add_signal_handler(signal.SIGINT, stop.set)
        deadline = loop.time() + duration_s if duration_s > 0 else float("inf")
        # A separate task, so summaries keep coming while a big catch-up batch is paced out.
        reporter = asyncio.create_task(self._report_every(SUMMARY_EVERY_S))
        while not stop.is_set() and loop.time() < deadline:
            for out in self.sim.due(self.clock.now()):
                await self._dispatch(out)
                if stop.is_set() or loop.time() >= deadline:
                    break
            await self._release_held(loop.time())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), TICK_S)
        # Late packs are flushed rather than dropped: late, not lost.
        await self._release_held(float("inf"))
        if self._tasks:
            await asyncio.wait(self._tasks)
        reporter.cancel()
        self._summary()
        return self.stats

    async def _report_every(self, period_s: float) -> None:
        while True:
            await asyncio.sleep(period_s)
            self._summary()

    def _summary(self) -> None:
        print(
            self.stats.line(self.clock, len(self._tasks), len(self._held)),
            file=sys.stderr,
            flush=True,
        )

    async def _dispatch(self, out: Outgoing) -> None:
        if self._silence.is_silent(out.device_id, self.clock.now(), self._rng):
            self.stats.silenced += 1
            return
        fault = choose_fault(self._rng, self.faults)
        if fault is not Fault.NONE:
            self.stats.faults[fault.value] += 1
        payload = encode(out.pack, self.fmt)
        if fault is Fault.GARBAGE:
            payload = garbage_payload(self._rng, self.fmt)
        if fault is Fault.LATE:
            when = asyncio.get_running_loop().time() + late_delay(self._rng, self.faults)
            self._held.append((when, out, payload))
            return
        await self._submit(out, payload)
        if fault is Fault.DUPLICATE:
            await self._submit(out, payload)

    async def _release_held(self, now: float) -> None:
        ready = [h for h in self._held if h[0] <= now]
        self._held = [h for h in self._held if h[0] > now]
        for _, out, payload in ready:
            await self._submit(out, payload)

    async def _submit(self, out: Outgoing, payload: bytes) -> None:
        # Acquiring before spawning gives back-pressure: the loop waits rather than
        # piling up unbounded tasks when the transport is slow.
        await self._sem.acquire()
        await self._pace()
        task = asyncio.create_task(self._send(out, payload))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _pace(self) -> None:
        now = asyncio.get_running_loop().time()
        self._next_slot = max(now, self._next_slot + self._min_gap)
        if self._next_slot > now:
            await asyncio.sleep(self._next_slot - now)

    async def _send(self, out: Outgoing, payload: bytes) -> None:
        try:
            await self.sender.send(out.kind_path, out.device_id, payload, self.fmt)
            self.stats.sent += 1
        except Exception as exc:  # noqa: BLE001 - a refused pack is an expected outcome (garbage), not a crash
            self.stats.errors += 1
            if self.stats.errors <= 5:
                print(f"send {out.device_id}: {exc}", file=sys.stderr)
        finally:
            self._sem.release()
