"""Consent: per-channel marketing consent and the personalised-recommendation opt-out."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from qianmian_core.auth import Principal, require_scope
from qianmian_core.errors import ERROR_RESPONSES
from qianmian_core.responses import json_response
from starlette.responses import Response

from profile_service.api.deps import CustomerIdPath, DbSession
from profile_service.schemas import ConsentHistory, ConsentState, ConsentUpdate
from profile_service.service import consents

router = APIRouter(prefix="/v1/customers", tags=["consent"])

ProfileReader = Annotated[Principal, Depends(require_scope("profile:read"))]


@router.put(
    "/{customer_id}/consents",
    operation_id="update_consents",
    summary="Change consent; effective immediately, history kept",
    response_model=ConsentState,
    responses=ERROR_RESPONSES,
)
def update_consents(
    customer_id: CustomerIdPath,
    change: ConsentUpdate,
    principal: Annotated[Principal, Depends(require_scope("consent:write"))],
    session: DbSession,
) -> Response:
    """Set the given channels (and ``personalised``); omitted channels keep their value."""
    return json_response(consents.update(session, customer_id, change, principal.client))


@router.get(
    "/{customer_id}/consents",
    operation_id="get_consents",
    summary="Current consent",
    response_model=ConsentState,
    responses=ERROR_RESPONSES,
)
def get_consents(customer_id: CustomerIdPath, _principal: ProfileReader, session: DbSession) -> Response:
    """Current consent per channel and the personalisation switch."""
    return json_response(consents.current(session, customer_id))


@router.get(
    "/{customer_id}/consents/history",
    operation_id="get_consent_history",
    summary="Consent changes, newest first",
    response_model=ConsentHistory,
    responses=ERROR_RESPONSES,
)
def get_consent_history(
    customer_id: CustomerIdPath,
    _principal: ProfileReader,
    session: DbSession,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    """Who changed which consent, when, from what to what, and why."""
    return json_response(consents.history(session, customer_id, limit))
