"""Consent changes: effective immediately, every change kept in the history."""

from __future__ import annotations

from qianmian_core.logging import get_logger
from sqlalchemy.orm import Session

from profile_service.models import ConsentChange
from profile_service.repository import customers as customer_repo
from profile_service.schemas import ConsentChangeOut, ConsentHistory, ConsentState, ConsentUpdate
from profile_service.service import changes, profiles
from profile_service.service.clock import utcnow

log = get_logger(__name__)


def update(session: Session, customer_id: str, change: ConsentUpdate, actor: str) -> ConsentState:
    """Apply the changes; a value equal to the current one is not recorded as a change."""
    profiles.require_customer(session, customer_id, for_update=True)
    now = utcnow()
    changed: dict[str, bool] = {}
    for channel, granted in change.changes().items():
        old = customer_repo.set_consent(session, customer_id, channel, granted, now)
        if old == granted:
            continue
        changed[channel] = granted
        customer_repo.add_consent_change(
            session,
            ConsentChange(
                customer_id=customer_id,
                channel=channel,
                old_value=old,
                new_value=granted,
                reason=change.reason,
                actor=actor,
                changed_at=now,
            ),
        )
    session.flush()
    state = profiles.consent_state(session, customer_id)
    # Also when no value changed: every channel given gets a new ``updated_at``.
    changes.record(session, customer_id, "consent")
    session.commit()
    log.info("consent_changed", customer_id=customer_id, actor=actor, changes=changed)
    return state


def current(session: Session, customer_id: str) -> ConsentState:
    """Current consent of the customer."""
    profiles.ensure_customer(session, customer_id)
    return profiles.consent_state(session, customer_id)


def history(session: Session, customer_id: str, limit: int) -> ConsentHistory:
    """Consent changes, newest first."""
    profiles.ensure_customer(session, customer_id)
    return ConsentHistory(
        items=[
            ConsentChangeOut(
                channel=row.channel,
                old_value=row.old_value,
                new_value=row.new_value,
                reason=row.reason,
                actor=row.actor,
                changed_at=row.changed_at,
            )
            for row in customer_repo.consent_history(session, customer_id, limit)
        ]
    )
