"""An index on binding.dwelling_id.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-23

Found by the care scoring bench at 100,000 monitored households (issue 6): without
it, SQLite answered "the meters bound at the dwellings of these households"
(alerts/enrolment.py, ``_meters_by_household``) by scanning every meter for every
occupancy, and the read had not finished after 30 minutes. With it, each occupancy
finds its dwelling's bindings directly.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_binding_dwelling_id", "binding", ["dwelling_id"])


def downgrade() -> None:
    op.drop_index("ix_binding_dwelling_id", table_name="binding")
