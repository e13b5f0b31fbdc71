"""Feedback events on decisions' bundles (with the grant of a converted bundle's right) and the stored
answers of idempotent requests.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 00:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the vocabularies as of this revision: a migration must not change meaning when
# the application's constants change later.
CHANNELS = ("app", "mini_program", "push", "sms", "remote_agent", "online_rm")
FEEDBACK_EVENTS = ("impression", "click", "dismiss", "accept", "convert", "redeem")
GRANT_STATUSES = ("granted", "pending_retry", "refused")


def _in_list(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "feedback_events",
        sa.Column("feedback_id", sa.String(40), nullable=False),
        sa.Column("client", sa.String(64), nullable=False),
        sa.Column("idempotency_key", sa.String(128), nullable=False),
        sa.Column("decision_id", sa.String(64), nullable=False),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("product_id", sa.String(64), nullable=False),
        sa.Column("event", sa.String(16), nullable=False),
        _ts("at"),
        _ts("recorded_at"),
        sa.Column("value", sa.BigInteger(), nullable=True),
        _ts("cooldown_until", nullable=True),
        sa.Column("experiment_id", sa.String(64), nullable=True),
        sa.Column("experiment_arm", sa.String(64), nullable=True),
        sa.Column("right_id", sa.String(64), nullable=True),
        sa.Column("grant_key", sa.String(128), nullable=True),
        sa.Column("grant_status", sa.String(16), nullable=True),
        sa.Column("grant_id", sa.String(64), nullable=True),
        sa.Column("grant_error_code", sa.String(64), nullable=True),
        sa.Column("grant_attempts", sa.Integer(), nullable=False),
        _ts("grant_updated_at", nullable=True),
        sa.CheckConstraint(_in_list("channel", CHANNELS), name=op.f("ck_feedback_events_channel")),
        sa.CheckConstraint(_in_list("event", FEEDBACK_EVENTS), name=op.f("ck_feedback_events_event")),
        sa.CheckConstraint(
            _in_list("grant_status", GRANT_STATUSES), name=op.f("ck_feedback_events_grant_status")
        ),
        sa.CheckConstraint(
            "value IS NULL OR value >= 0", name=op.f("ck_feedback_events_value_non_negative")
        ),
        sa.CheckConstraint(
            "grant_attempts >= 0", name=op.f("ck_feedback_events_grant_attempts_non_negative")
        ),
        sa.PrimaryKeyConstraint("feedback_id", name=op.f("pk_feedback_events")),
        sa.UniqueConstraint("client", "idempotency_key", name=op.f("uq_feedback_events_client")),
    )
    op.create_index("ix_feedback_events_decision_id", "feedback_events", ["decision_id"])
    op.create_index("ix_feedback_events_customer_id_at", "feedback_events", ["customer_id", "at"])
    op.create_index("ix_feedback_events_grant_status", "feedback_events", ["grant_status"])

    op.create_table(
        "idempotency_keys",
        sa.Column("client", sa.String(64), nullable=False),
        sa.Column("idempotency_key", sa.String(128), nullable=False),
        sa.Column("operation", sa.String(32), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("response_body", sa.LargeBinary(), nullable=False),
        _ts("created_at"),
        _ts("updated_at"),
        sa.PrimaryKeyConstraint("client", "idempotency_key", name=op.f("pk_idempotency_keys")),
    )
    op.create_index("ix_idempotency_keys_created_at", "idempotency_keys", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_idempotency_keys_created_at", table_name="idempotency_keys")
    op.drop_table("idempotency_keys")
    op.drop_index("ix_feedback_events_grant_status", table_name="feedback_events")
    op.drop_index("ix_feedback_events_customer_id_at", table_name="feedback_events")
    op.drop_index("ix_feedback_events_decision_id", table_name="feedback_events")
    op.drop_table("feedback_events")
