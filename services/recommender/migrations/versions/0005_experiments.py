"""Experiments: definitions, arms, history, sticky assignments, exposures and attributed conversions.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the vocabularies as of this revision.
CHANNELS = ("app", "mini_program", "push", "sms", "remote_agent", "online_rm")
EXPERIMENT_STATUSES = ("draft", "pending_approval", "approved", "running", "stopped")
EXPERIMENT_ACTIONS = ("create", "submit", "approve", "start", "stop", "weights")
CONVERSION_KINDS = ("click", "convert", "opt_out", "complaint")


def _in_list(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _serial(name: str) -> sa.Column:
    return sa.Column(
        name, sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
    )


def _experiment_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["experiment_id"],
        ["experiments.experiment_id"],
        name=op.f(f"fk_{table}_experiment_id_experiments"),
    )


def upgrade() -> None:
    op.create_table(
        "experiments",
        sa.Column("experiment_id", sa.String(40), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("hypothesis", sa.String(2000), nullable=False),
        sa.Column("primary_metric", sa.String(32), nullable=False),
        sa.Column("guardrail_metrics", sa.JSON(), nullable=False),
        sa.Column("layer", sa.String(64), nullable=False),
        sa.Column("traffic", sa.Float(), nullable=False),
        sa.Column("bucket_start", sa.Integer(), nullable=True),
        sa.Column("bucket_end", sa.Integer(), nullable=True),
        sa.Column("population", sa.JSON(), nullable=False),
        sa.Column("salt", sa.String(64), nullable=False),
        sa.Column("allocation", sa.String(16), nullable=False, server_default="fixed"),
        sa.Column("exploration_floor", sa.Float(), nullable=False, server_default="0.05"),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("author", sa.String(64), nullable=False),
        sa.Column("approver", sa.String(64), nullable=True),
        _ts("created_at"),
        _ts("updated_at"),
        _ts("started_at", nullable=True),
        _ts("stopped_at", nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.CheckConstraint(_in_list("status", EXPERIMENT_STATUSES), name=op.f("ck_experiments_status")),
        sa.CheckConstraint("traffic > 0 AND traffic <= 1", name=op.f("ck_experiments_traffic")),
        sa.CheckConstraint("allocation IN ('fixed', 'thompson')", name=op.f("ck_experiments_allocation")),
        sa.CheckConstraint(
            "exploration_floor >= 0 AND exploration_floor <= 0.5", name=op.f("ck_experiments_exploration_floor")
        ),
        sa.CheckConstraint(
            "(bucket_start IS NULL AND bucket_end IS NULL) OR "
            "(bucket_start >= 0 AND bucket_start < bucket_end AND bucket_end <= 10000)",
            name=op.f("ck_experiments_buckets"),
        ),
        sa.CheckConstraint("version >= 1", name=op.f("ck_experiments_version")),
        sa.PrimaryKeyConstraint("experiment_id", name=op.f("pk_experiments")),
    )
    op.create_index("ix_experiments_status", "experiments", ["status"])
    op.create_index("ix_experiments_layer_status", "experiments", ["layer", "status"])

    op.create_table(
        "experiment_arms",
        sa.Column("experiment_id", sa.String(40), nullable=False),
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("weight", sa.Float(), nullable=False),
        sa.Column("changes", sa.JSON(), nullable=False),
        sa.CheckConstraint("weight >= 0", name=op.f("ck_experiment_arms_weight_non_negative")),
        sa.CheckConstraint("position >= 0", name=op.f("ck_experiment_arms_position_non_negative")),
        _experiment_fk("experiment_arms"),
        sa.PrimaryKeyConstraint("experiment_id", "name", name=op.f("pk_experiment_arms")),
    )

    op.create_table(
        "experiment_history",
        _serial("history_id"),
        sa.Column("experiment_id", sa.String(40), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("from_status", sa.String(24), nullable=True),
        sa.Column("to_status", sa.String(24), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        _ts("at"),
        sa.Column("note", sa.String(500), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=True),
        sa.CheckConstraint(_in_list("action", EXPERIMENT_ACTIONS), name=op.f("ck_experiment_history_action")),
        sa.CheckConstraint(
            _in_list("to_status", EXPERIMENT_STATUSES), name=op.f("ck_experiment_history_to_status")
        ),
        _experiment_fk("experiment_history"),
        sa.PrimaryKeyConstraint("history_id", name=op.f("pk_experiment_history")),
    )
    op.create_index("ix_experiment_history_experiment_id", "experiment_history", ["experiment_id"])

    op.create_table(
        "experiment_assignments",
        sa.Column("experiment_id", sa.String(40), nullable=False),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("arm", sa.String(32), nullable=False),
        _ts("assigned_at"),
        _experiment_fk("experiment_assignments"),
        sa.PrimaryKeyConstraint("experiment_id", "customer_id", name=op.f("pk_experiment_assignments")),
    )
    op.create_index("ix_experiment_assignments_customer_id", "experiment_assignments", ["customer_id"])

    op.create_table(
        "experiment_exposures",
        _serial("exposure_id"),
        sa.Column("experiment_id", sa.String(40), nullable=False),
        sa.Column("arm", sa.String(32), nullable=False),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("decision_id", sa.String(64), nullable=True),
        sa.Column("channel", sa.String(16), nullable=False),
        _ts("at"),
        sa.CheckConstraint(_in_list("channel", CHANNELS), name=op.f("ck_experiment_exposures_channel")),
        _experiment_fk("experiment_exposures"),
        sa.PrimaryKeyConstraint("exposure_id", name=op.f("pk_experiment_exposures")),
    )
    op.create_index(
        "ix_experiment_exposures_experiment_id_arm", "experiment_exposures", ["experiment_id", "arm"]
    )
    op.create_index(
        "ix_experiment_exposures_customer_id_at", "experiment_exposures", ["customer_id", "at"]
    )

    op.create_table(
        "experiment_conversions",
        _serial("conversion_id"),
        sa.Column("experiment_id", sa.String(40), nullable=False),
        sa.Column("arm", sa.String(32), nullable=False),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("decision_id", sa.String(64), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=True),
        sa.Column("cost_fen", sa.BigInteger(), nullable=True),
        sa.Column("margin_fen", sa.BigInteger(), nullable=True),
        _ts("at"),
        sa.CheckConstraint(_in_list("kind", CONVERSION_KINDS), name=op.f("ck_experiment_conversions_kind")),
        sa.CheckConstraint(
            "cost_fen IS NULL OR cost_fen >= 0", name=op.f("ck_experiment_conversions_cost_non_negative")
        ),
        sa.CheckConstraint(
            "margin_fen IS NULL OR margin_fen >= 0",
            name=op.f("ck_experiment_conversions_margin_non_negative"),
        ),
        _experiment_fk("experiment_conversions"),
        sa.PrimaryKeyConstraint("conversion_id", name=op.f("pk_experiment_conversions")),
    )
    op.create_index(
        "ix_experiment_conversions_experiment_id_arm", "experiment_conversions", ["experiment_id", "arm"]
    )


def downgrade() -> None:
    op.drop_index("ix_experiment_conversions_experiment_id_arm", table_name="experiment_conversions")
    op.drop_table("experiment_conversions")
    op.drop_index("ix_experiment_exposures_customer_id_at", table_name="experiment_exposures")
    op.drop_index("ix_experiment_exposures_experiment_id_arm", table_name="experiment_exposures")
    op.drop_table("experiment_exposures")
    op.drop_index("ix_experiment_assignments_customer_id", table_name="experiment_assignments")
    op.drop_table("experiment_assignments")
    op.drop_index("ix_experiment_history_experiment_id", table_name="experiment_history")
    op.drop_table("experiment_history")
    op.drop_table("experiment_arms")
    op.drop_index("ix_experiments_layer_status", table_name="experiments")
    op.drop_index("ix_experiments_status", table_name="experiments")
    op.drop_table("experiments")
