"""Queries on ``idempotency_keys``: claim a key, read a stored answer, store the answer."""

from __future__ import annotations

from datetime import datetime

from qianmian_core.db import insert_ignoring_conflicts
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from rights_hub.models import IdempotencyRecord


class IdempotencyRepository:
    """Stored answers by (client, key), written in the same transaction as the effect they describe."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def claim(self, client: str, key: str, fingerprint: str, now: datetime) -> bool:
        """Insert a placeholder for the key; False if the key was already used (and committed).

        A concurrent request with the same key waits here until the first one commits or rolls back,
        so only one of them ever performs the effect.
        """
        stmt = insert_ignoring_conflicts(
            self._session,
            IdempotencyRecord,
            {
                "client": client,
                "idempotency_key": key,
                "fingerprint": fingerprint,
                "status_code": 0,
                "response_body": b"",
                "created_at": now,
            },
        ).returning(IdempotencyRecord.client)
        return self._session.execute(stmt).first() is not None

    def get(self, client: str, key: str) -> IdempotencyRecord | None:
        """The stored record, or None."""
        stmt = select(IdempotencyRecord).where(
            IdempotencyRecord.client == client, IdempotencyRecord.idempotency_key == key
        )
        return self._session.scalars(stmt).first()

    def complete(self, client: str, key: str, status_code: int, body: bytes) -> None:
        """Store the answer of a claimed key (still inside the claiming transaction)."""
        stmt = (
            update(IdempotencyRecord)
            .where(IdempotencyRecord.client == client, IdempotencyRecord.idempotency_key == key)
            .values(status_code=status_code, response_body=body)
            .execution_options(synchronize_session=False)
        )
        self._session.execute(stmt)
