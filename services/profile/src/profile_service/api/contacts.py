"""Contact history: what was shown where and when (the recommender writes it)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import AwareDatetime
from qianmian_core.auth import Principal, require_scope
from qianmian_core.errors import ERROR_RESPONSES
from qianmian_core.responses import json_response
from starlette.responses import Response

from profile_service.api.deps import CustomerIdPath, DbSession, Pusher, Settings
from profile_service.schemas import ContactIn, ContactList, ContactOut, MarketingChannel
from profile_service.service import contacts

router = APIRouter(prefix="/v1/customers", tags=["contacts"])


@router.post(
    "/{customer_id}/contacts",
    operation_id="record_contact",
    summary="Append a contact (impression, click, dismiss, accept, convert)",
    status_code=201,
    response_model=ContactOut,
    responses=ERROR_RESPONSES,
)
def record_contact(
    customer_id: CustomerIdPath,
    contact: ContactIn,
    _principal: Annotated[Principal, Depends(require_scope("contacts:write"))],
    session: DbSession,
    pusher: Pusher,
    settings: Settings,
) -> Response:
    """Store the contact and refresh the customer's activity features."""
    return json_response(
        contacts.record(session, customer_id, contact, pusher, settings.outbox_batch_size), status_code=201
    )


@router.get(
    "/{customer_id}/contacts",
    operation_id="list_contacts",
    summary="Contact history, newest first",
    response_model=ContactList,
    responses=ERROR_RESPONSES,
)
def list_contacts(
    customer_id: CustomerIdPath,
    _principal: Annotated[Principal, Depends(require_scope("profile:read"))],
    session: DbSession,
    channel: MarketingChannel | None = None,
    since: Annotated[AwareDatetime | None, Query(description="Only contacts at or after this time")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    """Contacts of one channel and/or since a time."""
    return json_response(contacts.list_contacts(session, customer_id, channel, since, limit))
