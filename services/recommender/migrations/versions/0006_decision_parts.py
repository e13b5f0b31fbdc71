"""Decision parts: audit JSON that many decisions share, stored once by SHA-256 (audit schema 3).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24 23:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "decision_parts",
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("digest", name=op.f("pk_decision_parts")),
    )


def downgrade() -> None:
    # Decisions of schema 3 refer to these parts: a downgrade past here is refused while any exists.
    bind = op.get_bind()
    if bind.execute(sa.text("SELECT count(*) FROM decisions WHERE schema_version >= 3")).scalar():
        raise RuntimeError("decisions of audit schema 3 refer to decision_parts; they cannot be dropped")
    op.drop_table("decision_parts")
