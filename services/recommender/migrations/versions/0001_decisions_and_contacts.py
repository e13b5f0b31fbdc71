"""Decision audit log, contact history, per-customer contact counters and cool-downs.

Revision ID: 0001
Revises:
Create Date: 2025-07-01 00:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the vocabularies as of this revision: a migration must not change meaning when
# the application's constants change later.
CHANNELS = ("app", "mini_program", "push", "sms", "remote_agent", "online_rm")
DECISION_MODES = ("personalised", "non_personalised", "fallback")
CONTACT_KINDS = ("decision", "impression", "click", "dismiss", "accept", "convert", "redeem")


def _in_list(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "decisions",
        sa.Column("decision_id", sa.String(64), nullable=False),
        _ts("created_at"),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("placement", sa.String(64), nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("model_version", sa.String(64), nullable=True),
        sa.Column("experiment_id", sa.String(64), nullable=True),
        sa.Column("experiment_arm", sa.String(64), nullable=True),
        sa.Column("request", sa.JSON(), nullable=False),
        sa.Column("features", sa.JSON(), nullable=False),
        sa.Column("candidates", sa.JSON(), nullable=False),
        sa.Column("response", sa.JSON(), nullable=False),
        sa.Column("schema_version", sa.Integer(), nullable=False),
        sa.CheckConstraint(_in_list("channel", CHANNELS), name=op.f("ck_decisions_channel")),
        sa.CheckConstraint(_in_list("mode", DECISION_MODES), name=op.f("ck_decisions_mode")),
        sa.CheckConstraint("schema_version >= 1", name=op.f("ck_decisions_schema_version")),
        sa.PrimaryKeyConstraint("decision_id", name=op.f("pk_decisions")),
    )
    op.create_index("ix_decisions_created_at", "decisions", ["created_at"])
    op.create_index("ix_decisions_customer_id_created_at", "decisions", ["customer_id", "created_at"])

    op.create_table(
        "contact_events",
        sa.Column(
            "event_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("product_id", sa.String(64), nullable=True),
        sa.Column("decision_id", sa.String(64), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        _ts("at"),
        sa.CheckConstraint(_in_list("channel", CHANNELS), name=op.f("ck_contact_events_channel")),
        sa.CheckConstraint(_in_list("kind", CONTACT_KINDS), name=op.f("ck_contact_events_kind")),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_contact_events")),
    )
    op.create_index("ix_contact_events_decision_id", "contact_events", ["decision_id"])
    op.create_index("ix_contact_events_customer_id_kind_at", "contact_events", ["customer_id", "kind", "at"])

    op.create_table(
        "contact_counters",
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("contacts", sa.Integer(), nullable=False),
        _ts("last_contact_at", nullable=True),
        sa.CheckConstraint("contacts >= 0", name=op.f("ck_contact_counters_contacts_non_negative")),
        sa.PrimaryKeyConstraint("customer_id", name=op.f("pk_contact_counters")),
    )

    op.create_table(
        "cooldowns",
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("product_id", sa.String(64), nullable=False),
        _ts("until"),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("decision_id", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("customer_id", "product_id", name=op.f("pk_cooldowns")),
    )


def downgrade() -> None:
    op.drop_table("cooldowns")
    op.drop_table("contact_counters")
    op.drop_index("ix_contact_events_customer_id_kind_at", table_name="contact_events")
    op.drop_index("ix_contact_events_decision_id", table_name="contact_events")
    op.drop_table("contact_events")
    op.drop_index("ix_decisions_customer_id_created_at", table_name="decisions")
    op.drop_index("ix_decisions_created_at", table_name="decisions")
    op.drop_table("decisions")
