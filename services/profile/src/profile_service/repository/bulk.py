"""Bulk loading for seeding: executemany inserts, no ORM unit of work."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, insert
from sqlalchemy.orm import Session

from profile_service.models import (
    Base,
    Consent,
    ConsentChange,
    ContactHistory,
    Customer,
    CustomerChange,
    CustomerPii,
    Event,
    FeatureOutbox,
    Holding,
    RiskAssessment,
)

#: Children first, so that deleting respects foreign keys.
_ALL_TABLES: tuple[type[Base], ...] = (
    CustomerChange,
    FeatureOutbox,
    ContactHistory,
    Event,
    ConsentChange,
    Consent,
    RiskAssessment,
    Holding,
    CustomerPii,
    Customer,
)

CHUNK = 20_000


def clear(session: Session) -> None:
    """Delete every row of the profile schema, the change feed included (its ``seq`` keeps growing)."""
    for model in _ALL_TABLES:
        session.execute(delete(model))


def insert_rows(session: Session, model: type[Base], rows: Sequence[dict[str, Any]]) -> int:
    """Insert rows in chunks (SQLAlchemy's executemany / insertmanyvalues path)."""
    for start in range(0, len(rows), CHUNK):
        chunk = rows[start : start + CHUNK]
        if chunk:
            session.execute(insert(model), list(chunk))
    return len(rows)


__all__ = [
    "Consent",
    "ConsentChange",
    "ContactHistory",
    "Customer",
    "CustomerPii",
    "Event",
    "Holding",
    "RiskAssessment",
    "clear",
    "insert_rows",
]
