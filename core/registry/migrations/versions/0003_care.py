"""Care alerts: subscriptions with consent, ordered contacts, away periods, alerts, SMS.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TS = sa.DateTime(timezone=True)


def _fk(table: str, column: str, target: str, key: str = "id") -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{target}.{key}"], name=f"fk_{table}_{column}_{target}"
    )


def upgrade() -> None:
    _create_subscriptions()
    _create_alerts()


def _create_subscriptions() -> None:
    op.create_table(
        "care_subscription",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("household_id", sa.String(64), nullable=False),
        sa.Column("person_label", sa.String(128), nullable=False),
        sa.Column("language", sa.String(8), server_default="fr", nullable=False),
        sa.Column("consent_at", _TS, nullable=False),
        sa.Column("consent_by", sa.String(64), nullable=False),
        sa.Column("consent_note", sa.String(255), nullable=True),
        sa.Column("care_service_phone", sa.String(20), nullable=True),
        sa.Column("sleep_from", sa.String(5), nullable=True),
        sa.Column("sleep_to", sa.String(5), nullable=True),
        sa.Column("status", sa.String(16), server_default="active", nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("ended_at", _TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_care_subscription"),
        sa.CheckConstraint(
            "status IN ('active', 'paused', 'ended')", name=op.f("ck_care_subscription_status")
        ),
        _fk("care_subscription", "household_id", "household"),
    )
    op.create_index("ix_care_subscription_household_id", "care_subscription", ["household_id"])
    op.create_table(
        "care_contact",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("subscription_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("phone", sa.String(20), nullable=False),
        sa.Column("language", sa.String(8), server_default="fr", nullable=False),
        sa.Column("opted_out_at", _TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_care_contact"),
        _fk("care_contact", "subscription_id", "care_subscription"),
    )
    op.create_index("ix_care_contact_subscription_id", "care_contact", ["subscription_id"])
    op.create_index("ix_care_contact_phone", "care_contact", ["phone"])
    op.create_table(
        "away_period",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("subscription_id", sa.Integer(), nullable=False),
        sa.Column("start", _TS, nullable=False),
        sa.Column("end", _TS, nullable=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_away_period"),
        _fk("away_period", "subscription_id", "care_subscription"),
    )
    op.create_index("ix_away_period_subscription_id", "away_period", ["subscription_id"])


def _create_alerts() -> None:
    op.create_table(
        "alert",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(24), nullable=False),
        sa.Column("audience", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), server_default="open", nullable=False),
        sa.Column("dedupe_key", sa.String(128), nullable=False),
        sa.Column("household_id", sa.String(64), nullable=True),
        sa.Column("subscription_id", sa.Integer(), nullable=True),
        sa.Column("device_id", sa.String(64), nullable=True),
        sa.Column("explanation", sa.Text(), nullable=False),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("opened_at", _TS, nullable=False),
        sa.Column("notified_at", _TS, nullable=True),
        sa.Column("acknowledged_at", _TS, nullable=True),
        sa.Column("acknowledged_by", sa.String(64), nullable=True),
        sa.Column("resolved_at", _TS, nullable=True),
        sa.Column("resolution", sa.String(32), nullable=True),
        sa.Column("escalation_level", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_escalation_at", _TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_alert"),
        sa.CheckConstraint(
            "kind IN ('inactivity', 'leak', 'continuous_flow', 'device_silent', "
            "'meter_alarm', 'use_while_away')",
            name=op.f("ck_alert_kind"),
        ),
        sa.CheckConstraint(
            "audience IN ('family', 'household', 'technician')", name=op.f("ck_alert_audience")
        ),
        sa.CheckConstraint(
            "status IN ('open', 'notified', 'acknowledged', 'resolved')",
            name=op.f("ck_alert_status"),
        ),
        _fk("alert", "household_id", "household"),
        _fk("alert", "subscription_id", "care_subscription"),
    )
    op.create_index("ix_alert_dedupe_key", "alert", ["dedupe_key"])
    op.create_index("ix_alert_household_id", "alert", ["household_id"])
    op.create_index("ix_alert_opened_at", "alert", ["opened_at"])
    op.create_table(
        "alert_event",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("alert_id", sa.Integer(), nullable=False),
        sa.Column("at", _TS, nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("details", sa.Text(), server_default="{}", nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_alert_event"),
        _fk("alert_event", "alert_id", "alert"),
    )
    op.create_index("ix_alert_event_alert_id", "alert_event", ["alert_id"])
    op.create_table(
        "sms_message",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("direction", sa.String(4), nullable=False),
        sa.Column("phone", sa.String(20), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("provider_sid", sa.String(64), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("alert_id", sa.Integer(), nullable=True),
        sa.Column("contact_id", sa.Integer(), nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_sms_message"),
        _fk("sms_message", "alert_id", "alert"),
        _fk("sms_message", "contact_id", "care_contact"),
    )
    for column in ("phone", "provider_sid", "alert_id"):
        op.create_index(f"ix_sms_message_{column}", "sms_message", [column])


def downgrade() -> None:
    for table in (
        "sms_message",
        "alert_event",
        "alert",
        "away_period",
        "care_contact",
        "care_subscription",
    ):
        op.drop_table(table)
