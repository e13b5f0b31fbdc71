"""Queries on customers, their identifiers, holdings, risk assessments and consent."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from profile_service.models import (
    Consent,
    ConsentChange,
    Customer,
    CustomerPii,
    Holding,
    RiskAssessment,
)


def get(session: Session, customer_id: str, *, for_update: bool = False) -> Customer | None:
    """The customer, optionally locked for the rest of the transaction (PostgreSQL)."""
    stmt = select(Customer).where(Customer.customer_id == customer_id)
    if for_update:
        stmt = stmt.with_for_update()
    return session.scalars(stmt).one_or_none()


def exists(session: Session, customer_id: str) -> bool:
    """True when the customer exists."""
    stmt = select(Customer.customer_id).where(Customer.customer_id == customer_id)
    return session.scalar(stmt) is not None


def pii(session: Session, customer_id: str) -> CustomerPii | None:
    """The customer's personal identifiers (unmasked: mask before they leave the service)."""
    return session.get(CustomerPii, customer_id)


def holdings(session: Session, customer_id: str) -> Sequence[Holding]:
    """Held products, largest first."""
    stmt = (
        select(Holding)
        .where(Holding.customer_id == customer_id)
        .order_by(Holding.amount.desc(), Holding.product_id)
    )
    return session.scalars(stmt).all()


def holdings_count(session: Session, customer_id: str) -> int:
    """How many products the customer holds."""
    stmt = select(func.count()).select_from(Holding).where(Holding.customer_id == customer_id)
    return int(session.scalar(stmt) or 0)


def current_risk(session: Session, customer_id: str) -> RiskAssessment | None:
    """The latest recorded risk assessment."""
    stmt = (
        select(RiskAssessment)
        .where(RiskAssessment.customer_id == customer_id)
        .order_by(RiskAssessment.recorded_at.desc(), RiskAssessment.id.desc())
        .limit(1)
    )
    return session.scalars(stmt).first()


def add_risk(session: Session, assessment: RiskAssessment) -> None:
    """Append a risk assessment."""
    session.add(assessment)
    session.flush()


def consents(session: Session, customer_id: str) -> Sequence[Consent]:
    """Current consent rows of the customer."""
    stmt = select(Consent).where(Consent.customer_id == customer_id).order_by(Consent.channel)
    return session.scalars(stmt).all()


def set_consent(session: Session, customer_id: str, channel: str, granted: bool, at: datetime) -> bool | None:
    """Set one channel's consent; return the previous value (None when never recorded)."""
    row = session.get(Consent, (customer_id, channel))
    if row is None:
        session.add(Consent(customer_id=customer_id, channel=channel, granted=granted, updated_at=at))
        return None
    old = row.granted
    row.granted = granted
    row.updated_at = at
    return old


def add_consent_change(session: Session, change: ConsentChange) -> None:
    """Append a consent-history entry."""
    session.add(change)


def consent_history(session: Session, customer_id: str, limit: int) -> Sequence[ConsentChange]:
    """Consent changes, newest first."""
    stmt = (
        select(ConsentChange)
        .where(ConsentChange.customer_id == customer_id)
        .order_by(ConsentChange.changed_at.desc(), ConsentChange.id.desc())
        .limit(limit)
    )
    return session.scalars(stmt).all()
