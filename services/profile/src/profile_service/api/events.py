"""Moments of truth: ingestion and recent moments."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from qianmian_core.auth import Principal, require_scope
from qianmian_core.errors import ERROR_RESPONSES, ErrorResponse
from qianmian_core.responses import json_response
from starlette.responses import Response

from profile_service.api.deps import CustomerIdPath, DbSession, Pusher, Settings
from profile_service.schemas import EventIn, EventIngested, EventList
from profile_service.service import events

router = APIRouter(tags=["events"])


@router.post(
    "/v1/events",
    operation_id="ingest_event",
    summary="Ingest a moment (idempotent by event_id)",
    status_code=201,
    response_model=EventIngested,
    responses={
        **ERROR_RESPONSES,
        200: {"model": EventIngested, "description": "Replay of an event already ingested"},
        409: {"model": ErrorResponse, "description": "event_id already used for a different event"},
    },
)
def ingest_event(
    event: EventIn,
    _principal: Annotated[Principal, Depends(require_scope("events:write"))],
    session: DbSession,
    pusher: Pusher,
    settings: Settings,
) -> Response:
    """Store the moment, recompute lifecycle, tags and CLV, and push the customer's activity features."""
    result = events.ingest(session, event, pusher, settings.outbox_batch_size)
    return json_response(result.body, status_code=200 if result.replayed else 201)


@router.get(
    "/v1/customers/{customer_id}/events",
    operation_id="list_customer_events",
    summary="Recent moments of a customer, newest first",
    response_model=EventList,
    responses=ERROR_RESPONSES,
)
def list_customer_events(
    customer_id: CustomerIdPath,
    _principal: Annotated[Principal, Depends(require_scope("profile:read"))],
    session: DbSession,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Response:
    """The customer's latest moments."""
    return json_response(events.recent(session, customer_id, limit))
