"""The feature outbox: rows to push to Feast, written in the transaction of the change they derive from."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from profile_service.models import FeatureOutbox


def add(session: Session, customer_id: str, payload: dict[str, Any], at: datetime) -> None:
    """Queue one feature row."""
    session.add(FeatureOutbox(customer_id=customer_id, payload=payload, created_at=at, attempts=0))


def pending(session: Session, limit: int) -> Sequence[FeatureOutbox]:
    """The oldest queued rows."""
    stmt = select(FeatureOutbox).order_by(FeatureOutbox.id).limit(limit)
    return session.scalars(stmt).all()


def remove(session: Session, ids: Sequence[int]) -> None:
    """Drop rows that were pushed."""
    if ids:
        session.execute(delete(FeatureOutbox).where(FeatureOutbox.id.in_(ids)))


def mark_failed(session: Session, ids: Sequence[int], error: str) -> None:
    """Count a failed attempt on rows that stay queued."""
    if ids:
        session.execute(
            update(FeatureOutbox)
            .where(FeatureOutbox.id.in_(ids))
            .values(attempts=FeatureOutbox.attempts + 1, last_error=error)
        )


def size(session: Session) -> int:
    """How many rows are queued."""
    return int(session.scalar(select(func.count()).select_from(FeatureOutbox)) or 0)
