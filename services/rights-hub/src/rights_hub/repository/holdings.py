"""Queries on ``reservations``, ``grants`` and ``customer_right_usage``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from qianmian_core.db import insert_ignoring_conflicts
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from rights_hub.models import CustomerRightUsage, Grant, Reservation


class UsageRepository:
    """The per-customer counters that enforce ``per_customer_limit``."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def claim(self, right_id: str, customer_id: str, limit: int) -> int | None:
        """Count one more holding for the customer if under ``limit``; return its sequence number or None.

        The counter row is created if missing (a concurrent creator makes this wait, then no-op),
        then raised by a conditional UPDATE: of concurrent claims by one customer at most ``limit``
        can succeed, whatever the interleaving.
        """
        self._session.execute(
            insert_ignoring_conflicts(
                self._session,
                CustomerRightUsage,
                {"right_id": right_id, "customer_id": customer_id, "active_count": 0, "issued_total": 0},
            )
        )
        stmt = (
            update(CustomerRightUsage)
            .where(
                CustomerRightUsage.right_id == right_id,
                CustomerRightUsage.customer_id == customer_id,
                CustomerRightUsage.active_count < limit,
            )
            .values(
                active_count=CustomerRightUsage.active_count + 1,
                issued_total=CustomerRightUsage.issued_total + 1,
            )
            .returning(CustomerRightUsage.issued_total)
            .execution_options(synchronize_session=False)
        )
        seq = self._session.execute(stmt).scalar_one_or_none()
        return None if seq is None else int(seq)

    def release(self, right_id: str, customer_id: str) -> None:
        """One holding of the customer ended (released, expired, reversed)."""
        stmt = (
            update(CustomerRightUsage)
            .where(CustomerRightUsage.right_id == right_id, CustomerRightUsage.customer_id == customer_id)
            .values(active_count=CustomerRightUsage.active_count - 1)
            .execution_options(synchronize_session=False)
        )
        if int(self._session.execute(stmt).rowcount) != 1:  # type: ignore[attr-defined]
            raise RuntimeError("usage counter missing for a holding being released")

    def all_for(self, right_id: str) -> list[CustomerRightUsage]:
        """Every customer's counter of one right."""
        stmt = select(CustomerRightUsage).where(CustomerRightUsage.right_id == right_id)
        return list(self._session.scalars(stmt))


class ReservationRepository:
    """Holds on budget."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def get(self, reservation_id: str) -> Reservation | None:
        """The reservation as stored now, or None."""
        return self._session.get(Reservation, reservation_id, populate_existing=True)

    def add(self, reservation: Reservation) -> None:
        """Insert a new reservation."""
        self._session.add(reservation)
        self._session.flush()

    def close(
        self, reservation_id: str, *, to: str, now: datetime, require_unexpired: bool
    ) -> Reservation | None:
        """Move a held reservation to ``to``; None if it is no longer held (or expired, when required).

        Conditional on ``status = 'held'``, so a grant and the expiry job cannot both close one hold.
        """
        stmt = update(Reservation).where(
            Reservation.reservation_id == reservation_id, Reservation.status == "held"
        )
        if require_unexpired:
            stmt = stmt.where(Reservation.expires_at > now)
        stmt = stmt.values(status=to, closed_at=now).execution_options(synchronize_session=False)
        if int(self._session.execute(stmt).rowcount) != 1:  # type: ignore[attr-defined]
            return None
        return self.get(reservation_id)

    def due(self, now: datetime, limit: int) -> list[str]:
        """Ids of holds past their expiry, oldest first."""
        stmt = (
            select(Reservation.reservation_id)
            .where(Reservation.status == "held", Reservation.expires_at <= now)
            .order_by(Reservation.expires_at)
            .limit(limit)
        )
        return list(self._session.scalars(stmt))

    def count_by_status(self, right_id: str) -> dict[str, int]:
        """How many reservations of the right are in each status."""
        stmt = (
            select(Reservation.status, func.count())
            .where(Reservation.right_id == right_id)
            .group_by(Reservation.status)
        )
        return {str(status): int(n) for status, n in self._session.execute(stmt)}


class GrantRepository:
    """Granted rights."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def get(self, grant_id: str) -> Grant | None:
        """The grant as stored now, or None."""
        return self._session.get(Grant, grant_id, populate_existing=True)

    def add(self, grant: Grant) -> None:
        """Insert a new grant (the unique constraints refuse a second grant of one hold or sequence)."""
        self._session.add(grant)
        self._session.flush()

    def move(
        self,
        grant_id: str,
        *,
        from_status: str,
        to: str,
        now: datetime,
        values: dict[str, Any] | None = None,
        require_unexpired: bool = False,
    ) -> Grant | None:
        """Move a grant from ``from_status`` to ``to``; None if it is no longer in ``from_status``."""
        stmt = update(Grant).where(Grant.grant_id == grant_id, Grant.status == from_status)
        if require_unexpired:
            stmt = stmt.where(Grant.expires_at > now)
        stmt = stmt.values(status=to, **(values or {})).execution_options(synchronize_session=False)
        if int(self._session.execute(stmt).rowcount) != 1:  # type: ignore[attr-defined]
            return None
        return self.get(grant_id)

    def due(self, now: datetime, limit: int) -> list[str]:
        """Ids of granted, unredeemed rights past their redemption deadline."""
        stmt = (
            select(Grant.grant_id)
            .where(Grant.status == "granted", Grant.expires_at <= now)
            .order_by(Grant.expires_at)
            .limit(limit)
        )
        return list(self._session.scalars(stmt))

    def for_customer(
        self, customer_id: str, *, statuses: Sequence[str] = (), right_id: str | None = None
    ) -> list[Grant]:
        """A customer's grants, newest first."""
        stmt = select(Grant).where(Grant.customer_id == customer_id)
        if statuses:
            stmt = stmt.where(Grant.status.in_(statuses))
        if right_id is not None:
            stmt = stmt.where(Grant.right_id == right_id)
        return list(self._session.scalars(stmt.order_by(Grant.granted_at.desc(), Grant.grant_id)))

    def count_by_status(self, right_id: str) -> dict[str, int]:
        """How many grants of the right are in each status."""
        stmt = select(Grant.status, func.count()).where(Grant.right_id == right_id).group_by(Grant.status)
        return {str(status): int(n) for status, n in self._session.execute(stmt)}
