"""Profile schema: customers, identifiers, holdings, risk, consent, moments, contacts, feature outbox.

Revision ID: 0001_profile
Revises:
Create Date: 2025-01-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from qianmian_core.db import UTCDateTime

revision: str = "0001_profile"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _customer_fk() -> sa.ForeignKey:
    return sa.ForeignKey("customers.customer_id", ondelete="CASCADE")


def upgrade() -> None:
    op.create_table(
        "customers",
        sa.Column("customer_id", sa.String(10), primary_key=True),
        sa.Column("age", sa.SmallInteger(), nullable=False),
        sa.Column("gender", sa.String(1), nullable=False),
        sa.Column("birth_month", sa.SmallInteger(), nullable=False),
        sa.Column("birth_day", sa.SmallInteger(), nullable=False),
        sa.Column("city_tier", sa.SmallInteger(), nullable=False),
        sa.Column("region", sa.String(8), nullable=False),
        sa.Column("segments", sa.JSON(), nullable=False),
        sa.Column("aum", sa.Float(), nullable=False),
        sa.Column("deposits", sa.Float(), nullable=False),
        sa.Column("loans", sa.Float(), nullable=False),
        sa.Column("aum_90d_ago", sa.Float(), nullable=True),
        sa.Column("lifecycle_stage", sa.String(16), nullable=False),
        sa.Column("tenure_months", sa.Integer(), nullable=False),
        sa.Column("customer_since", UTCDateTime(), nullable=False),
        sa.Column("last_active_at", UTCDateTime(), nullable=True),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("clv", sa.Float(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "customer_pii",
        sa.Column("customer_id", sa.String(10), _customer_fk(), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("mobile", sa.String(20), nullable=False),
        sa.Column("id_number", sa.String(18), nullable=False),
        sa.Column("card_number", sa.String(19), nullable=False),
    )
    op.create_table(
        "holdings",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("customer_id", sa.String(10), _customer_fk(), nullable=False),
        sa.Column("product_id", sa.String(32), nullable=False),
        sa.Column("product_type", sa.String(32), nullable=False),
        sa.Column("opened_at", UTCDateTime(), nullable=False),
        sa.Column("amount", sa.Float(), nullable=False),
    )
    op.create_index("ix_holdings_customer_id", "holdings", ["customer_id"])
    op.create_table(
        "risk_assessments",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("customer_id", sa.String(10), _customer_fk(), nullable=False),
        sa.Column("level", sa.SmallInteger(), nullable=False),
        sa.Column("assessed_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
    )
    op.create_index(
        "ix_risk_assessments_customer_id_recorded_at", "risk_assessments", ["customer_id", "recorded_at"]
    )
    op.create_table(
        "consents",
        sa.Column("customer_id", sa.String(10), _customer_fk(), primary_key=True),
        sa.Column("channel", sa.String(32), primary_key=True),
        sa.Column("granted", sa.Boolean(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "consent_changes",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("customer_id", sa.String(10), _customer_fk(), nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("old_value", sa.Boolean(), nullable=True),
        sa.Column("new_value", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.String(200), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("changed_at", UTCDateTime(), nullable=False),
    )
    op.create_index(
        "ix_consent_changes_customer_id_changed_at", "consent_changes", ["customer_id", "changed_at"]
    )
    op.create_table(
        "events",
        sa.Column("event_id", sa.String(64), primary_key=True),
        sa.Column("customer_id", sa.String(10), _customer_fk(), nullable=False),
        sa.Column("event_type", sa.String(32), nullable=False),
        sa.Column("occurred_at", UTCDateTime(), nullable=False),
        sa.Column("amount", sa.Float(), nullable=True),
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.Column("body_hash", sa.String(64), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_events_customer_id_occurred_at", "events", ["customer_id", "occurred_at"])
    op.create_table(
        "contact_history",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("customer_id", sa.String(10), _customer_fk(), nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("placement", sa.String(64), nullable=False),
        sa.Column("product_id", sa.String(32), nullable=False),
        sa.Column("content_id", sa.String(64), nullable=True),
        sa.Column("decision_id", sa.String(64), nullable=True),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_contact_history_customer_id_at", "contact_history", ["customer_id", "at"])
    op.create_table(
        "feature_outbox",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("customer_id", sa.String(10), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("feature_outbox")
    op.drop_index("ix_contact_history_customer_id_at", table_name="contact_history")
    op.drop_table("contact_history")
    op.drop_index("ix_events_customer_id_occurred_at", table_name="events")
    op.drop_table("events")
    op.drop_index("ix_consent_changes_customer_id_changed_at", table_name="consent_changes")
    op.drop_table("consent_changes")
    op.drop_table("consents")
    op.drop_index("ix_risk_assessments_customer_id_recorded_at", table_name="risk_assessments")
    op.drop_table("risk_assessments")
    op.drop_index("ix_holdings_customer_id", table_name="holdings")
    op.drop_table("holdings")
    op.drop_table("customer_pii")
    op.drop_table("customers")
