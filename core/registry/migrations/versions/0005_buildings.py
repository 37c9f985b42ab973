"""Collective housing: buildings with a manager and a split key, dwellings in them.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-08

A building's shared bins are bound, like any bin, to a dwelling: its common parts,
a dwelling with ``collective`` true that nobody occupies. Billing sends those bins'
fixed parts and lifts to the building's manager and splits the bill between the
building's other dwellings by persons or by shares (docs/billing.md, "Collective
housing"; docs/schema.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "building",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("manager_name", sa.String(255), nullable=True),
        sa.Column("manager_address", sa.Text(), nullable=True),
        sa.Column("split_key", sa.String(16), server_default="none", nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_building"),
        sa.CheckConstraint(
            "split_key IN ('none', 'persons', 'shares')", name=op.f("ck_building_split_key")
        ),
    )
    with op.batch_alter_table("dwelling") as batch:
        batch.add_column(sa.Column("building_id", sa.String(64), nullable=True))
        batch.add_column(sa.Column("shares", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("collective", sa.Boolean(), server_default="0", nullable=False))
        batch.create_foreign_key(
            "fk_dwelling_building_id_building", "building", ["building_id"], ["id"]
        )
        batch.create_index("ix_dwelling_building_id", ["building_id"])


def downgrade() -> None:
    with op.batch_alter_table("dwelling") as batch:
        batch.drop_index("ix_dwelling_building_id")
        batch.drop_constraint("fk_dwelling_building_id_building", type_="foreignkey")
        batch.drop_column("collective")
        batch.drop_column("shares")
        batch.drop_column("building_id")
    op.drop_table("building")
