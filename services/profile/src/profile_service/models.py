"""SQLAlchemy tables of the profile service (its own schema; no other service reads them).

Personal identifiers live only in ``customer_pii`` and are only ever returned masked.
History tables (consent changes, risk assessments, events, contact history) are append-only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from qianmian_core.db import UTCDateTime
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    """Declarative base of the profile schema."""

    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime}


CUSTOMER_ID_LENGTH = 10


class Customer(Base):
    """Customer attributes and the derived lifecycle stage, tags and value."""

    __tablename__ = "customers"

    customer_id: Mapped[str] = mapped_column(String(CUSTOMER_ID_LENGTH), primary_key=True)
    age: Mapped[int] = mapped_column(SmallInteger)
    gender: Mapped[str] = mapped_column(String(1))
    birth_month: Mapped[int] = mapped_column(SmallInteger)
    birth_day: Mapped[int] = mapped_column(SmallInteger)
    city_tier: Mapped[int] = mapped_column(SmallInteger)
    region: Mapped[str] = mapped_column(String(8))
    segments: Mapped[list[str]] = mapped_column(JSON)
    aum: Mapped[float] = mapped_column(Float)
    deposits: Mapped[float] = mapped_column(Float)
    loans: Mapped[float] = mapped_column(Float)
    aum_90d_ago: Mapped[float | None] = mapped_column(Float, nullable=True)
    lifecycle_stage: Mapped[str] = mapped_column(String(16))
    tenure_months: Mapped[int] = mapped_column(Integer)
    customer_since: Mapped[datetime]
    last_active_at: Mapped[datetime | None] = mapped_column(nullable=True)
    tags: Mapped[list[str]] = mapped_column(JSON)
    clv: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[datetime]


class CustomerPii(Base):
    """Personal identifiers. Never logged, never pushed to features, only returned masked."""

    __tablename__ = "customer_pii"

    customer_id: Mapped[str] = mapped_column(
        String(CUSTOMER_ID_LENGTH), ForeignKey("customers.customer_id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(64))
    mobile: Mapped[str] = mapped_column(String(20))
    id_number: Mapped[str] = mapped_column(String(18))
    card_number: Mapped[str] = mapped_column(String(19))


class Holding(Base):
    """A product the customer holds."""

    __tablename__ = "holdings"
    __table_args__ = (Index("ix_holdings_customer_id", "customer_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    customer_id: Mapped[str] = mapped_column(
        String(CUSTOMER_ID_LENGTH), ForeignKey("customers.customer_id", ondelete="CASCADE")
    )
    product_id: Mapped[str] = mapped_column(String(32))
    product_type: Mapped[str] = mapped_column(String(32))
    opened_at: Mapped[datetime]
    amount: Mapped[float] = mapped_column(Float)


class RiskAssessment(Base):
    """Append-only history of risk assessments (C1..C5 as 1..5); the current one is the latest recorded."""

    __tablename__ = "risk_assessments"
    __table_args__ = (Index("ix_risk_assessments_customer_id_recorded_at", "customer_id", "recorded_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    customer_id: Mapped[str] = mapped_column(
        String(CUSTOMER_ID_LENGTH), ForeignKey("customers.customer_id", ondelete="CASCADE")
    )
    level: Mapped[int] = mapped_column(SmallInteger)
    assessed_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    source: Mapped[str] = mapped_column(String(64))
    recorded_at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(64))


class Consent(Base):
    """Current consent per channel; channel ``personalised`` is the PIPL art. 24 pseudo-channel."""

    __tablename__ = "consents"

    customer_id: Mapped[str] = mapped_column(
        String(CUSTOMER_ID_LENGTH), ForeignKey("customers.customer_id", ondelete="CASCADE"), primary_key=True
    )
    channel: Mapped[str] = mapped_column(String(32), primary_key=True)
    granted: Mapped[bool] = mapped_column(Boolean)
    updated_at: Mapped[datetime]


class ConsentChange(Base):
    """Append-only history of consent changes."""

    __tablename__ = "consent_changes"
    __table_args__ = (Index("ix_consent_changes_customer_id_changed_at", "customer_id", "changed_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    customer_id: Mapped[str] = mapped_column(
        String(CUSTOMER_ID_LENGTH), ForeignKey("customers.customer_id", ondelete="CASCADE")
    )
    channel: Mapped[str] = mapped_column(String(32))
    old_value: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    new_value: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str] = mapped_column(String(200))
    actor: Mapped[str] = mapped_column(String(64))
    changed_at: Mapped[datetime]


class Event(Base):
    """A moment of truth. ``event_id`` is the idempotency key; ``body_hash`` detects a reused id."""

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_customer_id_occurred_at", "customer_id", "occurred_at"),)

    event_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    customer_id: Mapped[str] = mapped_column(
        String(CUSTOMER_ID_LENGTH), ForeignKey("customers.customer_id", ondelete="CASCADE")
    )
    event_type: Mapped[str] = mapped_column(String(32))
    occurred_at: Mapped[datetime]
    amount: Mapped[float | None] = mapped_column(Float, nullable=True)
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON)
    body_hash: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[datetime]


class ContactHistory(Base):
    """What was shown to the customer where and when, and what they did (written by the recommender)."""

    __tablename__ = "contact_history"
    __table_args__ = (Index("ix_contact_history_customer_id_at", "customer_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    customer_id: Mapped[str] = mapped_column(
        String(CUSTOMER_ID_LENGTH), ForeignKey("customers.customer_id", ondelete="CASCADE")
    )
    channel: Mapped[str] = mapped_column(String(32))
    placement: Mapped[str] = mapped_column(String(64))
    product_id: Mapped[str] = mapped_column(String(32))
    content_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    decision_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    action: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime]


class FeatureOutbox(Base):
    """Feature rows waiting to be pushed to Feast; written in the same transaction as the change."""

    __tablename__ = "feature_outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    customer_id: Mapped[str] = mapped_column(String(CUSTOMER_ID_LENGTH))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)


#: 64-bit on PostgreSQL (the feed must not run out); SQLite's rowid is 64-bit already, and only a
#: column declared exactly ``INTEGER PRIMARY KEY`` aliases it.
_SEQ = BigInteger().with_variant(Integer(), "sqlite")


class CustomerChange(Base):
    """The change feed: one row per committed change of a customer's facts, consent or activity.

    Written in the transaction of the change it announces, so a rolled-back change leaves no row.
    ``seq`` only grows (SQLite's AUTOINCREMENT never reuses a value, even after deletes). No foreign
    key: it is a log of what happened, read by ``GET /v1/changes``.
    """

    __tablename__ = "customer_changes"
    __table_args__ = {"sqlite_autoincrement": True}  # noqa: RUF012 - read once by the declarative mapper

    seq: Mapped[int] = mapped_column(_SEQ, primary_key=True, autoincrement=True)
    customer_id: Mapped[str] = mapped_column(String(CUSTOMER_ID_LENGTH))
    kind: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime]
