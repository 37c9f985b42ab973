"""Initial registry: dwellings, households, occupancy, devices and bindings.

Hand-written so the schema is reviewed, not inferred. Constraint names follow
``models.NAMING_CONVENTION`` so later batch migrations on SQLite can address them.

Revision ID: 0001
Revises:
Create Date: 2025-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    _create_places()
    _create_devices()


def _create_places() -> None:
    op.create_table(
        "dwelling",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("address", sa.String(255), nullable=False),
        sa.Column("commune", sa.String(128), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_dwelling"),
    )
    op.create_table(
        "household",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(255), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_household"),
    )
    op.create_table(
        "occupancy",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("household_id", sa.String(64), nullable=False),
        sa.Column("dwelling_id", sa.String(64), nullable=False),
        sa.Column("start", sa.Date(), nullable=False),
        sa.Column("end", sa.Date(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_occupancy"),
        sa.ForeignKeyConstraint(
            ["household_id"], ["household.id"], name="fk_occupancy_household_id_household"
        ),
        sa.ForeignKeyConstraint(
            ["dwelling_id"], ["dwelling.id"], name="fk_occupancy_dwelling_id_dwelling"
        ),
    )
    op.create_index("ix_occupancy_household_id", "occupancy", ["household_id"])
    op.create_index("ix_occupancy_dwelling_id", "occupancy", ["dwelling_id"])


def _create_devices() -> None:
    op.create_table(
        "device",
        sa.Column("device_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("model", sa.String(128), nullable=True),
        sa.Column("serial", sa.String(128), nullable=True),
        sa.Column("status", sa.String(16), server_default="pending", nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("retired_at", _TS, nullable=True),
        sa.PrimaryKeyConstraint("device_id", name="pk_device"),
        sa.CheckConstraint(
            "kind IN ('meter', 'bin', 'container', 'truck')", name=op.f("ck_device_kind")
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'active', 'retired')", name=op.f("ck_device_status")
        ),
    )
    op.create_table(
        "binding",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("device_id", sa.String(64), nullable=False),
        sa.Column("dwelling_id", sa.String(64), nullable=True),
        sa.Column("household_id", sa.String(64), nullable=True),
        sa.Column("valid_from", _TS, nullable=False),
        sa.Column("valid_to", _TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_binding"),
        sa.ForeignKeyConstraint(
            ["device_id"], ["device.device_id"], name="fk_binding_device_id_device"
        ),
        sa.ForeignKeyConstraint(
            ["dwelling_id"], ["dwelling.id"], name="fk_binding_dwelling_id_dwelling"
        ),
        sa.ForeignKeyConstraint(
            ["household_id"], ["household.id"], name="fk_binding_household_id_household"
        ),
    )
    op.create_index("ix_binding_device_id", "binding", ["device_id"])


def downgrade() -> None:
    op.drop_index("ix_binding_device_id", table_name="binding")
    op.drop_table("binding")
    op.drop_table("device")
    op.drop_index("ix_occupancy_dwelling_id", table_name="occupancy")
    op.drop_index("ix_occupancy_household_id", table_name="occupancy")
    op.drop_table("occupancy")
    op.drop_table("household")
    op.drop_table("dwelling")
