"""The territory in the registry: dwellings, households and their occupancy, collection
points and badges, changed one at a time (the API) or in bulk (CSV, all or nothing).

Every change is audited in the transaction that makes it. Field rules are shared with
the CSV import (``territory_csv``), so the API and a file accept the same values.
Reading lives in ``territory_queries``; the import in ``territory_import``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import date
from typing import Any, Final

from sqlalchemy import or_, select, true
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.registry import audit
from core.registry.errors import DuplicateTerritory, InvalidTerritory, OccupancyConflict
from core.registry.models import Badge, CollectionPoint, Dwelling, Household, Occupancy
from core.registry.service import Registry
from core.registry.territory_csv import Problems, Shape, Value, clean, clean_changes
from core.registry.territory_import import NOUNS, import_csv, occupied_reason
from core.registry.territory_queries import (
    Place,
    TerritoryQueries,
    badge_view,
    get_badge,
    get_household,
    get_place,
    occupancy_view,
    place_view,
    record_kind,
    target,
)

PLACE: Final = Shape(("id", "address"), ("commune",))
PLACE_EDIT: Final = Shape(("address",), ("commune",))
HOUSEHOLD: Final = Shape(("id",), ("name", "size", "kind", "dwelling_id", "move_in"))
HOUSEHOLD_EDIT: Final = Shape((), ("name", "size", "kind"))
MOVE_IN: Final = Shape(("dwelling_id", "move_in"), ("move_out",))
MOVE_OUT: Final = Shape((), ("move_out",))
BADGE: Final = Shape(("id", "household_id"), ("valid_from", "valid_to"))
REVOKE: Final = Shape((), ("valid_to",))


def _checked(shape: Shape, values: Mapping[str, object]) -> dict[str, Value]:
    """Values of a new record, or InvalidTerritory naming each bad or unknown field."""
    clean_values, problems = clean(shape, values)
    problems += [(c, "unknown field") for c in sorted(set(values) - set(shape.columns))]
    _refuse(problems)
    return clean_values


def _checked_changes(shape: Shape, changes: Mapping[str, object]) -> dict[str, Value]:
    values, problems = clean_changes(shape, changes)
    _refuse(problems)
    return values


def _refuse(problems: Problems) -> None:
    if problems:
        raise InvalidTerritory("; ".join(f"{column}: {reason}" for column, reason in problems))


def _date(value: Value, default: date) -> date:
    return value if isinstance(value, date) else default


def _clash(
    session: Session, household_id: str, dwelling_id: str, start: date, end: date | None
) -> None:
    """Refuse a stay overlapping the household's other stays or the dwelling's other
    occupants: readings belong to whoever occupied the dwelling then (DESIGN.md)."""
    ends_after = Occupancy.end.is_(None) | (Occupancy.end > start)
    starts_before = Occupancy.start < end if end is not None else true()
    same = or_(Occupancy.household_id == household_id, Occupancy.dwelling_id == dwelling_id)
    clash = session.scalars(select(Occupancy).where(ends_after, starts_before, same).limit(1))
    occ = clash.first()
    if occ is None:
        return
    if occ.household_id != household_id:
        raise OccupancyConflict(f"{occupied_reason(occ)}: record that household's move-out first")
    until = occ.end.isoformat() if occ.end else "no move-out yet"
    raise OccupancyConflict(
        f"household {household_id} lives in dwelling {occ.dwelling_id} then "
        f"(from {occ.start.isoformat()}, {until}): record its move-out first"
    )


class Territory:
    """Sub-service of the registry for the territory; every change audited with its actor."""

    def __init__(self, registry: Registry) -> None:
        self._registry = registry
        self.read = TerritoryQueries(registry)

    def import_csv(self, kind: str, data: bytes, *, actor: str, filename: str) -> dict[str, Any]:
        """Import a whole CSV or nothing; TerritoryImportError names every bad row."""
        return import_csv(self._registry, kind, data, actor=actor, filename=filename)

    @contextmanager
    def _new(self, model: type[Any], key: str) -> Iterator[Session]:
        """A transaction adding the record ``key``: refused if the id is taken, even by a
        concurrent writer (the primary key catches what the first check missed)."""
        taken = DuplicateTerritory(f"{NOUNS[model]} {key} is already registered")
        try:
            with self._registry.transaction() as session:
                if session.get(model, key) is not None:
                    raise taken
                yield session
        except IntegrityError as err:
            raise taken from err

    def _audit(self, session: Session, actor: str, action: str, model: type[Any], key: str,
               details: Mapping[str, object] | None = None) -> None:  # fmt: skip
        audit.record(session, actor, action, target(model, key), self._registry.now(), details)

    # --- dwellings and collection points -----------------------------------------------

    def create_dwelling(self, values: Mapping[str, object], *, actor: str) -> dict[str, Any]:
        return self._create_place(Dwelling, values, actor)

    def update_dwelling(
        self, dwelling_id: str, changes: Mapping[str, object], *, actor: str
    ) -> dict[str, Any]:
        return self._update_place(Dwelling, dwelling_id, changes, actor)

    def create_collection_point(
        self, values: Mapping[str, object], *, actor: str
    ) -> dict[str, Any]:
        return self._create_place(CollectionPoint, values, actor)

    def update_collection_point(
        self, point_id: str, changes: Mapping[str, object], *, actor: str
    ) -> dict[str, Any]:
        return self._update_place(CollectionPoint, point_id, changes, actor)

    def _create_place(
        self, model: Place, values: Mapping[str, object], actor: str
    ) -> dict[str, Any]:
        place = model(**_checked(PLACE, values))
        with self._new(model, place.id) as session:
            session.add(place)
            self._audit(session, actor, f"{record_kind(model)}.create", model, place.id,
                        place_view(place))  # fmt: skip
        return place_view(place)

    def _update_place(
        self, model: Place, key: str, changes: Mapping[str, object], actor: str
    ) -> dict[str, Any]:
        values = _checked_changes(PLACE_EDIT, changes)
        with self._registry.transaction() as session:
            place = get_place(session, model, key)
            for column, value in values.items():
                setattr(place, column, value)
            self._audit(session, actor, f"{record_kind(model)}.update", model, key, values)
            return place_view(place)

    # --- households and occupancy -------------------------------------------------------

    def create_household(self, values: Mapping[str, object], *, actor: str) -> dict[str, Any]:
        """A household, moved into ``dwelling_id`` from ``move_in`` (default today) if given."""
        v = _checked(HOUSEHOLD, values)
        if v["move_in"] is not None and v["dwelling_id"] is None:
            _refuse([("dwelling_id", "a move-in needs the dwelling")])
        household = Household(id=v["id"], name=v["name"], size=v["size"], kind=v["kind"])
        with self._new(Household, household.id) as session:
            session.add(household)
            session.flush()  # the occupancy's foreign key needs the row
            details = {k: v[k] for k in ("name", "size", "kind")}
            self._audit(session, actor, "household.create", Household, household.id, details)
            if v["dwelling_id"] is not None:
                start = _date(v["move_in"], self._registry.now().date())
                self._move_in(session, household.id, str(v["dwelling_id"]), start, None, actor)
        return self.read.household(household.id)

    def update_household(
        self, household_id: str, changes: Mapping[str, object], *, actor: str
    ) -> dict[str, Any]:
        values = _checked_changes(HOUSEHOLD_EDIT, changes)
        with self._registry.transaction() as session:
            household = get_household(session, household_id)
            for column, value in values.items():
                setattr(household, column, value)
            self._audit(session, actor, "household.update", Household, household_id, values)
        return self.read.household(household_id)

    def move_in(
        self, household_id: str, values: Mapping[str, object], *, actor: str
    ) -> dict[str, Any]:
        """A new occupancy [move_in, move_out) of a dwelling by the household."""
        v = _checked(MOVE_IN, values)
        start = _date(v["move_in"], date.min)  # required: clean() refused a missing one
        end = v["move_out"] if isinstance(v["move_out"], date) else None
        with self._registry.transaction() as session:
            get_household(session, household_id)
            stay = self._move_in(session, household_id, str(v["dwelling_id"]), start, end, actor)
            return occupancy_view(stay)

    def _move_in(self, session: Session, household_id: str, dwelling_id: str, start: date,
                 end: date | None, actor: str) -> Occupancy:  # fmt: skip
        get_place(session, Dwelling, dwelling_id)
        _clash(session, household_id, dwelling_id, start, end)
        stay = Occupancy(household_id=household_id, dwelling_id=dwelling_id, start=start, end=end)
        session.add(stay)
        details = {"dwelling_id": dwelling_id, "move_in": start, "move_out": end}
        self._audit(session, actor, "household.move_in", Household, household_id, details)
        return stay

    def move_out(
        self, household_id: str, values: Mapping[str, object], *, actor: str
    ) -> dict[str, Any]:
        """End the household's open occupancy on ``move_out`` (default today; the day
        itself is no longer occupied, as periods are [move_in, move_out))."""
        end = _date(_checked_changes(MOVE_OUT, values).get("move_out"), self._registry.now().date())
        with self._registry.transaction() as session:
            get_household(session, household_id)
            stmt = select(Occupancy).where(
                Occupancy.household_id == household_id, Occupancy.end.is_(None)
            )
            stay = session.scalars(stmt).first()
            if stay is None:
                raise OccupancyConflict(f"household {household_id} has no stay without a move-out")
            if end <= stay.start:
                raise InvalidTerritory(
                    f"move_out: must be after move_in ({stay.start.isoformat()})"
                )
            stay.end = end
            details = {"dwelling_id": stay.dwelling_id, "move_out": end}
            self._audit(session, actor, "household.move_out", Household, household_id, details)
            return occupancy_view(stay)

    # --- badges ---------------------------------------------------------------------------

    def issue_badge(self, values: Mapping[str, object], *, actor: str) -> dict[str, Any]:
        """A household's badge for collective containers, valid from ``valid_from``
        (default today) until ``valid_to`` (excluded) or its revocation."""
        v = _checked(BADGE, values)
        valid_from = _date(v["valid_from"], self._registry.now().date())
        valid_to = v["valid_to"] if isinstance(v["valid_to"], date) else None
        if valid_to is not None and valid_to <= valid_from:
            _refuse([("valid_to", f"must be after valid_from ({valid_from.isoformat()})")])
        badge = Badge(id=v["id"], household_id=v["household_id"], valid_from=valid_from,
                      valid_to=valid_to)  # fmt: skip
        with self._new(Badge, badge.id) as session:
            get_household(session, badge.household_id)
            session.add(badge)
            self._audit(session, actor, "badge.issue", Badge, badge.id, badge_view(badge))
        return badge_view(badge)

    def revoke_badge(
        self, badge_id: str, values: Mapping[str, object], *, actor: str
    ) -> dict[str, Any]:
        """Stop the badge from ``valid_to`` (default today); an earlier end is kept."""
        end = _date(_checked_changes(REVOKE, values).get("valid_to"), self._registry.now().date())
        with self._registry.transaction() as session:
            badge = get_badge(session, badge_id)
            if end < badge.valid_from:
                # Equal is allowed: a badge issued by mistake today is revoked today.
                raise InvalidTerritory(
                    f"valid_to: not before valid_from ({badge.valid_from.isoformat()})"
                )
            if badge.valid_to is None or badge.valid_to > end:
                badge.valid_to = end
                self._audit(session, actor, "badge.revoke", Badge, badge_id, {"valid_to": end})
            return badge_view(badge)
