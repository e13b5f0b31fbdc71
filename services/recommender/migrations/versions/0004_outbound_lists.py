"""Outbound lists: push/SMS campaigns and remote-banking call lists (their rows are decisions).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the vocabularies as of this revision.
OUTBOUND_CHANNELS = ("push", "sms", "remote_agent")
OUTBOUND_STATUSES = ("building", "ready", "failed")


def _in_list(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "outbound_lists",
        sa.Column("list_id", sa.String(40), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        _ts("created_at"),
        sa.Column("created_by", sa.String(64), nullable=False),
        _ts("scheduled_at"),
        sa.Column("request", sa.JSON(), nullable=False),
        sa.Column("row_count", sa.Integer(), nullable=False),
        sa.Column("scanned", sa.Integer(), nullable=False),
        sa.Column("excluded", sa.JSON(), nullable=False),
        sa.Column("rights_cost_fen", sa.BigInteger(), nullable=False),
        sa.Column("rights_dropped", sa.Integer(), nullable=False),
        sa.Column("file_name", sa.String(128), nullable=True),
        sa.Column("seconds", sa.Float(), nullable=True),
        sa.Column("error_code", sa.String(64), nullable=True),
        _ts("finished_at", nullable=True),
        sa.CheckConstraint(_in_list("channel", OUTBOUND_CHANNELS), name=op.f("ck_outbound_lists_channel")),
        sa.CheckConstraint(_in_list("status", OUTBOUND_STATUSES), name=op.f("ck_outbound_lists_status")),
        sa.CheckConstraint(
            "row_count >= 0 AND scanned >= 0 AND rights_cost_fen >= 0 AND rights_dropped >= 0",
            name=op.f("ck_outbound_lists_counts_non_negative"),
        ),
        sa.PrimaryKeyConstraint("list_id", name=op.f("pk_outbound_lists")),
    )
    op.create_index("ix_outbound_lists_created_at", "outbound_lists", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_outbound_lists_created_at", table_name="outbound_lists")
    op.drop_table("outbound_lists")
