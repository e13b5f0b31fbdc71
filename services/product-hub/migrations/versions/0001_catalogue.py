"""Catalogue: products and their append-only status history.

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

# Frozen copies of the vocabularies as of this revision: a migration must not change meaning when
# the application's constants change later.
PRODUCT_TYPES = (
    "deposit",
    "structured_deposit",
    "wealth_management",
    "fund",
    "insurance",
    "credit_card",
    "consumer_loan",
    "mortgage_service",
    "payroll_service",
)
STATUSES = ("draft", "approved", "active", "retired")


def _in_list(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    op.create_table(
        "products",
        sa.Column("product_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("name_en", sa.String(200), nullable=True),
        sa.Column("product_type", sa.String(32), nullable=False),
        sa.Column("risk_rating", sa.SmallInteger(), nullable=True),
        sa.Column("eligibility", sa.JSON(), nullable=False),
        sa.Column("channels", sa.JSON(), nullable=False),
        sa.Column("sale_start", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sale_end", sa.DateTime(timezone=True), nullable=True),
        sa.Column("quota", sa.Integer(), nullable=True),
        sa.Column("sold", sa.Integer(), nullable=False),
        sa.Column("margin_rate", sa.Double(), nullable=False),
        sa.Column("value", sa.Double(), nullable=False),
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("author", sa.String(64), nullable=False),
        sa.Column("approved_by", sa.String(64), nullable=True),
        sa.Column("approved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("product_id", name="pk_products"),
        sa.CheckConstraint(_in_list("product_type", PRODUCT_TYPES), name="ck_products_product_type"),
        sa.CheckConstraint(_in_list("status", STATUSES), name="ck_products_status"),
        sa.CheckConstraint(
            "risk_rating IS NULL OR (risk_rating BETWEEN 1 AND 5)", name="ck_products_risk_rating"
        ),
        sa.CheckConstraint("quota IS NULL OR quota >= 1", name="ck_products_quota"),
        sa.CheckConstraint("sold >= 0", name="ck_products_sold"),
        sa.CheckConstraint(
            "sale_start IS NULL OR sale_end IS NULL OR sale_start < sale_end",
            name="ck_products_sale_window",
        ),
        sa.CheckConstraint("approved_by IS NULL OR approved_by <> author", name="ck_products_maker_checker"),
        sa.CheckConstraint("version >= 1", name="ck_products_version"),
    )
    op.create_index("ix_products_product_type", "products", ["product_type"])
    op.create_index("ix_products_status", "products", ["status"])

    op.create_table(
        "product_status_changes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("product_id", sa.String(64), nullable=False),
        sa.Column("from_status", sa.String(16), nullable=True),
        sa.Column("to_status", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("comment", sa.String(500), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_product_status_changes"),
        sa.ForeignKeyConstraint(
            ["product_id"],
            ["products.product_id"],
            name="fk_product_status_changes_product_id_products",
            ondelete="RESTRICT",
        ),
        sa.CheckConstraint(_in_list("to_status", STATUSES), name="ck_product_status_changes_to_status"),
        sa.CheckConstraint(
            "from_status IS NULL OR " + _in_list("from_status", STATUSES),
            name="ck_product_status_changes_from_status",
        ),
    )
    op.create_index(
        "ix_product_status_changes_product_id", "product_status_changes", ["product_id"]
    )


def downgrade() -> None:
    op.drop_index("ix_product_status_changes_product_id", table_name="product_status_changes")
    op.drop_table("product_status_changes")
    op.drop_index("ix_products_status", table_name="products")
    op.drop_index("ix_products_product_type", table_name="products")
    op.drop_table("products")
