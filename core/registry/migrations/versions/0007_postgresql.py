"""PostgreSQL: issued invoices are immutable at the SQL level too, as 0004 made them on SQLite.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-10

Issue 6: "PostgreSQL as the production registry, the same Alembic migrations". 0004
created SQLite triggers only; this revision adds their PL/pgSQL twin (docs/billing.md,
"Billing runs and invoices") and is a no-op on SQLite. The messages are SQLite's, and
the errors carry SQLSTATE 23000 (integrity_constraint_violation) so that both backends
surface them as ``sqlalchemy.exc.IntegrityError``. TRUNCATE skips row triggers on
PostgreSQL (SQLite has no TRUNCATE), so a statement trigger refuses it as well.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Every column but cancelled_by (written once, by a credit note) and the row id: 0004's list.
_FROZEN = (
    "number",
    "kind",
    "budget",
    "year",
    "seq",
    "run_id",
    "debtor_ref",
    "period",
    "total",
    "issued_at",
    "issued_by",
    "document",
    "digest",
    "cancels",
)


def _row(alias: str) -> str:
    return "(" + ", ".join(f"{alias}.{column}" for column in _FROZEN) + ")"


_FUNCTION = f"""
CREATE FUNCTION invoice_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP IN ('DELETE', 'TRUNCATE') THEN
    RAISE EXCEPTION 'an issued invoice is never deleted' USING ERRCODE = '23000';
  END IF;
  IF {_row("NEW")} IS DISTINCT FROM {_row("OLD")} THEN
    RAISE EXCEPTION 'an issued invoice cannot change; issue a credit note'
      USING ERRCODE = '23000';
  END IF;
  IF OLD.cancelled_by IS NOT NULL AND NEW.cancelled_by IS DISTINCT FROM OLD.cancelled_by THEN
    RAISE EXCEPTION 'this invoice is already cancelled' USING ERRCODE = '23000';
  END IF;
  RETURN NEW;
END $$
"""

POSTGRESQL_DDL = (
    _FUNCTION,
    """CREATE TRIGGER invoice_immutable BEFORE UPDATE OR DELETE ON invoice
    FOR EACH ROW EXECUTE FUNCTION invoice_immutable()""",
    """CREATE TRIGGER invoice_never_truncated BEFORE TRUNCATE ON invoice
    FOR EACH STATEMENT EXECUTE FUNCTION invoice_immutable()""",
)


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite has had its triggers since 0004
    for ddl in POSTGRESQL_DDL:
        op.execute(ddl)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER IF EXISTS invoice_never_truncated ON invoice")
    op.execute("DROP TRIGGER IF EXISTS invoice_immutable ON invoice")
    op.execute("DROP FUNCTION IF EXISTS invoice_immutable()")
