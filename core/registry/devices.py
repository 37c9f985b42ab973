"""Commissioning in the registry: register, place, swap and retire devices, with audit.

The state a technician sees (`pending`, `active`, `silent`, `retired`) is derived
here from the stored status and the last contact time; only the first three
transitions are stored, `silent` is computed so it clears itself when data resumes.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from core.registry import audit
from core.registry.errors import (
    DuplicateDevice,
    InvalidCommissioning,
    UnknownDevice,
    UnknownPlace,
)
from core.registry.models import (
    BIN_STREAMS,
    Binding,
    CollectionPoint,
    Device,
    DeviceSwap,
    Dwelling,
)
from core.registry.service import Registry, check_device, retire_in

# Default expected reporting period per kind, when the technician sets none. Meters
# report at least hourly (PROTOCOL.md config example: 900 s); bins and containers
# send a daily status at least; trucks only report on rounds, so they never go silent.
DEFAULT_REPORT_INTERVAL_S: Final[dict[str, int | None]] = {
    "meter": 3600,
    "bin": 86400,
    "container": 86400,
    "truck": None,
}
# Missing one report is normal radio life; three in a row is worth a visit.
SILENT_AFTER_PERIODS: Final = 3
MIN_REPORT_INTERVAL_S: Final = 60
MAX_LIST: Final = 1000


def derive_status(device: Device, now: datetime) -> str:
    """pending | active | silent | retired (pure)."""
    if device.status != "active" or device.report_interval_s is None:
        return device.status
    if device.last_seen_at is None:
        return device.status
    late = now - device.last_seen_at > timedelta(
        seconds=SILENT_AFTER_PERIODS * device.report_interval_s
    )
    return "silent" if late else "active"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _view(device: Device, binding: Binding | None, now: datetime) -> dict[str, Any]:
    return {
        "device_id": device.device_id,
        "kind": device.kind,
        "model": device.model,
        "serial": device.serial,
        "status": derive_status(device, now),
        "dwelling_id": binding.dwelling_id if binding else None,
        "collection_point_id": binding.collection_point_id if binding else None,
        "volume_l": device.volume_l,
        "stream": device.stream,
        "report_interval_s": device.report_interval_s,
        "last_seen_at": _iso(device.last_seen_at),
        "created_at": _iso(device.created_at),
        "credentials_issued_at": _iso(device.credentials_issued_at),
    }


def _open_binding(session: Session, device_id: str) -> Binding | None:
    stmt = select(Binding).where(Binding.device_id == device_id, Binding.valid_to.is_(None))
    return session.scalars(stmt.order_by(Binding.id.desc()).limit(1)).first()


def _check_place(
    session: Session, kind: str, dwelling_id: str | None, collection_point_id: str | None
) -> None:
    """Meters and bins are installed at a dwelling, containers at a collection point,
    trucks nowhere (DESIGN.md, "Domain model")."""
    wanted = {"meter": "dwelling", "bin": "dwelling", "container": "collection_point"}.get(kind)
    given = [
        n for n, v in (("dwelling", dwelling_id), ("collection_point", collection_point_id)) if v
    ]
    if wanted is None and given:
        raise InvalidCommissioning("a truck is not bound to a place")
    if wanted is not None and given != [wanted]:
        raise InvalidCommissioning(
            f"a {kind} is installed at a {wanted.replace('_', ' ')}: give {wanted}_id"
        )
    if dwelling_id and session.get(Dwelling, dwelling_id) is None:
        raise UnknownPlace(f"dwelling {dwelling_id!r} is not registered")
    if collection_point_id and session.get(CollectionPoint, collection_point_id) is None:
        raise UnknownPlace(f"collection point {collection_point_id!r} is not registered")


def _check_values(kind: str, volume_l: int | None, report_interval_s: int | None) -> None:
    if volume_l is not None and (kind not in ("bin", "container") or not 10 <= volume_l <= 10_000):
        raise InvalidCommissioning("volume_l: bins and containers only, 10 to 10000 litres")
    if report_interval_s is not None and report_interval_s < MIN_REPORT_INTERVAL_S:
        raise InvalidCommissioning(f"report_interval_s: at least {MIN_REPORT_INTERVAL_S}")


def _check_stream(kind: str, stream: str | None) -> None:
    """A waste stream belongs to bins and containers (billing prices each apart)."""
    if stream is None:
        return
    if kind not in ("bin", "container"):
        raise InvalidCommissioning("stream: bins and containers only")
    if stream not in BIN_STREAMS:
        raise InvalidCommissioning(f"stream: one of {', '.join(BIN_STREAMS)}")


class Devices:
    """Sub-service of the registry for the commissioning flow; every change audited."""

    def __init__(self, registry: Registry) -> None:
        self._registry = registry

    def commission(
        self,
        device_id: str,
        kind: str,
        *,
        actor: str,
        model: str | None = None,
        serial: str | None = None,
        dwelling_id: str | None = None,
        collection_point_id: str | None = None,
        volume_l: int | None = None,
        report_interval_s: int | None = None,
        stream: str | None = None,
    ) -> dict[str, Any]:
        """Register a device as `pending`, bound to its place from now."""
        check_device(device_id, kind)
        _check_values(kind, volume_l, report_interval_s)
        _check_stream(kind, stream)
        now = self._registry.now()
        with self._registry.transaction() as session:
            if session.get(Device, device_id) is not None:
                raise DuplicateDevice(f"device {device_id!r} already registered")
            _check_place(session, kind, dwelling_id, collection_point_id)
            device = Device(
                device_id=device_id,
                kind=kind,
                model=model,
                serial=serial,
                created_at=now,
                status="pending",
                volume_l=volume_l,
                stream=stream or "residual",
                report_interval_s=report_interval_s or DEFAULT_REPORT_INTERVAL_S[kind],
            )
            session.add(device)
            session.flush()  # no ORM relationships: the device row must exist first
            binding = Binding(
                device_id=device_id,
                dwelling_id=dwelling_id,
                collection_point_id=collection_point_id,
                valid_from=now,
            )
            if dwelling_id or collection_point_id:
                session.add(binding)
            audit.record(
                session,
                actor,
                "device.commission",
                device_id,
                now,
                {
                    "kind": kind,
                    "model": model,
                    "serial": serial,
                    "dwelling_id": dwelling_id,
                    "collection_point_id": collection_point_id,
                    "stream": device.stream,
                },
            )
            session.flush()
            return _view(device, binding if (dwelling_id or collection_point_id) else None, now)

    def record_credentials(self, device_id: str, credential_hash: str, *, actor: str) -> None:
        """Remember that new credentials were issued (their hash only) and who issued them."""
        now = self._registry.now()
        with self._registry.transaction() as session:
            device = self._live(session, device_id)
            device.credential_hash = credential_hash
            device.credentials_issued_at = now
            audit.record(session, actor, "device.credentials", device_id, now)

    def update_settings(
        self, device_id: str, report_interval_s: int, *, actor: str
    ) -> dict[str, Any]:
        """Change the expected reporting period (pushed to the device's config topic)."""
        now = self._registry.now()
        with self._registry.transaction() as session:
            device = self._live(session, device_id)
            _check_values(device.kind, None, report_interval_s)
            before = device.report_interval_s
            device.report_interval_s = report_interval_s
            audit.record(
                session,
                actor,
                "device.settings",
                device_id,
                now,
                {"report_interval_s": [before, report_interval_s]},
            )
            return _view(device, _open_binding(session, device_id), now)

    def swap(
        self,
        old_id: str,
        new_id: str,
        *,
        actor: str,
        model: str | None = None,
        serial: str | None = None,
        old_final_index_l: int | None = None,
        new_initial_index_l: int | None = None,
        volume_l: int | None = None,
    ) -> dict[str, Any]:
        """Replace a device at its place: the old one retires, the new one is pending.

        Lifts and readings stay with the dwelling (bindings are per place and time);
        for meters the two indexes keep consumption continuous across the swap.
        """
        now = self._registry.now()
        with self._registry.transaction() as session:
            old = self._live(session, old_id)
            _check_swap(old.kind, old_final_index_l, new_initial_index_l)
            place = _open_binding(session, old_id)
            check_device(new_id, old.kind)
            if session.get(Device, new_id) is not None:
                raise DuplicateDevice(f"device {new_id!r} already registered")
            new = Device(
                device_id=new_id,
                kind=old.kind,
                model=model,
                serial=serial,
                created_at=now,
                status="pending",
                volume_l=volume_l if volume_l is not None else old.volume_l,
                stream=old.stream,  # a swap replaces a bin by one of the same stream
                report_interval_s=old.report_interval_s,
            )
            session.add(new)
            session.flush()  # the new device row before its binding and swap rows
            retire_in(session, old_id, now)
            binding = None
            if place is not None:
                binding = Binding(
                    device_id=new_id,
                    dwelling_id=place.dwelling_id,
                    household_id=place.household_id,
                    collection_point_id=place.collection_point_id,
                    valid_from=now,
                )
                session.add(binding)
            session.add(
                DeviceSwap(
                    old_device_id=old_id,
                    new_device_id=new_id,
                    at=now,
                    old_final_index_l=old_final_index_l,
                    new_initial_index_l=new_initial_index_l,
                )
            )
            audit.record(
                session,
                actor,
                "device.swap",
                old_id,
                now,
                {
                    "new_device_id": new_id,
                    "old_final_index_l": old_final_index_l,
                    "new_initial_index_l": new_initial_index_l,
                },
            )
            session.flush()
            return _view(new, binding, now)

    def retire(self, device_id: str, *, actor: str) -> dict[str, Any]:
        now = self._registry.now()
        with self._registry.transaction() as session:
            if retire_in(session, device_id, now):
                audit.record(session, actor, "device.retire", device_id, now)
            device = session.get(Device, device_id)
            assert device is not None  # retire_in raised otherwise
            return _view(device, None, now)

    def get(self, device_id: str) -> dict[str, Any]:
        now = self._registry.now()
        with self._registry.reading() as session:
            device = session.get(Device, device_id)
            if device is None:
                raise UnknownDevice(f"device {device_id!r} is not registered")
            view = _view(device, _open_binding(session, device_id), now)
            view["bindings"] = _bindings(session, device_id)
            view["swaps"] = _swaps(session, device_id)
            view["history"] = audit.entries(session, limit=50, target=device_id)
            return view

    def list(
        self,
        *,
        status: str | None = None,
        kind: str | None = None,
        q: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> tuple[list[dict[str, Any]], int]:
        """Devices matching the filters, and how many match in all (for paging)."""
        now = self._registry.now()
        stmt = select(Device, Binding).outerjoin(
            Binding, (Binding.device_id == Device.device_id) & Binding.valid_to.is_(None)
        )
        if kind:
            stmt = stmt.where(Device.kind == kind)
        if q:
            like = f"%{q}%"
            stmt = stmt.where(
                or_(
                    Device.device_id.like(like),
                    Device.serial.like(like),
                    Binding.dwelling_id.like(like),
                )
            )
        if status in ("pending", "retired"):
            stmt = stmt.where(Device.status == status)
        elif status in ("active", "silent"):
            stmt = stmt.where(Device.status == "active")
        with self._registry.reading() as session:
            rows = [_view(d, b, now) for d, b in session.execute(stmt.order_by(Device.device_id))]
        if status in ("active", "silent"):
            rows = [r for r in rows if r["status"] == status]
        limit = max(1, min(limit, MAX_LIST))
        return rows[offset : offset + limit], len(rows)

    def count_by_status(self) -> dict[str, int]:
        now = self._registry.now()
        with self._registry.reading() as session:
            counts: dict[str, int] = {}
            for device in session.scalars(select(Device)):
                key = derive_status(device, now)
                counts[key] = counts.get(key, 0) + 1
            counts["total"] = session.scalar(select(func.count()).select_from(Device)) or 0
            return counts

    @staticmethod
    def _live(session: Session, device_id: str) -> Device:
        device = session.get(Device, device_id)
        if device is None:
            raise UnknownDevice(f"device {device_id!r} is not registered")
        if device.status == "retired":
            raise InvalidCommissioning(f"device {device_id!r} is retired")
        return device


def _check_swap(kind: str, old_final: int | None, new_initial: int | None) -> None:
    if kind != "meter":
        if old_final is not None or new_initial is not None:
            raise InvalidCommissioning("indexes are given for meter swaps only")
        return
    if old_final is None or new_initial is None:
        raise InvalidCommissioning("a meter swap needs old_final_index_l and new_initial_index_l")
    if old_final < 0 or new_initial < 0:
        raise InvalidCommissioning("indexes are litres, never negative")


def _bindings(session: Session, device_id: str) -> list[dict[str, Any]]:
    stmt = select(Binding).where(Binding.device_id == device_id).order_by(Binding.valid_from)
    return [
        {
            "dwelling_id": b.dwelling_id,
            "collection_point_id": b.collection_point_id,
            "valid_from": _iso(b.valid_from),
            "valid_to": _iso(b.valid_to),
        }
        for b in session.scalars(stmt)
    ]


def _swaps(session: Session, device_id: str) -> list[dict[str, Any]]:
    stmt = select(DeviceSwap).where(
        (DeviceSwap.old_device_id == device_id) | (DeviceSwap.new_device_id == device_id)
    )
    return [
        {
            "old_device_id": s.old_device_id,
            "new_device_id": s.new_device_id,
            "at": _iso(s.at),
            "old_final_index_l": s.old_final_index_l,
            "new_initial_index_l": s.new_initial_index_l,
        }
        for s in session.scalars(stmt.order_by(DeviceSwap.at))
    ]
