"""Catalogue snapshots that decisions were made on (stored once per distinct content, by hash).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 00:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "catalogue_snapshots",
        sa.Column("snapshot_hash", sa.String(32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("products", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("snapshot_hash", name=op.f("pk_catalogue_snapshots")),
    )


def downgrade() -> None:
    op.drop_table("catalogue_snapshots")
