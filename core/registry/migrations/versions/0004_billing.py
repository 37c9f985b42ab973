"""Billing runs, invoices with their gapless series, corrections, carried amounts.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01

Issued invoices are immutable: on SQLite, triggers refuse any change of an
invoice's number, amounts or document and any DELETE (the ORM refuses too, see
core/registry/models.py). PostgreSQL needs the same as a trigger function or
column privileges; docs/billing.md, "Billing runs and invoices", has the SQL.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TS = sa.DateTime(timezone=True)
_MONEY = sa.String(24)  # exact decimal strings: core/registry/models.py Money

# Every column but cancelled_by (written once, by a credit note) and the row id.
_FROZEN = (
    "number, kind, budget, year, seq, run_id, debtor_ref, period, total, "
    "issued_at, issued_by, document, digest, cancels"
)
SQLITE_TRIGGERS = (
    f"""CREATE TRIGGER invoice_frozen BEFORE UPDATE OF {_FROZEN} ON invoice
    BEGIN SELECT RAISE(ABORT, 'an issued invoice cannot change; issue a credit note'); END""",
    """CREATE TRIGGER invoice_cancelled_once BEFORE UPDATE OF cancelled_by ON invoice
    WHEN OLD.cancelled_by IS NOT NULL
    BEGIN SELECT RAISE(ABORT, 'this invoice is already cancelled'); END""",
    """CREATE TRIGGER invoice_never_deleted BEFORE DELETE ON invoice
    BEGIN SELECT RAISE(ABORT, 'an issued invoice is never deleted'); END""",
)


def _fk(table: str, column: str, target: str, key: str = "id") -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{target}.{key}"], name=f"fk_{table}_{column}_{target}"
    )


def upgrade() -> None:
    _create_runs()
    _create_invoices()
    _create_adjustments()
    if op.get_bind().dialect.name == "sqlite":
        for ddl in SQLITE_TRIGGERS:
            op.execute(ddl)


def _create_runs() -> None:
    op.create_table(
        "billing_run",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("territory", sa.String(64), nullable=False),
        sa.Column("period", sa.String(16), nullable=False),
        sa.Column("tariff_name", sa.String(128), nullable=False),
        sa.Column("tariff_digest", sa.String(64), nullable=False),
        sa.Column("tariff_text", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), server_default="preview", nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("issued_at", _TS, nullable=True),
        sa.Column("issued_by", sa.String(64), nullable=True),
        sa.Column("households", sa.Integer(), nullable=False),
        sa.Column("to_issue", sa.Integer(), nullable=False),
        sa.Column("total", _MONEY, nullable=False),
        sa.Column("carried", _MONEY, nullable=False),
        sa.Column("cancelled", _MONEY, nullable=False),
        sa.Column("bills_digest", sa.String(64), nullable=False),
        sa.Column("summary", sa.Text(), server_default="{}", nullable=False),
        sa.Column("anomalies", sa.Text(), server_default="[]", nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_billing_run"),
        sa.CheckConstraint("status IN ('preview', 'issued')", name=op.f("ck_billing_run_status")),
    )
    op.create_index("ix_billing_run_territory", "billing_run", ["territory"])


def _create_invoices() -> None:
    op.create_table(
        "invoice_series",
        sa.Column("budget", sa.String(32), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("last_seq", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("budget", "year", name="pk_invoice_series"),
    )
    op.create_table(
        "invoice",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("number", sa.String(48), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("budget", sa.String(32), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("debtor_ref", sa.String(64), nullable=False),
        sa.Column("period", sa.String(16), nullable=False),
        sa.Column("total", _MONEY, nullable=False),
        sa.Column("issued_at", _TS, nullable=False),
        sa.Column("issued_by", sa.String(64), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("cancels", sa.String(48), nullable=True),
        sa.Column("cancelled_by", sa.String(48), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_invoice"),
        sa.UniqueConstraint("number", name="uq_invoice_number"),
        sa.UniqueConstraint("budget", "year", "seq", name="uq_invoice_budget_year_seq"),
        sa.CheckConstraint("kind IN ('invoice', 'credit_note')", name=op.f("ck_invoice_kind")),
        _fk("invoice", "run_id", "billing_run"),
    )
    op.create_index("ix_invoice_run_id", "invoice", ["run_id"])
    op.create_index("ix_invoice_debtor_ref", "invoice", ["debtor_ref"])


def _create_adjustments() -> None:
    op.create_table(
        "billing_correction",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("household_id", sa.String(64), nullable=False),
        sa.Column("period", sa.String(16), nullable=False),
        sa.Column("amount", _MONEY, nullable=False),
        sa.Column("operator", sa.String(64), nullable=False),
        sa.Column("reason", sa.String(255), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_billing_correction"),
        _fk("billing_correction", "household_id", "household"),
    )
    op.create_index("ix_billing_correction_household_id", "billing_correction", ["household_id"])
    op.create_table(
        "billing_carry",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("household_id", sa.String(64), nullable=False),
        sa.Column("period", sa.String(16), nullable=False),
        sa.Column("amount", _MONEY, nullable=False),
        sa.Column("from_run", sa.Integer(), nullable=False),
        sa.Column("settled_by_run", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_billing_carry"),
        _fk("billing_carry", "household_id", "household"),
        _fk("billing_carry", "from_run", "billing_run"),
        _fk("billing_carry", "settled_by_run", "billing_run"),
    )
    op.create_index("ix_billing_carry_household_id", "billing_carry", ["household_id"])


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in ("invoice_frozen", "invoice_cancelled_once", "invoice_never_deleted"):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    for table in ("billing_carry", "billing_correction", "invoice", "invoice_series"):
        op.drop_table(table)
    op.drop_table("billing_run")
