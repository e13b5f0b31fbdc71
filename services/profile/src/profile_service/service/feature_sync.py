"""Keeps Feast's ``customer_activity`` fresh through an outbox.

A change commits together with an outbox row holding the recomputed feature row; the push
happens after the commit. A failed push leaves the row queued for the next flush (the next
write, or ``profile-service flush-outbox``), so a Feast outage never loses a change.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from prometheus_client import Counter
from qianmian_core.logging import get_logger
from sqlalchemy.orm import Session

from profile_service.repository import events as event_repo
from profile_service.repository import outbox as outbox_repo
from profile_service.service.activity import ContactFact, FeaturePusher, MomentFact, activity_row

log = get_logger(__name__)

PUSHED = Counter("qianmian_profile_feature_pushes_total", "Customer activity rows pushed to Feast")
PUSH_FAILURES = Counter(
    "qianmian_profile_feature_push_failures_total", "Failed pushes to Feast (rows stay in the outbox)"
)


def enqueue_activity(session: Session, customer_id: str, as_of: datetime) -> dict[str, object]:
    """Compute the customer's activity row at ``as_of`` and queue it (in the caller's transaction)."""
    start = as_of - timedelta(days=30)
    moments = [MomentFact(e.event_type, e.occurred_at) for e in event_repo.since(session, customer_id, start)]
    last = event_repo.last(session, customer_id)
    if last is not None and last.occurred_at < start:
        moments.append(MomentFact(last.event_type, last.occurred_at))
    contacts = [
        ContactFact(action, at)
        for action, at in event_repo.contact_actions_since(session, customer_id, start)
    ]
    row = activity_row(customer_id, moments, contacts, as_of)
    outbox_repo.add(session, customer_id, row, as_of)
    return row


def commit_and_push(session: Session, pusher: FeaturePusher, batch_size: int = 500) -> None:
    """Commit the change with its outbox row, then push what is queued (never failing the request)."""
    session.commit()
    try:
        flush(session, pusher, batch_size)
    except Exception as exc:  # the change is durable; the outbox keeps the rows for the next flush
        session.rollback()
        log.warning("feature_flush_failed", error_type=type(exc).__name__)


def flush(session: Session, pusher: FeaturePusher, batch_size: int = 500) -> int:
    """Push queued rows (latest per customer) and commit; return how many rows were pushed.

    On failure the rows stay queued with their attempt counted, and 0 is returned.
    """
    total = 0
    while True:
        rows = outbox_repo.pending(session, batch_size)
        if not rows:
            return total
        latest: dict[str, dict[str, object]] = {}
        for row in rows:  # oldest first: later rows of a customer replace earlier ones
            latest[row.customer_id] = row.payload
        ids = [row.id for row in rows]
        try:
            pusher.push_customer_activity(list(latest.values()))
        except Exception as exc:
            session.rollback()
            outbox_repo.mark_failed(session, ids, type(exc).__name__)
            session.commit()
            PUSH_FAILURES.inc(len(latest))
            log.warning("feature_push_failed", rows=len(latest), error_type=type(exc).__name__)
            return total
        outbox_repo.remove(session, ids)
        session.commit()
        PUSHED.inc(len(latest))
        total += len(latest)
        if len(rows) < batch_size:
            return total
