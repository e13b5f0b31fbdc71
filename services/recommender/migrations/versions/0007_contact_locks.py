"""Contact locks: the per-customer lock row without the running totals that nothing read.

``contact_counters`` (customer, contacts, last contact) becomes ``contact_locks`` (customer): the row
is only ever locked (PostgreSQL, ``SELECT … FOR UPDATE``) to serialise one customer's cap
reservations, and counting into it cost a page write per decision. The downgrade rebuilds the totals
from the decisions ``contact_events`` still holds.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25 07:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "contact_locks",
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("customer_id", name=op.f("pk_contact_locks")),
    )
    op.execute("INSERT INTO contact_locks (customer_id) SELECT customer_id FROM contact_counters")
    op.drop_table("contact_counters")


def downgrade() -> None:
    op.create_table(
        "contact_counters",
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("contacts", sa.Integer(), nullable=False),
        sa.Column("last_contact_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("contacts >= 0", name=op.f("ck_contact_counters_contacts_non_negative")),
        sa.PrimaryKeyConstraint("customer_id", name=op.f("pk_contact_counters")),
    )
    op.execute(
        "INSERT INTO contact_counters (customer_id, contacts, last_contact_at) "
        "SELECT customer_id, count(*), max(at) FROM contact_events WHERE kind = 'decision' "
        "GROUP BY customer_id"
    )
    op.execute(
        "INSERT INTO contact_counters (customer_id, contacts, last_contact_at) "
        "SELECT customer_id, 0, NULL FROM contact_locks "
        "WHERE customer_id NOT IN (SELECT customer_id FROM contact_counters)"
    )
    op.drop_table("contact_locks")
