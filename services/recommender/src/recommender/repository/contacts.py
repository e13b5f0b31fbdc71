"""Contact history, exact contact caps and cool-downs.

A decision takes its contact slot with :meth:`ContactRepository.reserve`: in one transaction it locks
the customer's ``contact_counters`` row, counts the customer's earlier decisions in every sliding window
from ``contact_events`` timestamps, and records the new one only if no window is full. The lock is
what makes the caps exact: on PostgreSQL ``SELECT … FOR UPDATE`` on the counter row (created by an
``INSERT … ON CONFLICT DO NOTHING`` that itself waits for a concurrent creator) serialises concurrent
reservations of one customer, and under READ COMMITTED the count that follows the lock sees every
reservation committed before it; on SQLite the transaction began with ``BEGIN IMMEDIATE`` (see
``recommender.database``), which holds the database's write lock throughout. Reservations of
different customers do not wait for each other on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from qianmian_core.db import dialect_insert, insert_ignoring_conflicts
from sqlalchemy import select
from sqlalchemy.orm import Session

from recommender.models import CONTACT_KINDS, ContactCounter, ContactEvent, Cooldown


class CapLike(Protocol):
    """A sliding-window cap (``recommender.service.policies.CapWindow`` is one)."""

    @property
    def code(self) -> str: ...
    @property
    def window(self) -> timedelta: ...
    @property
    def limit(self) -> int: ...
    @property
    def channels(self) -> frozenset[str] | None: ...


@dataclass(frozen=True, slots=True)
class Reservation:
    """The outcome of a slot reservation: granted, or the codes of the full windows."""

    granted: bool
    blocked_by: tuple[str, ...]
    #: Decisions already in each cap's window before this one (by cap code; the fullest of a code).
    counts: dict[str, int]


def _applies(cap: CapLike, channel: str) -> bool:
    return cap.channels is None or channel in cap.channels


class ContactRepository:
    """Queries on the contact tables inside the caller's session (one transaction)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def _lock_customer(self, customer_id: str) -> ContactCounter:
        self.session.execute(
            insert_ignoring_conflicts(
                self.session,
                ContactCounter,
                {"customer_id": customer_id, "contacts": 0, "last_contact_at": None},
                index_elements=["customer_id"],
            )
        )
        return self.session.execute(
            select(ContactCounter)
            .where(ContactCounter.customer_id == customer_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        ).scalar_one()

    def decision_times(self, customer_id: str, since: datetime) -> list[tuple[str, datetime]]:
        """``(channel, at)`` of the customer's decisions after ``since`` (oldest first)."""
        rows = self.session.execute(
            select(ContactEvent.channel, ContactEvent.at)
            .where(
                ContactEvent.customer_id == customer_id,
                ContactEvent.kind == "decision",
                ContactEvent.at > since,
            )
            .order_by(ContactEvent.at)
        ).all()
        return [(str(channel), at) for channel, at in rows]

    def reserve(
        self,
        customer_id: str,
        channel: str,
        at: datetime,
        caps: Sequence[CapLike],
        *,
        decision_id: str,
        product_id: str | None = None,
    ) -> Reservation:
        """Take a contact slot for a decision in ``channel`` at ``at`` if every applicable cap allows it.

        Must run in a transaction of its own that commits right after (``ContactService`` does): the
        lock is held until then. Refused reservations record nothing.
        """
        counter = self._lock_customer(customer_id)
        applicable = [cap for cap in caps if _applies(cap, channel)]
        counts: dict[str, int] = {}
        blocked: list[str] = []
        if applicable:
            history = self.decision_times(customer_id, at - max(cap.window for cap in applicable))
            for cap in applicable:
                since = at - cap.window
                # Later-stamped decisions (another pod's clock) count too: a cap must never be passed.
                n = sum(1 for ch, when in history if when > since and _applies(cap, ch))
                counts[cap.code] = max(n, counts.get(cap.code, 0))
                if n >= cap.limit and cap.code not in blocked:
                    blocked.append(cap.code)
        if blocked:
            return Reservation(granted=False, blocked_by=tuple(blocked), counts=counts)
        self.session.add(
            ContactEvent(
                customer_id=customer_id,
                channel=channel,
                product_id=product_id,
                decision_id=decision_id,
                kind="decision",
                at=at,
            )
        )
        counter.contacts += 1
        counter.last_contact_at = at
        self.session.flush()
        return Reservation(granted=True, blocked_by=(), counts=counts)

    def record(
        self,
        customer_id: str,
        channel: str,
        kind: str,
        at: datetime,
        *,
        product_id: str | None = None,
        decision_id: str | None = None,
    ) -> None:
        """Append a feedback event (impression, click, dismiss …) to the history."""
        if kind not in CONTACT_KINDS or kind == "decision":
            raise ValueError(f"not a feedback kind: {kind!r}")
        self.session.add(
            ContactEvent(
                customer_id=customer_id,
                channel=channel,
                product_id=product_id,
                decision_id=decision_id,
                kind=kind,
                at=at,
            )
        )
        self.session.flush()

    def start_cooldown(
        self, customer_id: str, product_id: str, until: datetime, *, reason: str, decision_id: str | None
    ) -> datetime:
        """Keep ``product_id`` away from the customer until ``until`` (an existing later end is kept).

        Returns the cool-down's end as stored now. The "never shorten" test is in the upsert's
        ``WHERE``, so two concurrent dismisses cannot shorten each other's cool-down.
        """
        insert = dialect_insert(self.session, Cooldown).values(
            customer_id=customer_id,
            product_id=product_id,
            until=until,
            reason=reason,
            decision_id=decision_id,
        )
        self.session.execute(
            insert.on_conflict_do_update(
                index_elements=["customer_id", "product_id"],
                set_={"until": until, "reason": reason, "decision_id": decision_id},
                where=Cooldown.until < insert.excluded.until,
            )
        )
        stored = self.session.get(Cooldown, (customer_id, product_id), populate_existing=True)
        assert stored is not None, "the upsert leaves a row"
        return stored.until

    def active_cooldowns(self, customer_id: str, at: datetime) -> dict[str, datetime]:
        """Product id → end of its cool-down, for the cool-downs still running at ``at``."""
        rows = self.session.execute(
            select(Cooldown.product_id, Cooldown.until).where(
                Cooldown.customer_id == customer_id, Cooldown.until > at
            )
        ).all()
        return {str(product_id): until for product_id, until in rows}
