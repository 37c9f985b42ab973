"""The audit log: who changed what, when. Written in the transaction of the change itself."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.registry.models import AuditEntry

# Keys whose values never enter the audit log, whatever a caller passes.
_SECRET_KEYS = frozenset({"password", "secret", "token", "master_secret", "credentials"})


def record(
    session: Session,
    actor: str,
    action: str,
    target: str,
    at: datetime,
    details: Mapping[str, object] | None = None,
) -> None:
    """Add one audit entry to the open transaction; secrets are dropped, not masked."""
    clean = {k: v for k, v in (details or {}).items() if k not in _SECRET_KEYS}
    session.add(
        AuditEntry(
            at=at,
            actor=actor,
            action=action,
            target=target,
            details=json.dumps(clean, sort_keys=True, default=str),
        )
    )


def entries(
    session: Session, limit: int = 200, target: str | None = None
) -> list[dict[str, object]]:
    """Newest first."""
    stmt = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if target is not None:
        stmt = stmt.where(AuditEntry.target == target)
    return [
        {
            "at": e.at.isoformat(),
            "actor": e.actor,
            "action": e.action,
            "target": e.target,
            "details": json.loads(e.details),
        }
        for e in session.scalars(stmt)
    ]
