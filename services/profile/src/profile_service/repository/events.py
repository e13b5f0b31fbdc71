"""Queries on moments (events) and contact history."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from qianmian_core.db import insert_ignoring_conflicts
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from profile_service.models import ContactHistory, Event


def get(session: Session, event_id: str) -> Event | None:
    """The event with this id."""
    return session.get(Event, event_id)


def add(session: Session, event: Event) -> None:
    """Store a new event (flushed, so a duplicate id fails here)."""
    session.add(event)
    session.flush()


def add_if_new(session: Session, event: Event) -> bool:
    """Insert the event unless its id is taken; True when this call inserted it.

    ``INSERT … ON CONFLICT DO NOTHING`` rather than a savepoint: on SQLite a savepoint opened before
    the transaction's first write starts the transaction itself, and releasing it commits the
    insert on its own (pysqlite's legacy transaction handling), outside the caller's transaction.
    On PostgreSQL a concurrent insert of the same id makes this one wait for its outcome.
    """
    values = {column.key: getattr(event, column.key) for column in Event.__table__.columns}
    stmt = insert_ignoring_conflicts(session, Event, values, index_elements=["event_id"])
    return session.execute(stmt.returning(Event.event_id)).first() is not None


def since(session: Session, customer_id: str, start: datetime) -> Sequence[Event]:
    """Moments that occurred at or after ``start``, oldest first."""
    stmt = (
        select(Event)
        .where(Event.customer_id == customer_id, Event.occurred_at >= start)
        .order_by(Event.occurred_at)
    )
    return session.scalars(stmt).all()


def recent(session: Session, customer_id: str, limit: int) -> Sequence[Event]:
    """The latest moments, newest first."""
    stmt = (
        select(Event)
        .where(Event.customer_id == customer_id)
        .order_by(Event.occurred_at.desc(), Event.event_id)
        .limit(limit)
    )
    return session.scalars(stmt).all()


def last(session: Session, customer_id: str) -> Event | None:
    """The customer's latest moment."""
    found = recent(session, customer_id, 1)
    return found[0] if found else None


def add_contact(session: Session, contact: ContactHistory) -> None:
    """Append a contact."""
    session.add(contact)
    session.flush()


def contacts(
    session: Session,
    customer_id: str,
    *,
    channel: str | None = None,
    start: datetime | None = None,
    limit: int = 100,
) -> Sequence[ContactHistory]:
    """Contacts, newest first, optionally of one channel and since a time."""
    stmt = select(ContactHistory).where(ContactHistory.customer_id == customer_id)
    if channel is not None:
        stmt = stmt.where(ContactHistory.channel == channel)
    if start is not None:
        stmt = stmt.where(ContactHistory.at >= start)
    stmt = stmt.order_by(ContactHistory.at.desc(), ContactHistory.id.desc()).limit(limit)
    return session.scalars(stmt).all()


def contact_actions_since(
    session: Session, customer_id: str, start: datetime
) -> Sequence[tuple[str, datetime]]:
    """(action, at) of every contact since ``start``."""
    stmt = select(ContactHistory.action, ContactHistory.at).where(
        ContactHistory.customer_id == customer_id, ContactHistory.at >= start
    )
    return [(action, at) for action, at in session.execute(stmt)]


def count_contacts_since(session: Session, customer_id: str, start: datetime) -> int:
    """How many contacts since ``start``."""
    stmt = (
        select(func.count())
        .select_from(ContactHistory)
        .where(ContactHistory.customer_id == customer_id, ContactHistory.at >= start)
    )
    return int(session.scalar(stmt) or 0)
