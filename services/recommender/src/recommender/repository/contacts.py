"""Contact history, exact contact caps and cool-downs.

A decision takes its contact slot with :meth:`ContactRepository.reserve`: in one transaction it locks
the customer, counts the customer's earlier decisions in every sliding window from ``contact_events``
timestamps, and records the new one only if no window is full. The lock is what makes the caps exact:
on PostgreSQL ``SELECT … FOR UPDATE`` on the customer's ``contact_locks`` row (created by an
``INSERT … ON CONFLICT DO NOTHING`` that itself waits for a concurrent creator) serialises concurrent
reservations of one customer, and under READ COMMITTED the count that follows the lock sees every
reservation committed before it; on SQLite the transaction began with ``BEGIN IMMEDIATE`` (see
``recommender.database``), which holds the database's write lock throughout, so no lock row is
written there. Reservations of different customers do not wait for each other on PostgreSQL.

Outbound lists take many slots at once with :meth:`ContactRepository.reserve_many` (the same check
under the same locks, for a batch of customers in one transaction) and read many customers' windows
and cool-downs with :meth:`ContactRepository.contact_windows` (one query per page of customers).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Protocol

from qianmian_core.db import UTCDateTime, begins_immediate, dialect_insert
from sqlalchemy import (
    BindParameter,
    Executable,
    Table,
    bindparam,
    func,
    insert,
    literal,
    select,
    union_all,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from recommender.models import CONTACT_KINDS, ContactEvent, ContactLock, Cooldown


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
    #: Offered products under a cool-down the decision did not know of (:meth:`ContactRepository.settle`):
    #: nothing was recorded and the decision must be made again.
    cooling: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        """The audit record's ``features.contact_reservation`` entry."""
        return {"granted": self.granted, "blocked_by": list(self.blocked_by), "counts": dict(self.counts)}


def _as_utc_time(value: datetime | str) -> datetime:
    """An aggregate's timestamp as an aware UTC datetime (SQLite may hand MAX() back as text)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _applies(cap: CapLike, channel: str) -> bool:
    return cap.channels is None or channel in cap.channels


def decisions_in_window(history: Iterable[tuple[str, datetime]], cap: CapLike, at: datetime) -> int:
    """How many of ``history``'s ``(channel, at)`` decisions fall in ``cap``'s sliding window ending at
    ``at``, in the channels it covers. Later-stamped decisions (another pod's clock) count too: a cap
    must never be passed.

    The one count behind the policies' caps (``ContactState.count``) and the writer's settlement. A
    plain loop: every decision counts each cap of its channel over the customer's history, and a
    generator with a call per record cost three times as much.
    """
    since = at - cap.window
    channels = cap.channels
    counted = 0
    if channels is None:
        for _, when in history:
            if when > since:
                counted += 1
    else:
        for channel, when in history:
            if when > since and channel in channels:
                counted += 1
    return counted


def _full_windows(
    history: Sequence[tuple[str, datetime]], caps: Sequence[CapLike], at: datetime
) -> tuple[tuple[str, ...], dict[str, int]]:
    """The codes of the full windows among ``caps`` (the ones that apply) at ``at``, and the counts.

    The one check behind :meth:`ContactRepository.reserve` and :meth:`ContactRepository.reserve_many`.
    """
    counts: dict[str, int] = {}
    blocked: list[str] = []
    for cap in caps:
        n = decisions_in_window(history, cap, at)
        counts[cap.code] = max(n, counts.get(cap.code, 0))
        if n >= cap.limit and cap.code not in blocked:
            blocked.append(cap.code)
    return tuple(blocked), counts


@dataclass(frozen=True, slots=True)
class SlotRequest:
    """One contact slot asked for in a batch reservation (an outbound list's row)."""

    customer_id: str
    channel: str
    at: datetime
    decision_id: str
    product_id: str | None = None


@dataclass(frozen=True, slots=True)
class ContactWindow:
    """A customer's decisions (``(channel, at)``, oldest first), running cool-downs and the products
    the customer saw (impressions reported through feedback: product id → the latest)."""

    decisions: list[tuple[str, datetime]]
    cooldowns: dict[str, datetime]
    shown: dict[str, datetime] = field(default_factory=dict)


def _windows_statement(with_cooldowns: bool) -> Executable:
    """The query behind :meth:`ContactRepository.contact_windows`, built once: it runs in every group
    commit of the decision path, where building and cache-keying a fresh statement cost ~1 ms, 30 times
    what SQLite takes to answer it. Parameters ``ids`` (expanding), ``since`` and ``at``."""
    ids: BindParameter[list[str]] = bindparam("ids", expanding=True)
    since = bindparam("since", type_=UTCDateTime())
    decisions = select(
        ContactEvent.customer_id,
        literal("decision").label("part"),
        ContactEvent.channel.label("key"),
        ContactEvent.at.label("at"),
    ).where(ContactEvent.customer_id.in_(ids), ContactEvent.kind == "decision", ContactEvent.at > since)
    shown = (
        select(
            ContactEvent.customer_id,
            literal("shown"),
            ContactEvent.product_id,
            func.max(ContactEvent.at),
        )
        .where(
            ContactEvent.customer_id.in_(ids),
            ContactEvent.kind == "impression",
            ContactEvent.at > since,
            ContactEvent.product_id.is_not(None),
        )
        .group_by(ContactEvent.customer_id, ContactEvent.product_id)
    )
    if not with_cooldowns:
        return union_all(decisions, shown)
    at = bindparam("at", type_=UTCDateTime())
    cooldowns = select(Cooldown.customer_id, literal("cooldown"), Cooldown.product_id, Cooldown.until).where(
        Cooldown.customer_id.in_(ids), Cooldown.until > at
    )
    return union_all(decisions, shown, cooldowns)


_WINDOWS: Final = _windows_statement(with_cooldowns=False)
_WINDOWS_AND_COOLDOWNS: Final = _windows_statement(with_cooldowns=True)
#: Record a batch's granted slots (Core executemany on the table).
_EVENTS: Final[Table] = ContactEvent.__table__  # type: ignore[assignment]
_INSERT_EVENTS: Final = insert(_EVENTS)
#: Lock a batch's customers' rows in customer id order (parameter ``ids``, expanding).
_LOCK_CUSTOMERS: Final = (
    select(ContactLock.customer_id)
    .where(ContactLock.customer_id.in_(bindparam("ids", expanding=True)))
    .order_by(ContactLock.customer_id)
    .with_for_update()
)
#: ``INSERT … ON CONFLICT DO NOTHING`` of lock rows, on the dialects that lock rows.
_CREATE_LOCKS: Final = {
    "postgresql": postgresql.insert(ContactLock).on_conflict_do_nothing(index_elements=["customer_id"]),
}
#: Dialects whose transactions hold the whole database's write lock (``BEGIN IMMEDIATE``, checked).
_SERIAL_DIALECTS: Final = frozenset({"sqlite"})


def settle_since(slots: Sequence[SlotRequest], caps: Sequence[Sequence[CapLike]]) -> datetime:
    """How far back :meth:`ContactRepository.settle` needs the customers' decisions: the longest of
    the slots' cap windows before the earliest slot."""
    earliest = min(slot.at for slot in slots)
    windows_needed = [cap.window for slot_caps in caps for cap in slot_caps]
    return earliest - max(windows_needed, default=timedelta(0))


class ContactRepository:
    """Queries on the contact tables inside the caller's session (one transaction)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def _lock(self, customer_ids: Sequence[str]) -> None:
        """Serialise this transaction with every other reservation of these customers: their lock rows
        are created if missing and locked in customer id order (two batches cannot deadlock). Nothing
        to do on SQLite, whose transaction holds the database's write lock from its start."""
        connection = self.session.connection()
        dialect = connection.dialect.name
        if dialect in _SERIAL_DIALECTS:
            # The transaction already holds the write lock, but only if it began IMMEDIATE: a deferred
            # one would read the counts before taking it. Refused rather than assumed.
            if not begins_immediate(connection.engine):
                raise RuntimeError(
                    "contact caps on SQLite need BEGIN IMMEDIATE transactions "
                    "(open the database with recommender.database.open_database)"
                )
            return
        create = _CREATE_LOCKS.get(dialect)
        if create is None:
            raise NotImplementedError(f"contact caps cannot lock customers on {dialect}")
        ids = sorted(set(customer_ids))
        connection.execute(create, [{"customer_id": c} for c in ids])
        connection.execute(_LOCK_CUSTOMERS, {"ids": ids}).all()

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
        self._lock([customer_id])
        applicable = [cap for cap in caps if _applies(cap, channel)]
        history = (
            self.decision_times(customer_id, at - max(cap.window for cap in applicable)) if applicable else []
        )
        blocked, counts = _full_windows(history, applicable, at)
        if blocked:
            return Reservation(granted=False, blocked_by=blocked, counts=counts)
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
        self.session.flush()
        return Reservation(granted=True, blocked_by=(), counts=counts)

    def reserve_many(self, slots: Sequence[SlotRequest], caps: Sequence[CapLike]) -> list[Reservation]:
        """:meth:`reserve` for many slots in one transaction (outbound lists), one answer per slot.

        The same check as ``reserve``, under the same locks (every customer's, taken in customer id
        order, so two batches cannot deadlock: :meth:`_lock`), the windows are
        counted from one read of the customers' decisions, and each granted slot is recorded before
        the next slot of the same customer is checked. Must run in a transaction that commits right
        after, as ``reserve``.
        """
        return self.settle(slots, [caps] * len(slots))[0]

    def settle(
        self,
        slots: Sequence[SlotRequest],
        caps: Sequence[Sequence[CapLike]],
        offered: Sequence[Sequence[str]] | None = None,
        *,
        known: Mapping[str, tuple[datetime, ContactWindow]] | None = None,
    ) -> tuple[list[Reservation], dict[str, ContactWindow]]:
        """Take many slots at once, each under its own caps, and also check cool-downs: the decision
        path's group commit (and :meth:`reserve_many`).

        ``offered[i]``: the products slot ``i``'s decision offers. One that is under a cool-down now
        (started after the decision read the customer's state, e.g. a dismiss on another replica)
        makes the answer ``cooling``: nothing is recorded for that slot and the decision is made
        again. Returns one reservation per slot and every customer's window after the batch
        (decisions since the longest cap window before the earliest slot, cool-downs running then),
        which callers keep as the customer's authoritative contact state.

        ``known``: windows the caller holds as the database has them now (customer id → the time
        from which the window is complete, and the window; e.g. the audit writer's process, which
        knows no other connection has committed since it settled them; windows settled with
        ``offered``, so with their cool-downs). With ``offered``, a customer's window complete from
        :func:`settle_since` on is used instead of read, filtered as the read filters; the others
        are read.
        """
        if not slots:
            return [], {}
        ids = sorted({slot.customer_id for slot in slots})
        # Core statements on the session's connection (its transaction): the ORM session's execute
        # adds its own layer per statement, the group commit's cost per batch.
        connection = self.session.connection()
        self._lock(ids)
        earliest = min(slot.at for slot in slots)
        since = settle_since(slots, caps)
        windows: dict[str, ContactWindow] = {}
        if known is not None and offered is not None:
            for customer_id in ids:
                held = known.get(customer_id)
                if held is not None and held[0] <= since:  # complete from ``since`` on
                    # what contact_windows would read now: the same filters on a copy
                    window = held[1]
                    windows[customer_id] = ContactWindow(
                        [d for d in window.decisions if d[1] > since],
                        {p: until for p, until in window.cooldowns.items() if until > earliest},
                        {p: last for p, last in window.shown.items() if last > since},
                    )
        missing = [cid for cid in ids if cid not in windows]
        if missing:
            windows.update(self.contact_windows(missing, since, earliest if offered is not None else None))
        events: list[dict[str, object]] = []
        out: list[Reservation] = []
        for i, slot in enumerate(slots):
            window = windows[slot.customer_id]
            if offered is not None:
                cooling = tuple(p for p in offered[i] if window.cooldowns.get(p, slot.at) > slot.at)
                if cooling:
                    out.append(Reservation(granted=False, blocked_by=(), counts={}, cooling=cooling))
                    continue
            applicable = [cap for cap in caps[i] if _applies(cap, slot.channel)]
            history = window.decisions
            blocked, counts = _full_windows(history, applicable, slot.at)
            if blocked:
                out.append(Reservation(granted=False, blocked_by=blocked, counts=counts))
                continue
            history.append((slot.channel, slot.at))
            events.append(
                {
                    "customer_id": slot.customer_id,
                    "channel": slot.channel,
                    "product_id": slot.product_id,
                    "decision_id": slot.decision_id,
                    "kind": "decision",
                    "at": slot.at,
                }
            )
            out.append(Reservation(granted=True, blocked_by=(), counts=counts))
        if events:
            connection.execute(_INSERT_EVENTS, events)
        return out, windows

    def contact_windows(
        self, customer_ids: Sequence[str], since: datetime, at: datetime | None
    ) -> dict[str, ContactWindow]:
        """Many customers' decisions and impressions after ``since`` and cool-downs running at ``at``
        (None: none read), in one query: what :meth:`decision_times` and :meth:`active_cooldowns` give
        for one customer, plus the last impression of each product (the no-repeat rule's input).

        Every customer asked for is in the answer (empty when nothing is recorded).
        """
        out = {cid: ContactWindow([], {}) for cid in customer_ids}
        if not customer_ids:
            return out
        params: dict[str, object] = {"ids": list(out), "since": since}
        if at is not None:
            params["at"] = at
        statement = _WINDOWS_AND_COOLDOWNS if at is not None else _WINDOWS
        rows = self.session.connection().execute(statement, params).all()
        for customer_id, part, key, when in rows:
            window = out[str(customer_id)]
            if part == "decision":
                window.decisions.append((str(key), when))
            elif part == "shown":
                window.shown[str(key)] = _as_utc_time(when)
            else:
                window.cooldowns[str(key)] = when
        for window in out.values():
            window.decisions.sort(key=lambda d: d[1])
        return out

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
