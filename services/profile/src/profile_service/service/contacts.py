"""Contact history: what was shown to a customer where and when (written by the recommender)."""

from __future__ import annotations

from datetime import datetime

from qianmian_core.logging import get_logger
from sqlalchemy.orm import Session

from profile_service.models import ContactHistory
from profile_service.repository import events as event_repo
from profile_service.schemas import ContactIn, ContactList, ContactOut
from profile_service.service import changes, feature_sync, profiles
from profile_service.service.activity import FeaturePusher
from profile_service.service.clock import utcnow

log = get_logger(__name__)


def _out(row: ContactHistory) -> ContactOut:
    return ContactOut(
        id=row.id,
        channel=row.channel,
        placement=row.placement,
        product_id=row.product_id,
        content_id=row.content_id,
        decision_id=row.decision_id,
        action=row.action,
        at=row.at,
    )


def record(
    session: Session, customer_id: str, contact: ContactIn, pusher: FeaturePusher, batch_size: int = 500
) -> ContactOut:
    """Append the contact, commit, and push the customer's refreshed activity features."""
    profiles.ensure_customer(session, customer_id)
    row = ContactHistory(customer_id=customer_id, **contact.model_dump())
    event_repo.add_contact(session, row)
    feature_sync.enqueue_activity(session, customer_id, utcnow())
    out = _out(row)
    changes.record(session, customer_id, "contact")
    feature_sync.commit_and_push(session, pusher, batch_size)
    log.info("contact_recorded", customer_id=customer_id, channel=row.channel, action=out.action)
    return out


def list_contacts(
    session: Session, customer_id: str, channel: str | None, since: datetime | None, limit: int
) -> ContactList:
    """Contacts, newest first."""
    profiles.ensure_customer(session, customer_id)
    rows = event_repo.contacts(session, customer_id, channel=channel, start=since, limit=limit)
    return ContactList(items=[_out(row) for row in rows])
