"""Lease names up to 255 characters: ingest workers' MQTT session leases.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-23

Issue 6, "killing one loses nothing": every ingest worker holds a lease named
``mqtt/<group>/<client id>`` while it runs (core/ingest/adoption.py); once it runs
out, another worker adopts the departed worker's persistent MQTT session. An MQTT
client id may be longer than the 64 characters the scheduler's lease needed.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("leases") as batch:
        batch.alter_column("name", type_=sa.String(255), existing_nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("leases") as batch:
        batch.alter_column("name", type_=sa.String(64), existing_nullable=False)
