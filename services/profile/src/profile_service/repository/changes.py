"""The change feed table: append a change, read changes in sequence order."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from profile_service.models import CustomerChange


def add(session: Session, customer_id: str, kind: str, at: datetime) -> CustomerChange:
    """Insert a change row now (flushed, so its ``seq`` is taken at this point of the transaction)."""
    row = CustomerChange(customer_id=customer_id, kind=kind, at=at)
    session.add(row)
    session.flush()
    return row


def after(session: Session, after_seq: int, limit: int) -> Sequence[CustomerChange]:
    """Up to ``limit`` changes with ``seq > after_seq``, in ``seq`` order."""
    stmt = (
        select(CustomerChange).where(CustomerChange.seq > after_seq).order_by(CustomerChange.seq).limit(limit)
    )
    return session.scalars(stmt).all()


def head(session: Session) -> int:
    """The highest ``seq`` in the table (0 when it is empty)."""
    return int(session.scalar(select(func.max(CustomerChange.seq))) or 0)
