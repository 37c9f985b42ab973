"""Registry errors: one small hierarchy, translated at the HTTP/CLI boundary."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple


class RegistryError(Exception):
    """Base class for every registry refusal."""


class UnknownHousehold(RegistryError):
    """A household id that the registry does not hold."""


class DuplicateDevice(RegistryError):
    """A device id that is already registered (PROTOCOL.md: ids are unique)."""


class InvalidDevice(RegistryError):
    """A device id or kind that PROTOCOL.md does not allow."""


class UnknownDevice(RegistryError):
    """A device id that the registry does not hold."""


class UnknownPlace(RegistryError):
    """A dwelling or collection point id that the registry does not hold."""


class InvalidCommissioning(RegistryError):
    """A commissioning request that does not fit the device (wrong place, bad value)."""


class InvalidTerritory(RegistryError):
    """A dwelling, household, collection point or badge value the rules refuse."""


class DuplicateTerritory(RegistryError):
    """An id of the territory (dwelling, household, collection point, badge) already taken."""


class UnknownBadge(RegistryError):
    """A badge id that the registry does not hold."""


class OccupancyConflict(RegistryError):
    """A move-in or move-out that would make occupancy periods overlap or not exist.

    Readings and fees belong to whoever occupied the dwelling at the time (DESIGN.md,
    "Domain model"), so one household lives in one dwelling at a time and one
    dwelling has one occupant at a time.
    """


class ImportProblem(NamedTuple):
    """One reason a bulk import is refused, where a spreadsheet user finds it."""

    row: int  # spreadsheet numbering: the header is row 1, the first data row is 2
    column: str  # "" when the problem concerns the whole row or file
    reason: str


class TerritoryImportError(RegistryError):
    """A bulk import refused as a whole; ``problems`` names every bad row (first ``limit``)."""

    def __init__(self, kind: str, problems: Sequence[ImportProblem], limit: int = 1000) -> None:
        ordered = sorted(problems, key=lambda p: p.row)  # stable: check order kept within a row
        self.kind = kind
        self.problems: tuple[ImportProblem, ...] = tuple(ordered[:limit])
        self.more = len(ordered) - len(self.problems)
        rows = len({p.row for p in ordered})
        super().__init__(
            f"{kind}: {len(ordered)} problem(s) on {rows} row(s); nothing was imported"
        )

    def report(self) -> dict[str, object]:
        """The JSON-ready report: problems in row order, and how many were left out."""
        return {
            "error": str(self),
            "kind": self.kind,
            "problems": [p._asdict() for p in self.problems],
            "more": self.more,
        }
