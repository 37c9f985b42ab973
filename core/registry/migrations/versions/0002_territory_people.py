"""Territory, commissioning and people: collection points, badges, swaps, staff, audit.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    _create_territory()
    _extend_devices()
    _create_people()


def _create_territory() -> None:
    with op.batch_alter_table("household") as batch:
        batch.add_column(sa.Column("size", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("kind", sa.String(16), server_default="primary", nullable=False))
        batch.create_check_constraint("kind", "kind IN ('primary', 'secondary', 'professional')")
    op.create_table(
        "collection_point",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("address", sa.String(255), nullable=False),
        sa.Column("commune", sa.String(128), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_collection_point"),
    )
    op.create_table(
        "badge",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("household_id", sa.String(64), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("valid_to", sa.Date(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_badge"),
        sa.ForeignKeyConstraint(
            ["household_id"], ["household.id"], name="fk_badge_household_id_household"
        ),
    )
    op.create_index("ix_badge_household_id", "badge", ["household_id"])


def _extend_devices() -> None:
    with op.batch_alter_table("device") as batch:
        batch.add_column(sa.Column("volume_l", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("report_interval_s", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("last_seen_at", _TS, nullable=True))
        batch.add_column(sa.Column("credential_hash", sa.String(255), nullable=True))
        batch.add_column(sa.Column("credentials_issued_at", _TS, nullable=True))
    with op.batch_alter_table("binding") as batch:
        batch.add_column(sa.Column("collection_point_id", sa.String(64), nullable=True))
        batch.create_foreign_key(
            "fk_binding_collection_point_id_collection_point",
            "collection_point",
            ["collection_point_id"],
            ["id"],
        )
    op.create_table(
        "device_swap",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("old_device_id", sa.String(64), nullable=False),
        sa.Column("new_device_id", sa.String(64), nullable=False),
        sa.Column("at", _TS, nullable=False),
        sa.Column("old_final_index_l", sa.Integer(), nullable=True),
        sa.Column("new_initial_index_l", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_device_swap"),
        sa.ForeignKeyConstraint(
            ["old_device_id"], ["device.device_id"], name="fk_device_swap_old_device_id_device"
        ),
        sa.ForeignKeyConstraint(
            ["new_device_id"], ["device.device_id"], name="fk_device_swap_new_device_id_device"
        ),
    )
    op.create_index("ix_device_swap_old_device_id", "device_swap", ["old_device_id"])
    op.create_index("ix_device_swap_new_device_id", "device_swap", ["new_device_id"])


def _create_people() -> None:
    op.create_table(
        "staff_user",
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("roles", sa.String(128), nullable=False),
        sa.Column("disabled", sa.Boolean(), server_default="0", nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("username", name="pk_staff_user"),
    )
    for table in ("api_token", "staff_session"):
        _create_secret_table(table)
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", _TS, nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(128), nullable=False),
        sa.Column("details", sa.Text(), server_default="{}", nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])


def _create_secret_table(table: str) -> None:
    """api_token and staff_session: a hashed secret owned by a staff user."""
    extra = (
        [
            sa.Column("name", sa.String(128), nullable=False),
            sa.Column("expires_at", _TS, nullable=True),
            sa.Column("revoked_at", _TS, nullable=True),
        ]
        if table == "api_token"
        else [sa.Column("expires_at", _TS, nullable=False)]
    )
    op.create_table(
        table,
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        *extra,
        sa.PrimaryKeyConstraint("token_hash", name=f"pk_{table}"),
        sa.ForeignKeyConstraint(
            ["username"], ["staff_user.username"], name=f"fk_{table}_username_staff_user"
        ),
    )
    op.create_index(f"ix_{table}_username", table, ["username"])


def downgrade() -> None:
    for index, table in (("ix_audit_log_at", "audit_log"),
                         ("ix_staff_session_username", "staff_session"),
                         ("ix_api_token_username", "api_token")):  # fmt: skip
        op.drop_index(index, table_name=table)
        op.drop_table(table)
    op.drop_table("staff_user")
    op.drop_index("ix_device_swap_new_device_id", table_name="device_swap")
    op.drop_index("ix_device_swap_old_device_id", table_name="device_swap")
    op.drop_table("device_swap")
    with op.batch_alter_table("binding") as batch:
        batch.drop_constraint("fk_binding_collection_point_id_collection_point", type_="foreignkey")
        batch.drop_column("collection_point_id")
    with op.batch_alter_table("device") as batch:
        for column in ("credentials_issued_at", "credential_hash", "last_seen_at",
                       "report_interval_s", "volume_l"):  # fmt: skip
            batch.drop_column(column)
    op.drop_index("ix_badge_household_id", table_name="badge")
    op.drop_table("badge")
    op.drop_table("collection_point")
    with op.batch_alter_table("household") as batch:
        batch.drop_constraint("ck_household_kind", type_="check")
        batch.drop_column("kind")
        batch.drop_column("size")
