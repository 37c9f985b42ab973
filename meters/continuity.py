"""One continuous index per dwelling across meter swaps (DESIGN.md: consumption stays
continuous). Pure: readings and swaps in, a single series out.

At a swap the technician records the old meter's final index and the new meter's
initial index. Readings of the new meter are shifted by (old final - new initial),
plus the shifts of earlier swaps, so the place's index never jumps and consumption
between any two points is a plain difference. Readings of the old meter after the
swap, or of the new one before it, belong to no installation and are dropped.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Reading:
    device_id: str
    time_ns: int
    index_l: int


@dataclass(frozen=True)
class Swap:
    old_device_id: str
    new_device_id: str
    at_ns: int
    old_final_index_l: int
    new_initial_index_l: int


@dataclass(frozen=True)
class Installation:
    """One meter's stint at the place: [start_ns, end_ns) and its index shift."""

    device_id: str
    start_ns: int
    end_ns: int | None
    offset_l: int


def installations(first_device: str, swaps: Sequence[Swap]) -> list[Installation]:
    """The chain of meters at one place, oldest first, from its ordered swaps."""
    chain: list[Installation] = []
    device, start, offset = first_device, 0, 0
    for swap in sorted(swaps, key=lambda s: s.at_ns):
        if swap.old_device_id != device:
            raise ValueError(f"swap at {swap.at_ns} replaces {swap.old_device_id}, not {device}")
        chain.append(Installation(device, start, swap.at_ns, offset))
        offset += swap.old_final_index_l - swap.new_initial_index_l
        device, start = swap.new_device_id, swap.at_ns
    chain.append(Installation(device, start, None, offset))
    return chain


def continuous(
    first_device: str, swaps: Sequence[Swap], readings: Iterable[Reading]
) -> list[tuple[int, int]]:
    """(time_ns, index_l) of the place, in time order, continuous across swaps."""
    chain = installations(first_device, swaps)
    out = []
    for reading in readings:
        stint = _stint(chain, reading)
        if stint is not None:
            out.append((reading.time_ns, reading.index_l + stint.offset_l))
    return sorted(out)


def _stint(chain: Sequence[Installation], reading: Reading) -> Installation | None:
    for stint in chain:
        inside = stint.start_ns <= reading.time_ns and (
            stint.end_ns is None or reading.time_ns < stint.end_ns
        )
        if stint.device_id == reading.device_id and inside:
            return stint
    return None
