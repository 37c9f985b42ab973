"""Rollup backlog: the Paris days whose downsampled water use must be recomputed.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-23

Issue 6, long-term consumption: the `water-rollup` job recomputes the days holding
the last 6 hours. Readings of older days (a meter sending its buffered readings
after an outage, up to `horizon_days` back; a spool replayed after an InfluxDB
outage) were stored in `raw` but never rolled up. Ingest workers now mark such days
here and the job recomputes them (core/rollup_job.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "rollup_backlog",
        sa.Column("day", _TS, nullable=False),
        sa.Column("marked_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("day", name="pk_rollup_backlog"),
    )


def downgrade() -> None:
    op.drop_table("rollup_backlog")
