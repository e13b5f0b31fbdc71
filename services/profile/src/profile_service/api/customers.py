"""Customer 360 and eligibility facts."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from qianmian_core.auth import Principal, require_scope
from qianmian_core.errors import ERROR_RESPONSES
from qianmian_core.responses import json_response
from qianmian_rules import CustomerFacts
from starlette.responses import Response

from profile_service.api.deps import CustomerIdPath, DbSession, Settings
from profile_service.schemas import CustomerProfile
from profile_service.service import profiles
from profile_service.service.clock import utcnow

router = APIRouter(prefix="/v1/customers", tags=["customers"])

ProfileReader = Annotated[Principal, Depends(require_scope("profile:read"))]


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
