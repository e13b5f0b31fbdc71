"""Customer 360, eligibility facts, and the facts of many customers page by page or by id."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from qianmian_core.auth import Principal, require_scope
from qianmian_core.errors import ERROR_RESPONSES
from qianmian_core.responses import json_response
from qianmian_rules import CustomerFacts
from starlette.responses import Response

from profile_service.api.deps import CustomerIdPath, DbSession, Settings
from profile_service.schemas import (
    CUSTOMER_ID_PATTERN,
    SEGMENT_PATTERN,
    CustomerFactsLookup,
    CustomerFactsLookupRequest,
    CustomerFactsPage,
    CustomerProfile,
)
from profile_service.service import profiles
from profile_service.service.clock import utcnow

router = APIRouter(prefix="/v1/customers", tags=["customers"])

ProfileReader = Annotated[Principal, Depends(require_scope("profile:read"))]


# Declared before ``/{customer_id}``: Starlette tries routes in order, and "facts" would otherwise
# be taken for a (malformed) customer id and answered 422.
@router.get(
    "/facts",
    operation_id="list_customer_facts",
    summary="Eligibility facts and consent of many customers, page by page (outbound campaign lists)",
    response_model=CustomerFactsPage,
    responses=ERROR_RESPONSES,
)
def list_customer_facts(
    _principal: ProfileReader,
    session: DbSession,
    segment: Annotated[
        str | None, Query(pattern=SEGMENT_PATTERN, description="Only customers in this segment")
    ] = None,
    after: Annotated[
        str | None, Query(pattern=CUSTOMER_ID_PATTERN, description="Customers with a greater id (cursor)")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
) -> Response:
    """Customers in id order, each with exactly what ``/eligibility-facts`` and ``/consents`` answer
    for them; pass ``next_after`` as ``after`` until it is null."""
    return json_response(profiles.facts_page(session, after, limit, segment))


@router.post(
    "/facts/lookup",
    operation_id="lookup_customer_facts",
    summary="Eligibility facts and consent of named customers in one request (the recommender's reads)",
    response_model=CustomerFactsLookup,
    responses=ERROR_RESPONSES,
)
def lookup_customer_facts(
    body: CustomerFactsLookupRequest, _principal: ProfileReader, session: DbSession
) -> Response:
    """Each named customer that exists, exactly as ``/eligibility-facts`` and ``/consents`` answer for
    them (in id order, each once); ``missing`` lists the ids that name no customer. A read: no state
    changes, so a retry is always safe."""
    return json_response(profiles.facts_lookup(session, body.customer_ids))


@router.get(
    "/{customer_id}",
    operation_id="get_customer_profile",
    summary="Masked customer 360 view",
    response_model=CustomerProfile,
    responses=ERROR_RESPONSES,
)
def get_customer_profile(
    customer_id: CustomerIdPath, _principal: ProfileReader, session: DbSession, settings: Settings
) -> Response:
    """Attributes, segments, tags, lifecycle, value, risk, consent, holdings, recent moments; PII masked."""
    return json_response(profiles.profile(session, customer_id, utcnow(), settings.recent_moments))


@router.get(
    "/{customer_id}/eligibility-facts",
    operation_id="get_eligibility_facts",
    summary="The facts the eligibility and suitability rules need (qianmian_rules.CustomerFacts)",
    response_model=CustomerFacts,
    responses=ERROR_RESPONSES,
)
def get_eligibility_facts(
    customer_id: CustomerIdPath, _principal: ProfileReader, session: DbSession
) -> Response:
    """Exactly the fields of ``qianmian_rules.CustomerFacts``; product-hub's ``eligible_for`` reads this."""
    return json_response(profiles.eligibility_facts(session, customer_id))
