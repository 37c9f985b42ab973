"""Event hygiene before pricing: what a bill may count, and why the rest is left out.

- A lift whose chip was not read is never billed: nothing ties it to a bin.
- A lift the crew refused (non-conforming contents) is never billed.
- Two reads of one bin (or one badge at one container) closer than the tariff's
  duplicate window are one event: trucks re-read a chip while lifting, a hatch
  reports a retried opening. The first read counts; if it carries no weight, the
  first weight among its duplicates is kept.
Every event left out comes back as an ``Exclusion`` with its reason.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from billing.model import Deposit, Exclusion, Lift


def screen_lifts(lifts: tuple[Lift, ...], window: timedelta) -> tuple[list[Lift], list[Exclusion]]:
    """Lifts that may be billed (time order) and the ones left out."""
    kept: list[Lift] = []
    excluded: list[Exclusion] = []
    last: dict[str, int] = {}  # bin id -> index in ``kept`` of its last counted lift
    for lift in sorted(lifts, key=lambda x: (x.at, x.bin_id)):
        reason = _unbillable(lift)
        if reason is None and lift.bin_id in last:
            first = kept[last[lift.bin_id]]
            if lift.at - first.at < window:
                reason = "duplicate"
                if first.weight_kg is None and lift.weight_kg is not None:
                    kept[last[lift.bin_id]] = replace(first, weight_kg=lift.weight_kg)
        if reason is not None:
            excluded.append(Exclusion("lift", lift.bin_id, lift.at, reason))
            continue
        last[lift.bin_id] = len(kept)
        kept.append(lift)
    return kept, excluded


def _unbillable(lift: Lift) -> str | None:
    if not lift.chip_read:
        return "unread_chip"
    if lift.refused:
        return "refused"
    return None


def screen_deposits(
    deposits: tuple[Deposit, ...], window: timedelta
) -> tuple[list[Deposit], list[Exclusion]]:
    """Openings that may be billed and the duplicates left out."""
    kept: list[Deposit] = []
    excluded: list[Exclusion] = []
    last: dict[tuple[str, str], Deposit] = {}
    for dep in sorted(deposits, key=lambda d: (d.at, d.badge_id)):
        key = (dep.badge_id, dep.container_id)
        prev = last.get(key)
        if prev is not None and dep.at - prev.at < window:
            excluded.append(Exclusion("deposit", dep.badge_id, dep.at, "duplicate"))
            continue
        last[key] = dep
        kept.append(dep)
    return kept, excluded
