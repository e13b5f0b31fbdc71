"""SQLAlchemy tables of the rights hub: the catalogue, holds, grants, per-customer usage and the ledger.

Budget counters live on the ``rights`` row and per-customer counters on ``customer_right_usage``; both
change only in the transaction that appends the matching ``ledger_entries`` row, so every counter
equals the sum of its ledger deltas. Check constraints make overspending impossible even for a bug.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from qianmian_core.db import UTCDateTime, in_list, naming_metadata
from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

RIGHT_TYPES: Final[tuple[str, ...]] = (
    "coupon",
    "cashback",
    "points_multiplier",
    "fee_waiver",
    "rate_boost",
    "partner_perk",
)
#: Catalogue workflow; see ``rights_hub.service.workflow``.
RIGHT_STATUSES: Final[tuple[str, ...]] = ("draft", "active", "paused", "retired")
RESERVATION_STATUSES: Final[tuple[str, ...]] = ("held", "granted", "released", "expired")
GRANT_STATUSES: Final[tuple[str, ...]] = ("granted", "redeemed", "expired", "reversed")
LEDGER_OPERATIONS: Final[tuple[str, ...]] = (
    "create",
    "edit",
    "status_change",
    "reserve",
    "release",
    "grant",
    "redeem",
    "expire",
    "reverse",
)


class Base(DeclarativeBase):
    """Declarative base of the rights hub's own schema."""

    # Unique constraints here span several columns: their names list every one of them.
    metadata = naming_metadata(uq="uq_%(table_name)s_%(column_0_N_name)s")


class Right(Base):
    """One right (权益) of the catalogue with its budget and live counters. Money is in fen (分)."""

    __tablename__ = "rights"
    __table_args__ = (
        CheckConstraint(in_list("right_type", RIGHT_TYPES), name="right_type"),
        CheckConstraint(in_list("status", RIGHT_STATUSES), name="status"),
        CheckConstraint("unit_cost_fen >= 0", name="unit_cost"),
        CheckConstraint("budget_count >= 1 AND budget_money_fen >= 0", name="budget"),
        CheckConstraint("per_customer_limit >= 1", name="per_customer_limit"),
        CheckConstraint("valid_from < valid_until", name="validity_window"),
        CheckConstraint("activated_by IS NULL OR activated_by <> author", name="maker_checker"),
        CheckConstraint(
            "held_count >= 0 AND granted_count >= 0 AND redeemed_count >= 0", name="counts_non_negative"
        ),
        CheckConstraint(
            "held_money_fen >= 0 AND granted_money_fen >= 0 AND redeemed_money_fen >= 0",
            name="money_non_negative",
        ),
        CheckConstraint("held_count + granted_count + redeemed_count <= budget_count", name="count_budget"),
        CheckConstraint(
            "held_money_fen + granted_money_fen + redeemed_money_fen <= budget_money_fen", name="money_budget"
        ),
    )

    right_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(String(1000))
    right_type: Mapped[str] = mapped_column(String(32), index=True)
    partner: Mapped[str | None] = mapped_column(String(100))
    unit_cost_fen: Mapped[int] = mapped_column(BigInteger)
    budget_count: Mapped[int] = mapped_column(Integer)
    budget_money_fen: Mapped[int] = mapped_column(BigInteger)
    per_customer_limit: Mapped[int] = mapped_column(Integer)
    valid_from: Mapped[datetime] = mapped_column(UTCDateTime)
    valid_until: Mapped[datetime] = mapped_column(UTCDateTime)
    redeem_within_days: Mapped[int] = mapped_column(Integer)
    segments: Mapped[list[str]] = mapped_column(JSON)
    lifecycle_stages: Mapped[list[str]] = mapped_column(JSON)
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), index=True)
    author: Mapped[str] = mapped_column(String(64))
    activated_by: Mapped[str | None] = mapped_column(String(64))
    activated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    version: Mapped[int] = mapped_column(Integer)
    held_count: Mapped[int] = mapped_column(Integer)
    held_money_fen: Mapped[int] = mapped_column(BigInteger)
    granted_count: Mapped[int] = mapped_column(Integer)
    granted_money_fen: Mapped[int] = mapped_column(BigInteger)
    redeemed_count: Mapped[int] = mapped_column(Integer)
    redeemed_money_fen: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class CustomerRightUsage(Base):
    """Per-customer counter of one right: what the customer holds now and a sequence for uniqueness.

    ``active_count`` (holds + grants + redemptions) is raised only by a conditional UPDATE that
    checks the per-customer limit; ``issued_total`` numbers every hold and direct grant, so that
    ``(right_id, customer_id, seq)`` is unique across holds and grants.
    """

    __tablename__ = "customer_right_usage"
    __table_args__ = (
        CheckConstraint("active_count >= 0", name="active_count"),
        CheckConstraint("issued_total >= active_count", name="issued_total"),
    )

    right_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("rights.right_id", ondelete="RESTRICT"), primary_key=True
    )
    customer_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    active_count: Mapped[int] = mapped_column(Integer)
    issued_total: Mapped[int] = mapped_column(Integer)


class Reservation(Base):
    """A hold on one unit of a right's budget for one customer, until ``expires_at``."""

    __tablename__ = "reservations"
    __table_args__ = (
        CheckConstraint(in_list("status", RESERVATION_STATUSES), name="status"),
        UniqueConstraint("right_id", "customer_id", "seq"),
    )

    reservation_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    right_id: Mapped[str] = mapped_column(String(64), ForeignKey("rights.right_id", ondelete="RESTRICT"))
    customer_id: Mapped[str] = mapped_column(String(64), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16))
    decision_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Grant(Base):
    """One right granted to one customer, redeemable until ``expires_at``."""

    __tablename__ = "grants"
    __table_args__ = (
        CheckConstraint(in_list("status", GRANT_STATUSES), name="status"),
        UniqueConstraint("right_id", "customer_id", "seq"),
        UniqueConstraint("reservation_id"),
    )

    grant_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    right_id: Mapped[str] = mapped_column(String(64), ForeignKey("rights.right_id", ondelete="RESTRICT"))
    customer_id: Mapped[str] = mapped_column(String(64), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    reservation_id: Mapped[str | None] = mapped_column(
        String(40), ForeignKey("reservations.reservation_id", ondelete="RESTRICT")
    )
    amount_fen: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16))
    decision_id: Mapped[str | None] = mapped_column(String(64))
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    redeemed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class LedgerEntry(Base):
    """Append-only record of every change to a right, its holds and grants, with the counter deltas."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        CheckConstraint(in_list("operation", LEDGER_OPERATIONS), name="operation"),
        # One effect per idempotency key, one grant per reservation, one of each step per grant.
        UniqueConstraint("actor", "idempotency_key"),
        UniqueConstraint("reservation_id", "operation"),
        UniqueConstraint("grant_id", "operation"),
        Index("ix_ledger_entries_right_id_entry_id", "right_id", "entry_id"),
    )

    entry_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    right_id: Mapped[str] = mapped_column(String(64), ForeignKey("rights.right_id", ondelete="RESTRICT"))
    operation: Mapped[str] = mapped_column(String(16))
    customer_id: Mapped[str | None] = mapped_column(String(64))
    reservation_id: Mapped[str | None] = mapped_column(String(40))
    grant_id: Mapped[str | None] = mapped_column(String(40))
    held_delta: Mapped[int] = mapped_column(Integer)
    held_money_delta_fen: Mapped[int] = mapped_column(BigInteger)
    granted_delta: Mapped[int] = mapped_column(Integer)
    granted_money_delta_fen: Mapped[int] = mapped_column(BigInteger)
    redeemed_delta: Mapped[int] = mapped_column(Integer)
    redeemed_money_delta_fen: Mapped[int] = mapped_column(BigInteger)
    actor: Mapped[str] = mapped_column(String(64))
    idempotency_key: Mapped[str | None] = mapped_column(String(128))
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    at: Mapped[datetime] = mapped_column(UTCDateTime)


class IdempotencyRecord(Base):
    """The stored answer to one (client, Idempotency-Key): replays get these exact bytes back."""

    __tablename__ = "idempotency_keys"

    client: Mapped[str] = mapped_column(String(64), primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(128), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    response_body: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
