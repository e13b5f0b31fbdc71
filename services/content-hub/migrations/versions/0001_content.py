"""Content: items, versions (the archive) and the append-only review history.

Revision ID: 0001
Revises:
Create Date: 2025-01-01 00:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A frozen copy of the vocabulary as of this revision: a migration must not change meaning when the
# application's constants change later.
STATUSES = ("draft", "in_review", "approved", "rejected", "retired", "superseded")


def _in_list(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    op.create_table(
        "content_items",
        sa.Column("content_id", sa.String(64), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("latest_version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("content_id", name="pk_content_items"),
        sa.CheckConstraint("latest_version >= 1", name="ck_content_items_latest_version"),
    )

    op.create_table(
        "content_versions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("content_id", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("product_id", sa.String(64), nullable=True),
        sa.Column("right_id", sa.String(64), nullable=True),
        sa.Column("segments", sa.JSON(), nullable=False),
        sa.Column("variants", sa.JSON(), nullable=False),
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=True),
        sa.Column("valid_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("author", sa.String(64), nullable=False),
        sa.Column("approved_by", sa.String(64), nullable=True),
        sa.Column("approved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_content_versions"),
        sa.ForeignKeyConstraint(
            ["content_id"],
            ["content_items.content_id"],
            name="fk_content_versions_content_id_content_items",
            ondelete="RESTRICT",
        ),
        sa.UniqueConstraint("content_id", "version", name="uq_content_versions_content_id_version"),
        sa.CheckConstraint(_in_list("status", STATUSES), name="ck_content_versions_status"),
        sa.CheckConstraint("version >= 1", name="ck_content_versions_version"),
        sa.CheckConstraint(
            "approved_by IS NULL OR approved_by <> author", name="ck_content_versions_maker_checker"
        ),
        sa.CheckConstraint(
            "valid_from IS NULL OR valid_until IS NULL OR valid_from < valid_until",
            name="ck_content_versions_validity",
        ),
        sa.CheckConstraint(
            "product_id IS NOT NULL OR right_id IS NOT NULL", name="ck_content_versions_linked"
        ),
    )
    op.create_index("ix_content_versions_content_id", "content_versions", ["content_id"])
    op.create_index("ix_content_versions_status", "content_versions", ["status"])
    op.create_index("ix_content_versions_product_id", "content_versions", ["product_id"])
    op.create_index("ix_content_versions_right_id", "content_versions", ["right_id"])

    op.create_table(
        "content_transitions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("content_id", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("from_status", sa.String(16), nullable=True),
        sa.Column("to_status", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("comment", sa.String(500), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_content_transitions"),
        sa.ForeignKeyConstraint(
            ["content_id"],
            ["content_items.content_id"],
            name="fk_content_transitions_content_id_content_items",
            ondelete="RESTRICT",
        ),
        sa.CheckConstraint(_in_list("to_status", STATUSES), name="ck_content_transitions_to_status"),
        sa.CheckConstraint(
            "from_status IS NULL OR " + _in_list("from_status", STATUSES),
            name="ck_content_transitions_from_status",
        ),
    )
    op.create_index("ix_content_transitions_content_id", "content_transitions", ["content_id"])


def downgrade() -> None:
    op.drop_index("ix_content_transitions_content_id", table_name="content_transitions")
    op.drop_table("content_transitions")
    op.drop_index("ix_content_versions_right_id", table_name="content_versions")
    op.drop_index("ix_content_versions_product_id", table_name="content_versions")
    op.drop_index("ix_content_versions_status", table_name="content_versions")
    op.drop_index("ix_content_versions_content_id", table_name="content_versions")
    op.drop_table("content_versions")
    op.drop_table("content_items")
