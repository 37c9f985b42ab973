"""Turns the fleet and simulated time into SenML packs that are due (pure, seeded)."""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass

from device_sim import behaviour
from device_sim.fleet import Fleet, Household
from device_sim.senml import Measure, Pack, build_pack, volume

SAMPLE_S = 900  # a meter pack carries one index per quarter hour of its window
BATTERY_EVERY = 96  # about one battery record per day at 15 min reporting


@dataclass(frozen=True)
class Outgoing:
    kind_path: str  # "meters" or "bins"
    device_id: str
    pack: Pack


class Simulation:
    def __init__(self, fleet: Fleet, start: float, interval_s: float, seed: int) -> None:
        self._rng = random.Random(f"sim/{seed}")
        self._interval = interval_s
        self._homes = {h.meter_id: h for h in fleet.households}
        self._homes.update(
            {h.bin_id: h for h in fleet.households if h.bin_id and h.bin_self_reports}
        )
        self._index = {h.meter_id: float(h.start_index_l) for h in fleet.households}
        self._battery = {d: self._rng.uniform(40, 100) for d, _, _ in fleet.devices()}
        self._badges = {c: fleet.badges_of(c) for c in fleet.containers}
        self._truck_bins = {t: fleet.truck_bins(t) for t in fleet.trucks}
        self._last: dict[str, float] = {}
        self._due: list[tuple[float, str]] = []
        senders = [*self._homes, *self._badges, *self._truck_bins]
        for device_id in senders:
            self._last[device_id] = start
            # Stagger first reports so the fleet does not publish in lock-step.
            heapq.heappush(self._due, (start + self._rng.uniform(0, interval_s), device_id))

    def due(self, now: float) -> list[Outgoing]:
        """Packs for every device whose report time has come, windows [last, due)."""
        out = []
        while self._due and self._due[0][0] <= now:
            t1, device_id = heapq.heappop(self._due)
            t0, self._last[device_id] = self._last[device_id], t1
            heapq.heappush(self._due, (t1 + self._interval, device_id))
            item = self._report(device_id, t0, t1)
            if item is not None:
                out.append(item)
        return out

    def _report(self, device_id: str, t0: float, t1: float) -> Outgoing | None:
        if device_id in self._badges:
            measures = self._container(device_id, t0, t1)
        elif device_id in self._truck_bins:
            measures = self._truck(device_id, t0, t1)
        elif device_id == self._homes[device_id].meter_id:
            return Outgoing(
                "meters", device_id, build_pack(device_id, self._meter(device_id, t0, t1))
            )
        else:
            measures = self._bin(self._homes[device_id], t0, t1)
        return Outgoing("bins", device_id, build_pack(device_id, measures)) if measures else None

    def _meter(self, meter_id: str, t0: float, t1: float) -> list[Measure]:
        scale = self._homes[meter_id].usage_scale
        measures = []
        t = t0
        while t < t1:
            end = min(t1, t + SAMPLE_S)
            self._index[meter_id] += behaviour.litres_used(t, end, scale, self._rng)
            measures.append(volume(end, self._index[meter_id]))
            t = end
        if self._rng.random() < 1 / BATTERY_EVERY:
            measures.append(self._battery_measure(meter_id, t1))
        return measures

    def _battery_measure(self, device_id: str, t: float) -> Measure:
        self._battery[device_id] = max(1.0, self._battery[device_id] - 0.05)
        return Measure("battery", t, "%EL", v=round(self._battery[device_id], 1))

    def _bin(self, home: Household, t0: float, t1: float) -> list[Measure]:
        assert home.bin_id is not None
        # A sensor bin knows it was emptied but cannot weigh itself: lift without v.
        measures = [
            Measure("lift", t)
            for t, _ in behaviour.lifts_in(home.bin_id, home.collection_day, t0, t1)
        ]
        fill = behaviour.maybe_fill(self._rng, 0.05)
        if fill is not None:
            measures.append(Measure("fill", t1, "%", v=fill))
        return measures

    def _truck(self, truck_id: str, t0: float, t1: float) -> list[Measure]:
        measures = [
            Measure("lift", t, "kg", v=kg, about=h.bin_id)
            for h in self._truck_bins[truck_id]
            if h.bin_id is not None
            for t, kg in behaviour.lifts_in(h.bin_id, h.collection_day, t0, t1)
        ]
        return sorted(measures, key=lambda m: m.t)

    def _container(self, container_id: str, t0: float, t1: float) -> list[Measure]:
        measures = [
            Measure("deposit", t, "l" if litres is not None else None, v=litres, vs=badge)
            for t, badge, litres in behaviour.deposits_in(
                self._badges[container_id], t0, t1, self._rng
            )
        ]
        fill = behaviour.maybe_fill(self._rng)
        if fill is not None:
            measures.append(Measure("fill", t1, "%", v=fill))
        return measures
