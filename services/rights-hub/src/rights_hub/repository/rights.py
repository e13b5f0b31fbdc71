"""Queries on ``rights``: the catalogue and its budget counters."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from qianmian_core.db import insert_unique
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from rights_hub.errors import RightExistsError
from rights_hub.models import Right


@dataclass(frozen=True, slots=True)
class CounterDeltas:
    """Changes to a right's counters; the same numbers go into the ledger entry."""

    held: int = 0
    held_money_fen: int = 0
    granted: int = 0
    granted_money_fen: int = 0
    redeemed: int = 0
    redeemed_money_fen: int = 0


class RightRepository:
    """Right queries inside one session (the caller owns the transaction)."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def get(self, right_id: str) -> Right | None:
        """The right, or None."""
        return self._session.get(Right, right_id)

    def refreshed(self, right_id: str) -> Right | None:
        """The right re-read from the database (after conditional updates)."""
        return self._session.get(Right, right_id, populate_existing=True)

    def add(self, right: Right) -> None:
        """Insert a new right; RightExistsError if its id is taken (also under a race)."""
        insert_unique(
            self._session,
            right,
            lambda: RightExistsError(
                f"right {right.right_id} already exists", details={"right_id": right.right_id}
            ),
        )

    def find(self, *, statuses: Sequence[str] = (), right_types: Sequence[str] = ()) -> list[Right]:
        """Rights filtered by status and type, ordered by id (a catalogue holds hundreds, not millions)."""
        stmt = select(Right).order_by(Right.right_id)
        if statuses:
            stmt = stmt.where(Right.status.in_(statuses))
        if right_types:
            stmt = stmt.where(Right.right_type.in_(right_types))
        return list(self._session.scalars(stmt))

    def expired_windows(self, now: datetime) -> list[str]:
        """Ids of active or paused rights whose granting window has ended."""
        stmt = select(Right.right_id).where(Right.status.in_(("active", "paused")), Right.valid_until <= now)
        return list(self._session.scalars(stmt))

    def update_if(
        self, right_id: str, *, version: int | None, status: str | None, values: dict[str, Any]
    ) -> bool:
        """Apply ``values`` and bump the version, only if version and/or status are still as given."""
        stmt = update(Right).where(Right.right_id == right_id)
        if version is not None:
            stmt = stmt.where(Right.version == version)
        if status is not None:
            stmt = stmt.where(Right.status == status)
        stmt = stmt.values(**values, version=Right.version + 1).execution_options(synchronize_session=False)
        return _rowcount(self._session.execute(stmt)) == 1

    def consume(
        self, right_id: str, *, into: Literal["held", "granted"], amount_fen: int, now: datetime
    ) -> bool:
        """Take one unit (and ``amount_fen``) of budget into holds or grants, if any is left.

        One conditional UPDATE: on PostgreSQL a concurrent grant waits for this row's lock and then
        re-checks the WHERE clause against the committed counters, so two grants can never both
        take the last unit; on SQLite the transaction already holds the write lock.
        """
        committed = Right.held_count + Right.granted_count + Right.redeemed_count
        committed_money = Right.held_money_fen + Right.granted_money_fen + Right.redeemed_money_fen
        if into == "held":
            values = {"held_count": Right.held_count + 1, "held_money_fen": Right.held_money_fen + amount_fen}
        else:
            values = {
                "granted_count": Right.granted_count + 1,
                "granted_money_fen": Right.granted_money_fen + amount_fen,
            }
        stmt = (
            update(Right)
            .where(
                Right.right_id == right_id,
                Right.status == "active",
                Right.valid_from <= now,
                Right.valid_until > now,
                committed + 1 <= Right.budget_count,
                committed_money + amount_fen <= Right.budget_money_fen,
            )
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        return _rowcount(self._session.execute(stmt)) == 1

    def apply(self, right_id: str, deltas: CounterDeltas) -> None:
        """Move counters by ``deltas`` (holds to grants, grants to redemptions, releases).

        Never adds budget consumption, so it needs no budget condition; the table's check constraints
        still refuse any negative counter.
        """
        stmt = (
            update(Right)
            .where(Right.right_id == right_id)
            .values(
                held_count=Right.held_count + deltas.held,
                held_money_fen=Right.held_money_fen + deltas.held_money_fen,
                granted_count=Right.granted_count + deltas.granted,
                granted_money_fen=Right.granted_money_fen + deltas.granted_money_fen,
                redeemed_count=Right.redeemed_count + deltas.redeemed,
                redeemed_money_fen=Right.redeemed_money_fen + deltas.redeemed_money_fen,
            )
            .execution_options(synchronize_session=False)
        )
        if _rowcount(self._session.execute(stmt)) != 1:
            raise RuntimeError(f"right {right_id} vanished while its counters were moved")


def _rowcount(result: Any) -> int:
    return int(result.rowcount)
