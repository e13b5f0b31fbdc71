"""``INSERT ... ON CONFLICT DO NOTHING`` for the session's dialect (PostgreSQL or SQLite)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def insert_ignoring_conflicts(session: Session, table: Any, values: dict[str, Any]) -> Insert:
    """An INSERT of ``values`` that silently does nothing when a unique key already exists.

    On PostgreSQL an INSERT that meets an uncommitted row with the same key waits for that
    transaction, so the caller then sees the committed row: this is what serialises replays.
    """
    bind = session.get_bind()
    if bind.dialect.name == "postgresql":
        return postgresql.insert(table).values(**values).on_conflict_do_nothing()
    return sqlite.insert(table).values(**values).on_conflict_do_nothing()
