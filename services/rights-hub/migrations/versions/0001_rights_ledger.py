"""Rights catalogue, holds, grants, per-customer usage, the ledger and idempotency keys.

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
RIGHT_TYPES = ("coupon", "cashback", "points_multiplier", "fee_waiver", "rate_boost", "partner_perk")
RIGHT_STATUSES = ("draft", "active", "paused", "retired")
RESERVATION_STATUSES = ("held", "granted", "released", "expired")
GRANT_STATUSES = ("granted", "redeemed", "expired", "reversed")
LEDGER_OPERATIONS = (
    "create", "edit", "status_change", "reserve", "release", "grant", "redeem", "expire", "reverse",
)


def _in_list(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "rights",
        sa.Column("right_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("description", sa.String(1000), nullable=True),
        sa.Column("right_type", sa.String(32), nullable=False),
        sa.Column("partner", sa.String(100), nullable=True),
        sa.Column("unit_cost_fen", sa.BigInteger(), nullable=False),
        sa.Column("budget_count", sa.Integer(), nullable=False),
        sa.Column("budget_money_fen", sa.BigInteger(), nullable=False),
        sa.Column("per_customer_limit", sa.Integer(), nullable=False),
        _ts("valid_from"),
        _ts("valid_until"),
        sa.Column("redeem_within_days", sa.Integer(), nullable=False),
        sa.Column("segments", sa.JSON(), nullable=False),
        sa.Column("lifecycle_stages", sa.JSON(), nullable=False),
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("author", sa.String(64), nullable=False),
        sa.Column("activated_by", sa.String(64), nullable=True),
        _ts("activated_at", nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("held_count", sa.Integer(), nullable=False),
        sa.Column("held_money_fen", sa.BigInteger(), nullable=False),
        sa.Column("granted_count", sa.Integer(), nullable=False),
        sa.Column("granted_money_fen", sa.BigInteger(), nullable=False),
        sa.Column("redeemed_count", sa.Integer(), nullable=False),
        sa.Column("redeemed_money_fen", sa.BigInteger(), nullable=False),
        _ts("created_at"),
        _ts("updated_at"),
        sa.PrimaryKeyConstraint("right_id", name="pk_rights"),
        sa.CheckConstraint(_in_list("right_type", RIGHT_TYPES), name=op.f("ck_rights_right_type")),
        sa.CheckConstraint(_in_list("status", RIGHT_STATUSES), name=op.f("ck_rights_status")),
        sa.CheckConstraint("unit_cost_fen >= 0", name=op.f("ck_rights_unit_cost")),
        sa.CheckConstraint("budget_count >= 1 AND budget_money_fen >= 0", name=op.f("ck_rights_budget")),
        sa.CheckConstraint("per_customer_limit >= 1", name=op.f("ck_rights_per_customer_limit")),
        sa.CheckConstraint("valid_from < valid_until", name=op.f("ck_rights_validity_window")),
        sa.CheckConstraint("activated_by IS NULL OR activated_by <> author", name=op.f("ck_rights_maker_checker")),
        sa.CheckConstraint(
            "held_count >= 0 AND granted_count >= 0 AND redeemed_count >= 0",
            name=op.f("ck_rights_counts_non_negative"),
        ),
        sa.CheckConstraint(
            "held_money_fen >= 0 AND granted_money_fen >= 0 AND redeemed_money_fen >= 0",
            name=op.f("ck_rights_money_non_negative"),
        ),
        sa.CheckConstraint(
            "held_count + granted_count + redeemed_count <= budget_count", name=op.f("ck_rights_count_budget")
        ),
        sa.CheckConstraint(
            "held_money_fen + granted_money_fen + redeemed_money_fen <= budget_money_fen",
            name=op.f("ck_rights_money_budget"),
        ),
    )
    op.create_index("ix_rights_right_type", "rights", ["right_type"])
    op.create_index("ix_rights_status", "rights", ["status"])

    op.create_table(
        "customer_right_usage",
        sa.Column("right_id", sa.String(64), nullable=False),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("active_count", sa.Integer(), nullable=False),
        sa.Column("issued_total", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("right_id", "customer_id", name="pk_customer_right_usage"),
        sa.ForeignKeyConstraint(
            ["right_id"], ["rights.right_id"], ondelete="RESTRICT",
            name="fk_customer_right_usage_right_id_rights",
        ),
        sa.CheckConstraint("active_count >= 0", name=op.f("ck_customer_right_usage_active_count")),
        sa.CheckConstraint("issued_total >= active_count", name=op.f("ck_customer_right_usage_issued_total")),
    )

    op.create_table(
        "reservations",
        sa.Column("reservation_id", sa.String(40), nullable=False),
        sa.Column("right_id", sa.String(64), nullable=False),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("decision_id", sa.String(64), nullable=True),
        _ts("created_at"),
        _ts("expires_at"),
        _ts("closed_at", nullable=True),
        sa.PrimaryKeyConstraint("reservation_id", name="pk_reservations"),
        sa.ForeignKeyConstraint(
            ["right_id"], ["rights.right_id"], ondelete="RESTRICT", name="fk_reservations_right_id_rights"
        ),
        sa.CheckConstraint(_in_list("status", RESERVATION_STATUSES), name=op.f("ck_reservations_status")),
        sa.UniqueConstraint(
            "right_id", "customer_id", "seq", name="uq_reservations_right_id_customer_id_seq"
        ),
    )
    op.create_index("ix_reservations_customer_id", "reservations", ["customer_id"])
    op.create_index("ix_reservations_expires_at", "reservations", ["expires_at"])

    op.create_table(
        "grants",
        sa.Column("grant_id", sa.String(40), nullable=False),
        sa.Column("right_id", sa.String(64), nullable=False),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("reservation_id", sa.String(40), nullable=True),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("decision_id", sa.String(64), nullable=True),
        _ts("granted_at"),
        _ts("expires_at"),
        _ts("redeemed_at", nullable=True),
        _ts("closed_at", nullable=True),
        sa.PrimaryKeyConstraint("grant_id", name="pk_grants"),
        sa.ForeignKeyConstraint(
            ["right_id"], ["rights.right_id"], ondelete="RESTRICT", name="fk_grants_right_id_rights"
        ),
        sa.ForeignKeyConstraint(
            ["reservation_id"], ["reservations.reservation_id"], ondelete="RESTRICT",
            name="fk_grants_reservation_id_reservations",
        ),
        sa.CheckConstraint(_in_list("status", GRANT_STATUSES), name=op.f("ck_grants_status")),
        sa.UniqueConstraint("right_id", "customer_id", "seq", name="uq_grants_right_id_customer_id_seq"),
        sa.UniqueConstraint("reservation_id", name="uq_grants_reservation_id"),
    )
    op.create_index("ix_grants_customer_id", "grants", ["customer_id"])
    op.create_index("ix_grants_expires_at", "grants", ["expires_at"])

    op.create_table(
        "ledger_entries",
        sa.Column("entry_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("right_id", sa.String(64), nullable=False),
        sa.Column("operation", sa.String(16), nullable=False),
        sa.Column("customer_id", sa.String(64), nullable=True),
        sa.Column("reservation_id", sa.String(40), nullable=True),
        sa.Column("grant_id", sa.String(40), nullable=True),
        sa.Column("held_delta", sa.Integer(), nullable=False),
        sa.Column("held_money_delta_fen", sa.BigInteger(), nullable=False),
        sa.Column("granted_delta", sa.Integer(), nullable=False),
        sa.Column("granted_money_delta_fen", sa.BigInteger(), nullable=False),
        sa.Column("redeemed_delta", sa.Integer(), nullable=False),
        sa.Column("redeemed_money_delta_fen", sa.BigInteger(), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("idempotency_key", sa.String(128), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=True),
        _ts("at"),
        sa.PrimaryKeyConstraint("entry_id", name="pk_ledger_entries"),
        sa.ForeignKeyConstraint(
            ["right_id"], ["rights.right_id"], ondelete="RESTRICT", name="fk_ledger_entries_right_id_rights"
        ),
        sa.CheckConstraint(_in_list("operation", LEDGER_OPERATIONS), name=op.f("ck_ledger_entries_operation")),
        sa.UniqueConstraint("actor", "idempotency_key", name="uq_ledger_entries_actor_idempotency_key"),
        sa.UniqueConstraint("reservation_id", "operation", name="uq_ledger_entries_reservation_id_operation"),
        sa.UniqueConstraint("grant_id", "operation", name="uq_ledger_entries_grant_id_operation"),
    )
    op.create_index("ix_ledger_entries_right_id_entry_id", "ledger_entries", ["right_id", "entry_id"])

    op.create_table(
        "idempotency_keys",
        sa.Column("client", sa.String(64), nullable=False),
        sa.Column("idempotency_key", sa.String(128), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("response_body", sa.LargeBinary(), nullable=False),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("client", "idempotency_key", name="pk_idempotency_keys"),
    )
    op.create_index("ix_idempotency_keys_created_at", "idempotency_keys", ["created_at"])


def downgrade() -> None:
    op.drop_table("idempotency_keys")
    op.drop_table("ledger_entries")
    op.drop_table("grants")
    op.drop_table("reservations")
    op.drop_table("customer_right_usage")
    op.drop_table("rights")
