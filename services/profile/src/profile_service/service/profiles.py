"""The customer 360 view, eligibility facts, and recomputation of lifecycle, tags and value."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from qianmian_core.errors import NotFoundError
from qianmian_rules import CustomerFacts
from sqlalchemy.orm import Session

from profile_service.models import Customer, Event, RiskAssessment
from profile_service.repository import customers as customer_repo
from profile_service.repository import events as event_repo
from profile_service.schemas import (
    MARKETING_CHANNELS,
    PERSONALISED,
    ConsentState,
    CustomerFactsItem,
    CustomerFactsLookup,
    CustomerFactsPage,
    CustomerProfile,
    CustomerValueOut,
    EventOut,
    HoldingOut,
    RiskAssessmentOut,
)
from profile_service.service import lifecycle
from profile_service.service.masking import masked_pii
from profile_service.service.value import customer_value

#: Moments older than this cannot change a rule's outcome (the longest rule window is 30 days).
RULE_LOOKBACK = timedelta(days=30)


def require_customer(session: Session, customer_id: str, *, for_update: bool = False) -> Customer:
    """The customer, or a 404."""
    customer = customer_repo.get(session, customer_id, for_update=for_update)
    if customer is None:
        raise NotFoundError(
            "customer not found", code="customer_not_found", details={"customer_id": customer_id}
        )
    return customer


def ensure_customer(session: Session, customer_id: str) -> None:
    """404 unless the customer exists."""
    if not customer_repo.exists(session, customer_id):
        raise NotFoundError(
            "customer not found", code="customer_not_found", details={"customer_id": customer_id}
        )


def to_moment(event: Event) -> lifecycle.Moment:
    """The rules' view of a stored event."""
    return lifecycle.Moment(event.event_type, event.occurred_at, event.amount)


def recompute(session: Session, customer: Customer, as_of: datetime) -> None:
    """Recompute lifecycle stage, tags and CLV from the customer's moments (rules in lifecycle.py)."""
    moments = [to_moment(e) for e in event_repo.since(session, customer.customer_id, as_of - RULE_LOOKBACK)]
    customer.last_active_at = lifecycle.last_activity(customer.last_active_at, moments)
    customer.tenure_months = lifecycle.tenure_months(customer.customer_since, as_of)
    state = lifecycle.CustomerState(
        holdings_count=customer_repo.holdings_count(session, customer.customer_id),
        tenure_months=customer.tenure_months,
        aum=customer.aum,
        aum_90d_ago=customer.aum_90d_ago,
        last_active_at=customer.last_active_at,
        birth_month=customer.birth_month,
    )
    customer.lifecycle_stage = lifecycle.lifecycle_stage(state, moments, as_of)
    customer.tags = lifecycle.tags(state, moments, as_of)
    customer.clv = customer_value(
        customer.aum, customer.deposits, customer.loans, customer.lifecycle_stage
    ).clv
    customer.updated_at = as_of


def risk_out(row: RiskAssessment | None, now: datetime) -> RiskAssessmentOut | None:
    """The assessment with its validity at ``now``."""
    if row is None:
        return None
    return RiskAssessmentOut(
        level=row.level,
        assessed_at=row.assessed_at,
        expires_at=row.expires_at,
        source=row.source,
        recorded_at=row.recorded_at,
        valid=row.expires_at > now,
    )


def consent_flags(recorded: Mapping[str, bool]) -> tuple[dict[str, bool], bool]:
    """(consent per marketing channel, personalised) from the recorded rows' ``channel -> granted``.

    A channel never recorded counts as refused (opt-in); personalisation is on unless refused
    (PIPL art. 24 gives a right to opt out).
    """
    channels = {channel: recorded.get(channel, False) for channel in MARKETING_CHANNELS}
    return channels, recorded.get(PERSONALISED, True)


def consent_state(session: Session, customer_id: str) -> ConsentState:
    """Current consent (rules in :func:`consent_flags`)."""
    rows = customer_repo.consents(session, customer_id)
    channels, personalised = consent_flags({row.channel: row.granted for row in rows})
    return ConsentState(
        customer_id=customer_id,
        channels=channels,
        personalised=personalised,
        updated_at=max((row.updated_at for row in rows), default=None),
    )


def event_out(event: Event) -> EventOut:
    """API view of a stored event."""
    return EventOut(
        event_id=event.event_id,
        customer_id=event.customer_id,
        event_type=event.event_type,
        occurred_at=event.occurred_at,
        amount=event.amount,
        attributes=event.attributes,
        received_at=event.received_at,
    )


def profile(session: Session, customer_id: str, now: datetime, recent_moments: int) -> CustomerProfile:
    """The masked 360 view."""
    customer = require_customer(session, customer_id)
    value = customer_value(customer.aum, customer.deposits, customer.loans, customer.lifecycle_stage)
    pii_row = customer_repo.pii(session, customer_id)
    return CustomerProfile(
        customer_id=customer.customer_id,
        age=customer.age,
        gender=customer.gender,
        birth_month=customer.birth_month,
        city_tier=customer.city_tier,
        region=customer.region,
        segments=list(customer.segments),
        lifecycle_stage=customer.lifecycle_stage,
        tags=list(customer.tags),
        tenure_months=customer.tenure_months,
        value=CustomerValueOut(
            aum=customer.aum,
            deposits=customer.deposits,
            loans=customer.loans,
            annual_margin=value.annual_margin,
            retention_probability=value.retention_probability,
            discount_rate=value.discount_rate,
            horizon_years=value.horizon_years,
            clv=value.clv,
        ),
        risk_assessment=risk_out(customer_repo.current_risk(session, customer_id), now),
        consents=consent_state(session, customer_id),
        holdings=[
            HoldingOut(
                product_id=h.product_id, product_type=h.product_type, opened_at=h.opened_at, amount=h.amount
            )
            for h in customer_repo.holdings(session, customer_id)
        ],
        recent_moments=[event_out(e) for e in event_repo.recent(session, customer_id, recent_moments)],
        contacts_30d=event_repo.count_contacts_since(session, customer_id, now - timedelta(days=30)),
        pii=masked_pii(pii_row) if pii_row is not None else None,
        updated_at=customer.updated_at,
    )


def customer_facts(
    *,
    age: int,
    aum: float,
    region: str,
    segments: Iterable[str],
    lifecycle_stage: str,
    held: Iterable[tuple[str, str]],
    risk: tuple[int, datetime] | None,
) -> CustomerFacts:
    """The facts from a customer's attributes, ``(product_id, product_type)`` of their holdings
    (largest first, as the repository lists them) and ``(level, expires_at)`` of their current risk
    assessment. The one place both the single and the bulk answer are built."""
    holdings = list(held)
    return CustomerFacts(
        age=age,
        aum=aum,
        region=region,
        segments=frozenset(segments),
        lifecycle_stage=lifecycle_stage,
        held_product_ids=frozenset(product_id for product_id, _ in holdings),
        held_product_types=frozenset(product_type for _, product_type in holdings),
        risk_level=risk[0] if risk else None,
        risk_expires_at=risk[1] if risk else None,
    )


def eligibility_facts(session: Session, customer_id: str) -> CustomerFacts:
    """What the eligibility and suitability rules need (the contract product-hub relies on)."""
    customer = require_customer(session, customer_id)
    held = customer_repo.holdings(session, customer_id)
    risk = customer_repo.current_risk(session, customer_id)
    return customer_facts(
        age=customer.age,
        aum=customer.aum,
        region=customer.region,
        segments=customer.segments,
        lifecycle_stage=customer.lifecycle_stage,
        held=[(h.product_id, h.product_type) for h in held],
        risk=(risk.level, risk.expires_at) if risk else None,
    )


def facts_page(session: Session, after: str | None, limit: int, segment: str | None) -> CustomerFactsPage:
    """Facts and consent of up to ``limit`` customers after ``after`` (in id order), optionally of
    one segment, each exactly as ``eligibility_facts`` and ``consent_state`` give them.

    Four queries per page whatever its size (customers, then holdings, risk and consent of the
    customers in the page's id range); no query per customer.
    """
    rows = customer_repo.facts_page(session, after, limit + 1, segment)
    last_page = len(rows) <= limit
    rows = rows[:limit]
    if not rows:
        return CustomerFactsPage(customers=[], next_after=None)
    last = rows[-1].customer_id  # the page is the customers in (after, last] of the segment
    items = _facts_items(session, rows, customer_repo.page_scope(after, last, segment))
    return CustomerFactsPage(customers=items, next_after=None if last_page else last)


def facts_lookup(session: Session, customer_ids: Sequence[str]) -> CustomerFactsLookup:
    """Facts and consent of the named customers (in id order, each once), each exactly as
    ``eligibility_facts`` and ``consent_state`` give them, and the ids that name no customer.

    Four queries whatever the number of ids; the recommender reads the customers its concurrent
    decisions need this way, in one request instead of two per customer.
    """
    scope = customer_repo.ids_scope(customer_ids)
    rows = customer_repo.facts_of(session, scope)
    missing = sorted(set(customer_ids) - {row.customer_id for row in rows})
    if not rows:
        return CustomerFactsLookup(customers=[], missing=missing)
    return CustomerFactsLookup(customers=_facts_items(session, rows, scope), missing=missing)


def _facts_items(
    session: Session, rows: Sequence[Any], scope: customer_repo.Scope
) -> list[CustomerFactsItem]:
    """Each customer row with its holdings, risk and consent (three queries over ``scope``)."""
    held: defaultdict[str, list[tuple[str, str]]] = defaultdict(list)
    for cid, product_id, product_type in customer_repo.holdings_of(session, scope):
        held[cid].append((product_id, product_type))
    risks: dict[str, tuple[int, datetime]] = {}
    for cid, level, expires_at in customer_repo.risks_of(session, scope):
        risks[cid] = (level, expires_at)  # oldest recorded first: the last one is current
    recorded: defaultdict[str, dict[str, bool]] = defaultdict(dict)
    for cid, channel, granted in customer_repo.consents_of(session, scope):
        recorded[cid][channel] = granted
    items: list[CustomerFactsItem] = []
    for cid, age, aum, region, segments, stage in rows:
        channels, personalised = consent_flags(recorded[cid])
        facts = customer_facts(
            age=age,
            aum=aum,
            region=region,
            segments=segments,
            lifecycle_stage=stage,
            held=held[cid],
            risk=risks.get(cid),
        )
        # Built from validated parts (facts is a validated CustomerFacts): no second validation pass.
        items.append(
            CustomerFactsItem.model_construct(
                customer_id=cid, facts=facts, consents=channels, personalised=personalised
            )
        )
    return items
