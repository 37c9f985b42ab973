"""Reading the territory: views of dwellings, households, occupancy, collection points
and badges, and paged lists (75,000 inhabitants make tens of thousands of rows)."""

from __future__ import annotations

from datetime import date
from typing import Any, Final, cast

from sqlalchemy import ColumnElement, Select, func, or_, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from core.registry import audit
from core.registry.errors import UnknownBadge, UnknownHousehold, UnknownPlace
from core.registry.models import (
    Badge,
    Binding,
    CollectionPoint,
    Device,
    Dwelling,
    Household,
    Occupancy,
)
from core.registry.service import Registry
from core.registry.territory_import import NOUNS

MAX_LIST: Final = 1000
HISTORY: Final = 50  # audit entries shown with one record

Place = type[Dwelling] | type[CollectionPoint]
Page = tuple[list[dict[str, Any]], int]  # one page of rows, and how many match in all


def record_kind(model: type[Any]) -> str:
    """dwelling, collection_point, household, badge: audit actions and targets start so."""
    return NOUNS[model].replace(" ", "_")


def target(model: type[Any], key: str) -> str:
    """Audit target, prefixed by the record kind: a dwelling and a badge may share an id."""
    return f"{record_kind(model)}:{key}"


def _iso(value: date | None) -> str | None:
    return value.isoformat() if value is not None else None


def place_view(place: Dwelling | CollectionPoint) -> dict[str, Any]:
    return {"id": place.id, "address": place.address, "commune": place.commune}


def household_view(household: Household) -> dict[str, Any]:
    return {"id": household.id, "name": household.name, "size": household.size,
            "kind": household.kind}  # fmt: skip


def occupancy_view(occupancy: Occupancy) -> dict[str, Any]:
    return {
        "household_id": occupancy.household_id,
        "dwelling_id": occupancy.dwelling_id,
        "move_in": _iso(occupancy.start),
        "move_out": _iso(occupancy.end),
    }


def badge_view(badge: Badge) -> dict[str, Any]:
    return {
        "id": badge.id,
        "household_id": badge.household_id,
        "valid_from": _iso(badge.valid_from),
        "valid_to": _iso(badge.valid_to),
    }


def get_place(session: Session, model: Place, key: str) -> Dwelling | CollectionPoint:
    # session.get on a union of classes is typed as the common base: narrow it back.
    place = cast(Dwelling | CollectionPoint | None, session.get(model, key))
    if place is None:
        raise UnknownPlace(f"{NOUNS[model]} {key} is not registered")
    return place


def get_household(session: Session, household_id: str) -> Household:
    household = session.get(Household, household_id)
    if household is None:
        raise UnknownHousehold(f"household {household_id} is not registered")
    return household


def get_badge(session: Session, badge_id: str) -> Badge:
    badge = session.get(Badge, badge_id)
    if badge is None:
        raise UnknownBadge(f"badge {badge_id} is not registered")
    return badge


def occupied_on(day: date) -> ColumnElement[bool]:
    """Occupancies whose [start, end) holds ``day``."""
    return (Occupancy.start <= day) & (Occupancy.end.is_(None) | (Occupancy.end > day))


def _page(
    session: Session, stmt: Select[Any], order: Any, limit: int, offset: int
) -> tuple[list[Any], int]:
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    stmt = stmt.order_by(order).limit(max(1, min(limit, MAX_LIST))).offset(max(0, offset))
    return list(session.scalars(stmt)), total


def _devices_at(
    session: Session, column: InstrumentedAttribute[str | None], key: str
) -> list[dict[str, Any]]:
    """Devices installed there now (open bindings): bins with their volume, meters."""
    stmt = (
        select(Device)
        .join(Binding, Binding.device_id == Device.device_id)
        .where(column == key, Binding.valid_to.is_(None))
        .order_by(Device.device_id)
    )
    return [
        {"device_id": d.device_id, "kind": d.kind, "volume_l": d.volume_l, "status": d.status}
        for d in session.scalars(stmt)
    ]


class TerritoryQueries:
    """Read side of the territory; one short read session per call."""

    def __init__(self, registry: Registry) -> None:
        self._registry = registry

    def dwelling(self, dwelling_id: str) -> dict[str, Any]:
        """The dwelling, who occupied it when, and what is installed there now."""
        with self._registry.reading() as session:
            view = place_view(get_place(session, Dwelling, dwelling_id))
            stmt = select(Occupancy).where(Occupancy.dwelling_id == dwelling_id)
            stays = session.scalars(stmt.order_by(Occupancy.start))
            view["occupancies"] = [occupancy_view(o) for o in stays]
            view["devices"] = _devices_at(session, Binding.dwelling_id, dwelling_id)
            view["history"] = audit.entries(session, HISTORY, target(Dwelling, dwelling_id))
            return view

    def collection_point(self, point_id: str) -> dict[str, Any]:
        with self._registry.reading() as session:
            view = place_view(get_place(session, CollectionPoint, point_id))
            view["devices"] = _devices_at(session, Binding.collection_point_id, point_id)
            view["history"] = audit.entries(session, HISTORY, target(CollectionPoint, point_id))
            return view

    def places(
        self,
        model: Place,
        *,
        q: str | None = None,
        commune: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> Page:
        """Dwellings or collection points whose id or address contains ``q``."""
        stmt: Select[Any] = select(model)
        if q:
            stmt = stmt.where(
                or_(model.id.icontains(q, autoescape=True),
                    model.address.icontains(q, autoescape=True))
            )  # fmt: skip
        if commune:
            stmt = stmt.where(func.lower(model.commune) == commune.lower())
        with self._registry.reading() as session:
            places, total = _page(session, stmt, model.id, limit, offset)
            return [place_view(p) for p in places], total

    def household(self, household_id: str) -> dict[str, Any]:
        """The household, where it lived when, its badges and its change history."""
        with self._registry.reading() as session:
            view = household_view(get_household(session, household_id))
            stmt = select(Occupancy).where(Occupancy.household_id == household_id)
            view["occupancies"] = [
                occupancy_view(o) for o in session.scalars(stmt.order_by(Occupancy.start))
            ]
            view["dwelling_id"] = self._dwellings_now(session, [household_id]).get(household_id)
            badges = select(Badge).where(Badge.household_id == household_id)
            view["badges"] = [badge_view(b) for b in session.scalars(badges.order_by(Badge.id))]
            view["history"] = audit.entries(session, HISTORY, target(Household, household_id))
            return view

    def households(
        self,
        *,
        q: str | None = None,
        kind: str | None = None,
        dwelling_id: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> Page:
        """Households whose id or name contains ``q`` (or that ever lived in
        ``dwelling_id``), each with the dwelling it occupies today."""
        stmt: Select[Any] = select(Household)
        if q:
            stmt = stmt.where(
                or_(Household.id.icontains(q, autoescape=True),
                    Household.name.icontains(q, autoescape=True))
            )  # fmt: skip
        if kind:
            stmt = stmt.where(Household.kind == kind)
        if dwelling_id:
            lived = select(Occupancy.household_id).where(Occupancy.dwelling_id == dwelling_id)
            stmt = stmt.where(Household.id.in_(lived))
        with self._registry.reading() as session:
            households, total = _page(session, stmt, Household.id, limit, offset)
            now = self._dwellings_now(session, [h.id for h in households])
            return [{**household_view(h), "dwelling_id": now.get(h.id)} for h in households], total

    def _dwellings_now(self, session: Session, household_ids: list[str]) -> dict[str, str]:
        today = self._registry.now().date()
        stmt = select(Occupancy.household_id, Occupancy.dwelling_id).where(
            Occupancy.household_id.in_(household_ids), occupied_on(today)
        )
        return {row.household_id: row.dwelling_id for row in session.execute(stmt)}

    def badge(self, badge_id: str) -> dict[str, Any]:
        with self._registry.reading() as session:
            view = badge_view(get_badge(session, badge_id))
            view["history"] = audit.entries(session, HISTORY, target(Badge, badge_id))
            return view

    def badges(
        self,
        *,
        household_id: str | None = None,
        valid_on: date | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> Page:
        """Badges of a household and/or valid on a day."""
        stmt: Select[Any] = select(Badge)
        if household_id:
            stmt = stmt.where(Badge.household_id == household_id)
        if valid_on is not None:
            valid = (Badge.valid_from <= valid_on) & (
                Badge.valid_to.is_(None) | (Badge.valid_to > valid_on)
            )
            stmt = stmt.where(valid)
        with self._registry.reading() as session:
            badges, total = _page(session, stmt, Badge.id, limit, offset)
            return [badge_view(b) for b in badges], total
