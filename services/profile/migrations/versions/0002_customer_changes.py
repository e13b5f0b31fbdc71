"""Change feed: customer_changes, one row per committed change of a customer (GET /v1/changes).

Revision ID: 0002_customer_changes
Revises: 0001_profile
Create Date: 2025-06-20
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from qianmian_core.db import UTCDateTime

revision: str = "0002_customer_changes"
down_revision: str | None = "0001_profile"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "customer_changes",
        # BIGSERIAL on PostgreSQL; on SQLite exactly INTEGER PRIMARY KEY AUTOINCREMENT, so that a
        # sequence number is never handed out twice, even after rows are deleted.
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("customer_id", sa.String(10), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sqlite_autoincrement=True,
    )


def downgrade() -> None:
    op.drop_table("customer_changes")
