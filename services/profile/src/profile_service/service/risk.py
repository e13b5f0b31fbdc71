"""Risk assessments: append-only; the latest recorded one is current until it expires."""

from __future__ import annotations

from qianmian_core.logging import get_logger
from sqlalchemy.orm import Session

from profile_service.models import RiskAssessment
from profile_service.repository import customers as customer_repo
from profile_service.schemas import RiskAssessmentIn, RiskAssessmentOut
from profile_service.service import changes, profiles
from profile_service.service.clock import utcnow

log = get_logger(__name__)


def record(session: Session, customer_id: str, assessment: RiskAssessmentIn, actor: str) -> RiskAssessmentOut:
    """Record a new assessment; it becomes the current one."""
    profiles.require_customer(session, customer_id, for_update=True)
    now = utcnow()
    row = RiskAssessment(
        customer_id=customer_id,
        level=assessment.level,
        assessed_at=assessment.assessed_at,
        expires_at=assessment.expires_at,
        source=assessment.source,
        recorded_at=now,
        actor=actor,
    )
    customer_repo.add_risk(session, row)
    out = profiles.risk_out(row, now)
    assert out is not None
    changes.record(session, customer_id, "risk")
    session.commit()
    log.info("risk_assessed", customer_id=customer_id, level=row.level, valid=out.valid, actor=actor)
    return out


def current(session: Session, customer_id: str) -> RiskAssessmentOut | None:
    """The current assessment (None when never assessed)."""
    profiles.ensure_customer(session, customer_id)
    return profiles.risk_out(customer_repo.current_risk(session, customer_id), utcnow())
