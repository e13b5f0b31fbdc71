"""Risk assessment (suitability level C1..C5 with expiry)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from qianmian_core.auth import Principal, require_scope
from qianmian_core.errors import ERROR_RESPONSES
from qianmian_core.responses import json_response
from starlette.responses import Response

from profile_service.api.deps import CustomerIdPath, DbSession
from profile_service.schemas import RiskAssessmentIn, RiskAssessmentOut
from profile_service.service import risk

router = APIRouter(prefix="/v1/customers", tags=["risk"])


@router.put(
    "/{customer_id}/risk-assessment",
    operation_id="put_risk_assessment",
    summary="Record a new risk assessment; it becomes current",
    response_model=RiskAssessmentOut,
    responses=ERROR_RESPONSES,
)
def put_risk_assessment(
    customer_id: CustomerIdPath,
    assessment: RiskAssessmentIn,
    principal: Annotated[Principal, Depends(require_scope("risk:write"))],
    session: DbSession,
) -> Response:
    """Append the assessment to the history; the answer says whether it is valid now."""
    return json_response(risk.record(session, customer_id, assessment, principal.client))


@router.get(
    "/{customer_id}/risk-assessment",
    operation_id="get_risk_assessment",
    summary="The current risk assessment (null when never assessed)",
    response_model=RiskAssessmentOut | None,
    responses=ERROR_RESPONSES,
)
def get_risk_assessment(
    customer_id: CustomerIdPath,
    _principal: Annotated[Principal, Depends(require_scope("profile:read"))],
    session: DbSession,
) -> Response:
    """The latest recorded assessment with its validity."""
    return json_response(risk.current(session, customer_id))
