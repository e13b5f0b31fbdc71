"""Queries on ``feedback_events`` and ``idempotency_keys``.

An idempotent request claims its (client, key) with ``INSERT … ON CONFLICT DO NOTHING`` as the first
statement of its transaction and stores its answer under the key before that transaction commits.
On PostgreSQL a concurrent request with the same key waits inside the INSERT until the first one
commits (then finds the stored answer) or rolls back (then claims the key itself); on SQLite the
transaction began with ``BEGIN IMMEDIATE``, which serialises the two. Either way only one of them
performs the effect.
"""

from __future__ import annotations

from datetime import datetime

from qianmian_core.db import insert_ignoring_conflicts
from sqlalchemy import delete, select, tuple_, update
from sqlalchemy.orm import Session

from recommender.models import Feedback, IdempotencyRecord


class IdempotencyRepository:
    """Stored answers by (client, Idempotency-Key), written in the transaction of their effect."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def claim(self, client: str, key: str, *, operation: str, fingerprint: str, now: datetime) -> bool:
        """Insert a placeholder for the key; False when the key is already taken (and committed)."""
        stmt = insert_ignoring_conflicts(
            self.session,
            IdempotencyRecord,
            {
                "client": client,
                "idempotency_key": key,
                "operation": operation,
                "fingerprint": fingerprint,
                "status_code": 0,
                "response_body": b"",
                "created_at": now,
                "updated_at": now,
            },
            index_elements=["client", "idempotency_key"],
        ).returning(IdempotencyRecord.client)
        return self.session.execute(stmt).first() is not None

    def get(self, client: str, key: str) -> IdempotencyRecord | None:
        """The stored record, or None."""
        return self.session.get(IdempotencyRecord, (client, key), populate_existing=True)

    def purge(self, operation: str, *, before: datetime, limit: int = 10_000) -> int:
        """Delete up to ``limit`` keys of ``operation`` created before ``before``; how many went."""
        old = (
            select(IdempotencyRecord.client, IdempotencyRecord.idempotency_key)
            .where(IdempotencyRecord.operation == operation, IdempotencyRecord.created_at < before)
            .order_by(IdempotencyRecord.created_at)
            .limit(limit)
        )
        deleted: int = self.session.execute(
            delete(IdempotencyRecord)
            .where(tuple_(IdempotencyRecord.client, IdempotencyRecord.idempotency_key).in_(old))
            .execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
        return deleted

    def store(self, client: str, key: str, status_code: int, body: bytes, now: datetime) -> None:
        """Store (or, after a retried grant, replace) the answer of a claimed key."""
        self.session.execute(
            update(IdempotencyRecord)
            .where(IdempotencyRecord.client == client, IdempotencyRecord.idempotency_key == key)
            .values(status_code=status_code, response_body=body, updated_at=now)
            .execution_options(synchronize_session=False)
        )


class FeedbackRepository:
    """Feedback rows inside the caller's session."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, row: Feedback) -> None:
        """Insert a new feedback row."""
        self.session.add(row)
        self.session.flush()

    def by_key(self, client: str, key: str) -> Feedback | None:
        """The feedback recorded under (client, Idempotency-Key), or None."""
        return self.session.execute(
            select(Feedback)
            .where(Feedback.client == client, Feedback.idempotency_key == key)
            .execution_options(populate_existing=True)
        ).scalar_one_or_none()

    def pending_grants(self, limit: int) -> list[Feedback]:
        """Conversions whose grant is still ``pending_retry``, oldest first."""
        rows = self.session.execute(
            select(Feedback)
            .where(Feedback.grant_status == "pending_retry")
            .order_by(Feedback.recorded_at, Feedback.feedback_id)
            .limit(limit)
        ).scalars()
        return list(rows)

    def settle_grant(
        self,
        feedback_id: str,
        *,
        status: str,
        grant_id: str | None,
        error_code: str | None,
        now: datetime,
    ) -> bool:
        """Record one grant attempt's outcome on a row whose grant is still pending; False if it no
        longer is (a concurrent retry settled it first: a settled grant is never overwritten)."""
        result = self.session.execute(
            update(Feedback)
            .where(Feedback.feedback_id == feedback_id, Feedback.grant_status == "pending_retry")
            .values(
                grant_status=status,
                grant_id=grant_id,
                grant_error_code=error_code,
                grant_attempts=Feedback.grant_attempts + 1,
                grant_updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        changed: bool = result.rowcount == 1  # type: ignore[attr-defined]
        return changed

    def get(self, feedback_id: str) -> Feedback | None:
        """One feedback row, read afresh."""
        return self.session.get(Feedback, feedback_id, populate_existing=True)
