"""Leases: one row per named lease, so that one of several schedulers leads.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-12

Issue 6, "the scheduler runs as a single leader": the registry-wide jobs (care scoring,
escalation and its SMS, retraining, device states, the water roll-up) must run in one
process per deployment. ``core/leader.py`` takes and renews the row in one statement
(INSERT ... ON CONFLICT DO UPDATE ... WHERE expired or ours), which both SQLite and
PostgreSQL make atomic, hence a primary key on the name and nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "leases",
        sa.Column("name", sa.String(64), nullable=False),
        # <hostname>-<pid>-<random>: a restarted process is a new holder.
        sa.Column("holder", sa.String(255), nullable=False),
        sa.Column("acquired_at", _TS, nullable=False),
        sa.Column("expires_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_leases"),
    )


def downgrade() -> None:
    op.drop_table("leases")
