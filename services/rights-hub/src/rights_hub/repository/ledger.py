"""Queries on ``ledger_entries``: append, page, and sums for reconciliation and pacing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from rights_hub.models import LedgerEntry
from rights_hub.repository.rights import CounterDeltas


@dataclass(frozen=True, slots=True)
class LedgerSums:
    """Sums of a right's ledger deltas; must equal the right's counters."""

    held: int
    held_money_fen: int
    granted: int
    granted_money_fen: int
    redeemed: int
    redeemed_money_fen: int


class LedgerRepository:
    """The append-only ledger (entries are never updated or deleted)."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def append(
        self,
        *,
        right_id: str,
        operation: str,
        actor: str,
        at: datetime,
        deltas: CounterDeltas = CounterDeltas(),
        customer_id: str | None = None,
        reservation_id: str | None = None,
        grant_id: str | None = None,
        idempotency_key: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Append one entry."""
        self._session.add(
            LedgerEntry(
                right_id=right_id,
                operation=operation,
                customer_id=customer_id,
                reservation_id=reservation_id,
                grant_id=grant_id,
                held_delta=deltas.held,
                held_money_delta_fen=deltas.held_money_fen,
                granted_delta=deltas.granted,
                granted_money_delta_fen=deltas.granted_money_fen,
                redeemed_delta=deltas.redeemed,
                redeemed_money_delta_fen=deltas.redeemed_money_fen,
                actor=actor,
                idempotency_key=idempotency_key,
                detail=detail,
                at=at,
            )
        )
        self._session.flush()

    def page(self, right_id: str, *, after: int, limit: int) -> list[LedgerEntry]:
        """Entries of a right with ``entry_id > after``, in order."""
        stmt = (
            select(LedgerEntry)
            .where(LedgerEntry.right_id == right_id, LedgerEntry.entry_id > after)
            .order_by(LedgerEntry.entry_id)
            .limit(limit)
        )
        return list(self._session.scalars(stmt))

    def sums(self, right_id: str) -> LedgerSums:
        """Sums of every delta column of a right's entries."""
        stmt = select(
            func.coalesce(func.sum(LedgerEntry.held_delta), 0),
            func.coalesce(func.sum(LedgerEntry.held_money_delta_fen), 0),
            func.coalesce(func.sum(LedgerEntry.granted_delta), 0),
            func.coalesce(func.sum(LedgerEntry.granted_money_delta_fen), 0),
            func.coalesce(func.sum(LedgerEntry.redeemed_delta), 0),
            func.coalesce(func.sum(LedgerEntry.redeemed_money_delta_fen), 0),
        ).where(LedgerEntry.right_id == right_id)
        row = self._session.execute(stmt).one()
        return LedgerSums(*(int(v) for v in row))

    def customer_sums(self, right_id: str) -> dict[str, int]:
        """Per customer: the net number of holdings (holds + grants + redemptions) per the ledger."""
        net = LedgerEntry.held_delta + LedgerEntry.granted_delta + LedgerEntry.redeemed_delta
        stmt = (
            select(LedgerEntry.customer_id, func.sum(net))
            .where(LedgerEntry.right_id == right_id, LedgerEntry.customer_id.is_not(None))
            .group_by(LedgerEntry.customer_id)
        )
        return {str(customer): int(total) for customer, total in self._session.execute(stmt)}

    def net_committed_since(self, right_id: str, since: datetime) -> int:
        """Units of budget taken (net of releases, expiries and reversals) since ``since``."""
        net = LedgerEntry.held_delta + LedgerEntry.granted_delta + LedgerEntry.redeemed_delta
        stmt = select(func.coalesce(func.sum(net), 0)).where(
            LedgerEntry.right_id == right_id, LedgerEntry.at >= since
        )
        return int(self._session.scalar(stmt) or 0)

    def count(self, right_id: str, operation: str) -> int:
        """How many entries of ``operation`` the right has."""
        stmt = select(func.count()).where(
            LedgerEntry.right_id == right_id, LedgerEntry.operation == operation
        )
        return int(self._session.scalar(stmt) or 0)
