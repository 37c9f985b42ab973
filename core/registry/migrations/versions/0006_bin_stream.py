"""Waste streams: each bin (or container) belongs to one, residual by default.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-09

Issue 5: "tiered prices and second-home, professional and yellow-bin grids exist
too". A yellow bin (recyclables) or a biowaste bin is a bin like any other; the
tariff may price its stream with its own grid (``[streams.recyclables]``) or leave
it unbilled (docs/billing.md, "Tariff files"; docs/schema.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("device") as batch:
        batch.add_column(
            sa.Column("stream", sa.String(16), server_default="residual", nullable=False)
        )
        batch.create_check_constraint(
            op.f("ck_device_stream"), "stream IN ('residual', 'recyclables', 'biowaste')"
        )


def downgrade() -> None:
    with op.batch_alter_table("device") as batch:
        batch.drop_constraint("ck_device_stream", type_="check")
        batch.drop_column("stream")
