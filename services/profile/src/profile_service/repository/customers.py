"""Queries on customers, their identifiers, holdings, risk assessments and consent."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, Row, Select, String, and_, cast, func, select
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


# --- pages of customers (bulk facts): one query per table for a whole page, never one per customer.
# A page is the customers in (after, last] of a segment (or all): the child queries select them by
# that id range, an index range scan with no list of ids to send. Table columns rather than mapped
# attributes: a plain Core select skips the ORM's per-row loading, which would otherwise cost more
# than the queries themselves on a 100k-customer scan. Child rows (about 12 per customer) are
# streamed, not collected in a list: the caller folds them into per-customer values at once.


def _in_segment(segment: str) -> ColumnElement[bool]:
    # ``segments`` is a JSON array of codes: the quoted code is an element, on SQLite and PostgreSQL.
    return cast(Customer.__table__.c.segments, String).contains(f'"{segment}"', autoescape=True)


def _in_page(
    customer_id: ColumnElement[str], after: str | None, last: str, segment: str | None
) -> ColumnElement[bool]:
    condition = customer_id <= last
    if after is not None:
        condition = and_(condition, customer_id > after)
    if segment is not None:
        c = Customer.__table__.c
        members = select(c.customer_id).where(
            _in_page(c.customer_id, after, last, None), _in_segment(segment)
        )
        condition = and_(condition, customer_id.in_(members))
    return condition


def _facts() -> Select[str, int, float, str, list[str], str]:
    """(customer_id, age, aum, region, segments, lifecycle_stage) of customers, in id order."""
    c = Customer.__table__.c
    return select(c.customer_id, c.age, c.aum, c.region, c.segments, c.lifecycle_stage).order_by(
        c.customer_id
    )


def facts_page(
    session: Session, after: str | None, limit: int, segment: str | None
) -> Sequence[Row[str, int, float, str, list[str], str]]:
    """(customer_id, age, aum, region, segments, lifecycle_stage) of up to ``limit`` customers with
    ``customer_id > after``, in ``customer_id`` order, optionally only those in ``segment``."""
    c = Customer.__table__.c
    stmt = _facts()
    if after is not None:
        stmt = stmt.where(c.customer_id > after)
    if segment is not None:
        stmt = stmt.where(_in_segment(segment))
    return session.execute(stmt.limit(limit)).all()


#: Which customers a bulk read covers, as a condition on a table's ``customer_id`` column.
Scope = Callable[[ColumnElement[str]], ColumnElement[bool]]


def page_scope(after: str | None, last: str, segment: str | None) -> Scope:
    """The customers of a page: those in (after, last] and ``segment``."""
    return lambda column: _in_page(column, after, last, segment)


def ids_scope(customer_ids: Collection[str]) -> Scope:
    """The customers with these ids."""
    ids = sorted(set(customer_ids))
    return lambda column: column.in_(ids)


def holdings_of(session: Session, scope: Scope) -> Iterable[Row[str, str, str]]:
    """(customer_id, product_id, product_type) of the holdings of the customers in ``scope``, per
    customer in the order of :func:`holdings` (largest first)."""
    h = Holding.__table__.c
    stmt = (
        select(h.customer_id, h.product_id, h.product_type)
        .where(scope(h.customer_id))
        .order_by(h.customer_id, h.amount.desc(), h.product_id)
    )
    return session.execute(stmt)


def risks_of(session: Session, scope: Scope) -> Iterable[Row[str, int, datetime]]:
    """(customer_id, level, expires_at) of the assessments of the customers in ``scope``, per customer
    oldest recorded first: the last one of a customer is :func:`current_risk`."""
    r = RiskAssessment.__table__.c
    stmt = (
        select(r.customer_id, r.level, r.expires_at)
        .where(scope(r.customer_id))
        .order_by(r.customer_id, r.recorded_at, r.id)
    )
    return session.execute(stmt)


def consents_of(session: Session, scope: Scope) -> Iterable[Row[str, str, bool]]:
    """(customer_id, channel, granted) of the consent rows of the customers in ``scope``."""
    c = Consent.__table__.c
    return session.execute(select(c.customer_id, c.channel, c.granted).where(scope(c.customer_id)))


def facts_of(session: Session, scope: Scope) -> Sequence[Row[str, int, float, str, list[str], str]]:
    """(customer_id, age, aum, region, segments, lifecycle_stage) of the customers in ``scope`` that
    exist, in ``customer_id`` order."""
    return session.execute(_facts().where(scope(Customer.__table__.c.customer_id))).all()
