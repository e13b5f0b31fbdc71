"""Ingestion of moments: validate, store idempotently, recompute the profile, queue the features."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import orjson
from qianmian_core.errors import ConflictError
from qianmian_core.logging import get_logger
from qianmian_core.masking import mask_value
from sqlalchemy.orm import Session

from profile_service.models import Event
from profile_service.repository import events as event_repo
from profile_service.schemas import EventIn, EventIngested, EventList
from profile_service.service import changes, feature_sync, profiles
from profile_service.service.activity import FeaturePusher
from profile_service.service.clock import utcnow

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class IngestResult:
    """The answer and whether it was a replay of an earlier ingestion."""

    body: EventIngested
    replayed: bool


def body_hash(event: EventIn) -> str:
    """Digest of the event as sent (normalised), to tell a replay from a reused id."""
    canonical = event.model_dump(mode="json")
    canonical["occurred_at"] = event.occurred_at.timestamp()
    return hashlib.sha256(orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _replay(session: Session, existing: Event, digest: str) -> IngestResult:
    if existing.body_hash != digest:
        raise ConflictError(
            "event id already used for a different event",
            code="event_id_conflict",
            details={"event_id": existing.event_id},
        )
    customer = profiles.require_customer(session, existing.customer_id)
    body = EventIngested(
        event=profiles.event_out(existing),
        replayed=True,
        lifecycle_stage=customer.lifecycle_stage,
        tags=list(customer.tags),
        clv=customer.clv,
    )
    return IngestResult(body, replayed=True)


def ingest(session: Session, event: EventIn, pusher: FeaturePusher, batch_size: int = 500) -> IngestResult:
    """Store the moment, recompute the customer, commit, and push the customer's features.

    Same ``event_id`` and same body: the earlier answer (a replay). Same id, other body: 409.
    """
    digest = body_hash(event)
    existing = event_repo.get(session, event.event_id)
    if existing is not None:
        return _replay(session, existing, digest)
    customer = profiles.require_customer(session, event.customer_id, for_update=True)
    now = utcnow()
    # Attributes are free-form: an identifier typed into one must not be stored, pushed or logged.
    attributes = mask_value(dict(event.attributes))
    stored = Event(
        event_id=event.event_id,
        customer_id=event.customer_id,
        event_type=event.event_type,
        occurred_at=event.occurred_at,
        amount=event.amount,
        attributes=attributes,
        body_hash=digest,
        received_at=now,
    )
    if not event_repo.add_if_new(session, stored):
        # A concurrent request stored the same id between our read and our insert.
        existing = event_repo.get(session, event.event_id)
        if existing is None:  # pragma: no cover - the conflicting row is committed by now
            raise ConflictError("event id is being ingested", code="event_id_conflict")
        return _replay(session, existing, digest)
    profiles.recompute(session, customer, now)
    feature_sync.enqueue_activity(session, customer.customer_id, now)
    changes.record(session, customer.customer_id, "moment")
    feature_sync.commit_and_push(session, pusher, batch_size)
    log.info(
        "event_ingested",
        customer_id=customer.customer_id,
        event_id=event.event_id,
        event_type=event.event_type,
        attributes=attributes,
        lifecycle_stage=customer.lifecycle_stage,
    )
    body = EventIngested(
        event=profiles.event_out(stored),
        replayed=False,
        lifecycle_stage=customer.lifecycle_stage,
        tags=list(customer.tags),
        clv=customer.clv,
    )
    return IngestResult(body, replayed=False)


def recent(session: Session, customer_id: str, limit: int) -> EventList:
    """The customer's latest moments."""
    profiles.ensure_customer(session, customer_id)
    return EventList(items=[profiles.event_out(e) for e in event_repo.recent(session, customer_id, limit)])
