"""The change feed: which customers changed, in sequence order, for caches of profile's answers.

Every write that can change what ``GET /v1/customers/{id}/eligibility-facts`` or ``/consents``
answer, or the customer's activity features, calls :func:`record` in its own transaction, right
before it commits: a rolled-back change leaves no row. The kinds in use today:

========  =====================================================================
consent   ``PUT /consents`` (also when no value changed: ``updated_at`` moves)
risk      ``PUT /risk-assessment``
moment    ``POST /v1/events`` (not a replay): lifecycle stage, tags, activity
contact   ``POST /contacts``: activity features
holdings  reserved: profile has no holdings write path outside seeding yet
profile   reserved: profile has no customer create/update path outside seeding yet
========  =====================================================================

Seeding (``profile-service seed``) writes no change rows: it replaces the whole schema, change
feed included, and predates any cache; a cache built before a re-seed must be rebuilt from
``GET /v1/customers/facts``.

Ordering. ``seq`` is taken when the row is inserted, not when its transaction commits. On SQLite
the single writer holds the write lock from that insert to its commit, so rows become visible in
``seq`` order. On PostgreSQL two writers can commit out of order: ``seq`` 11 can be visible while
``seq`` 10 is still in flight (or rolled back, leaving a permanent gap). :func:`feed` therefore
stops at a gap in the sequence while the row after the gap is younger than the *settle* window
(``PROFILE_CHANGES_SETTLE_SECONDS``, 2 s by default): after that long the missing number is taken
to be rolled back. Guarantee: a reader that follows ``next_after`` sees every committed change,
provided each writer commits within the settle window of inserting its change row (writers insert
it just before they commit) and the clocks of the service's replicas agree to well within it.
A gap-free feed, the normal case, is returned at once; only a gap delays what follows it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy.orm import Session

from profile_service.models import CustomerChange
from profile_service.repository import changes as change_repo
from profile_service.schemas import CHANGE_KINDS, ChangeFeed, ChangeKind, ChangeOut
from profile_service.service.clock import utcnow

KINDS: Final = frozenset(CHANGE_KINDS)


def record(session: Session, customer_id: str, kind: ChangeKind) -> None:
    """Append a change of ``customer_id`` to the feed, in the caller's transaction.

    Call it last before the commit: the time from this insert to the commit is what the settle
    window must cover.
    """
    if kind not in KINDS:  # a typo in a caller must fail its transaction, not feed garbage
        raise ValueError(f"unknown change kind {kind!r}")
    change_repo.add(session, customer_id, kind, utcnow())


def settled(rows: Sequence[CustomerChange], after: int, cutoff: datetime) -> Sequence[CustomerChange]:
    """The leading rows that are safe to hand out: stop at a gap in ``seq`` whose next row is
    newer than ``cutoff`` (the missing number may still commit)."""
    expected = after + 1
    for index, row in enumerate(rows):
        if row.seq != expected and row.at > cutoff:
            return rows[:index]
        expected = row.seq + 1
    return rows


def feed(session: Session, after: int, limit: int, settle: timedelta) -> ChangeFeed:
    """Changes with ``seq > after`` in ``seq`` order (see the module docstring for the guarantee).

    ``next_after`` is the last returned ``seq`` (``after`` when none); ``head`` the highest ``seq``
    committed (0 for an empty feed), which can be ahead of what is returned while a gap settles.
    """
    rows = settled(change_repo.after(session, after, limit), after, utcnow() - settle)
    head = change_repo.head(session)  # read after the rows: never behind them
    return ChangeFeed(
        changes=[ChangeOut(seq=r.seq, customer_id=r.customer_id, kind=r.kind, at=r.at) for r in rows],
        next_after=rows[-1].seq if rows else after,
        head=head,
    )
