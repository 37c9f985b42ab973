"""Seeded, deterministic fleet of simulated households and their devices (no I/O)."""

from __future__ import annotations

import csv
import math
import random
from dataclasses import dataclass
from pathlib import Path

HOUSEHOLDS_PER_CONTAINER = 30
HOUSEHOLDS_PER_TRUCK = 150
INDIVIDUAL_BIN_SHARE = 0.8
# Sensor bins report their own lifts; chip-only bins are reported by the truck reading them.
SELF_REPORTING_BIN_SHARE = 0.3


@dataclass(frozen=True)
class Household:
    household_id: str
    meter_id: str
    start_index_l: int
    usage_scale: float  # multiplier on the daily rhythm (household size, habits)
    collection_day: int  # weekday, 0 = Monday (UTC)
    bin_id: str | None = None
    bin_self_reports: bool = False
    truck_id: str | None = None
    container_id: str | None = None
    badge_id: str | None = None


@dataclass(frozen=True)
class Fleet:
    seed: int
    households: tuple[Household, ...]
    containers: tuple[str, ...]
    trucks: tuple[str, ...]

    def devices(self) -> list[tuple[str, str, str | None]]:
        out: list[tuple[str, str, str | None]] = []
        for h in self.households:
            out.append((h.meter_id, "meter", h.household_id))
            if h.bin_id is not None:
                out.append((h.bin_id, "bin", h.household_id))
        out += [(c, "container", None) for c in self.containers]
        out += [(t, "truck", None) for t in self.trucks]
        return out

    def badges_of(self, container_id: str) -> list[str]:
        return [
            h.badge_id for h in self.households if h.container_id == container_id and h.badge_id
        ]

    def truck_bins(self, truck_id: str) -> list[Household]:
        return [h for h in self.households if h.truck_id == truck_id and not h.bin_self_reports]


def _household(
    n: int, rng: random.Random, containers: tuple[str, ...], trucks: tuple[str, ...]
) -> Household:
    start_index_l = rng.randrange(0, 2_000_000)
    collection_day = rng.randrange(5)  # collections happen on weekdays
    if rng.random() < INDIVIDUAL_BIN_SHARE:
        return Household(
            household_id=f"h-{n}",
            meter_id=f"m-{n}",
            start_index_l=start_index_l,
            usage_scale=rng.uniform(0.6, 1.8),
            collection_day=collection_day,
            bin_id=f"b-{n}",
            bin_self_reports=rng.random() < SELF_REPORTING_BIN_SHARE,
            truck_id=trucks[(n - 1) // HOUSEHOLDS_PER_TRUCK % len(trucks)],
        )
    # Flats: smaller households sharing a collective container opened with a badge.
    return Household(
        household_id=f"h-{n}",
        meter_id=f"m-{n}",
        start_index_l=start_index_l,
        usage_scale=rng.uniform(0.4, 1.2),
        collection_day=collection_day,
        container_id=containers[(n - 1) // HOUSEHOLDS_PER_CONTAINER % len(containers)],
        badge_id=f"badge-{n}",
    )


def build_fleet(households: int, seed: int) -> Fleet:
    if households < 1:
        raise ValueError("households must be >= 1")
    rng = random.Random(seed)
    containers = tuple(
        f"c-{k}" for k in range(1, math.ceil(households / HOUSEHOLDS_PER_CONTAINER) + 1)
    )
    trucks = tuple(f"t-{k}" for k in range(1, math.ceil(households / HOUSEHOLDS_PER_TRUCK) + 1))
    homes = tuple(_household(n, rng, containers, trucks) for n in range(1, households + 1))
    return Fleet(seed=seed, households=homes, containers=containers, trucks=trucks)


def write_csv(fleet: Fleet, path: str | Path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["device_id", "kind", "household"])
        for device_id, kind, household in fleet.devices():
            w.writerow([device_id, kind, household or ""])
