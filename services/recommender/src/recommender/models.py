"""SQLAlchemy tables of the recommender: the decision audit log and the contact history.

``decisions`` is append-only: one row per decision, written before the decision is returned, holding
everything needed to replay it (request, feature values with their event timestamps, model version,
every candidate with its score and rule outcomes, the response). Customer ids here are the
pseudonymous ids every service uses, never a phone or ID number.

``contact_events`` is the interaction history that contact caps and cool-downs are computed from;
``contact_counters`` holds one row per customer that a cap reservation locks (``SELECT … FOR UPDATE``
on PostgreSQL), so two concurrent decisions for one customer are serialised and cannot both pass a
cap. ``cooldowns`` holds the product a customer dismissed and until when it must not be shown.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from qianmian_core.db import UTCDateTime, in_list, naming_metadata
from qianmian_rules import CHANNELS as RULES_CHANNELS
from sqlalchemy import JSON, BigInteger, CheckConstraint, Index, Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

#: Channels a decision can be made for (issue 6's API).
CHANNELS: Final[tuple[str, ...]] = RULES_CHANNELS
#: How a decision was made: by the model, by segment-free popularity (opt-out), or degraded.
DECISION_MODES: Final[tuple[str, ...]] = ("personalised", "non_personalised", "fallback")
#: What happened to a customer in a channel: ``decision`` is a served marketing decision (the unit the
#: caps count); the others are feedback on one of its bundles.
CONTACT_KINDS: Final[tuple[str, ...]] = (
    "decision",
    "impression",
    "click",
    "dismiss",
    "accept",
    "convert",
    "redeem",
)


class Base(DeclarativeBase):
    """Declarative base of the recommender's own schema."""

    metadata = naming_metadata()


class Decision(Base):
    """The audit record of one decision (append-only; never updated or deleted by the service)."""

    __tablename__ = "decisions"
    __table_args__ = (
        CheckConstraint(in_list("channel", CHANNELS), name="channel"),
        CheckConstraint(in_list("mode", DECISION_MODES), name="mode"),
        CheckConstraint("schema_version >= 1", name="schema_version"),
        Index("ix_decisions_customer_id_created_at", "customer_id", "created_at"),
    )

    decision_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    customer_id: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(16))
    placement: Mapped[str] = mapped_column(String(64))
    mode: Mapped[str] = mapped_column(String(16))
    model_version: Mapped[str | None] = mapped_column(String(64))
    experiment_id: Mapped[str | None] = mapped_column(String(64))
    experiment_arm: Mapped[str | None] = mapped_column(String(64))
    request: Mapped[dict[str, Any]] = mapped_column(JSON)
    features: Mapped[dict[str, Any]] = mapped_column(JSON)
    candidates: Mapped[list[Any]] = mapped_column(JSON)
    response: Mapped[dict[str, Any]] = mapped_column(JSON)
    schema_version: Mapped[int] = mapped_column(Integer)


class ContactEvent(Base):
    """One contact or feedback event; the sliding windows of the caps are counted over these."""

    __tablename__ = "contact_events"
    __table_args__ = (
        CheckConstraint(in_list("channel", CHANNELS), name="channel"),
        CheckConstraint(in_list("kind", CONTACT_KINDS), name="kind"),
        Index("ix_contact_events_customer_id_kind_at", "customer_id", "kind", "at"),
    )

    event_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    customer_id: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(16))
    product_id: Mapped[str | None] = mapped_column(String(64))
    decision_id: Mapped[str | None] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(UTCDateTime())


class ContactCounter(Base):
    """Per-customer row that serialises cap reservations, with the running number of contacts."""

    __tablename__ = "contact_counters"
    __table_args__ = (CheckConstraint("contacts >= 0", name="contacts_non_negative"),)

    customer_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    contacts: Mapped[int] = mapped_column(Integer)
    last_contact_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Cooldown(Base):
    """A product the customer must not be shown again before ``until`` (after a dismiss)."""

    __tablename__ = "cooldowns"

    customer_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    product_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    until: Mapped[datetime] = mapped_column(UTCDateTime())
    reason: Mapped[str] = mapped_column(String(32))
    decision_id: Mapped[str | None] = mapped_column(String(64))
