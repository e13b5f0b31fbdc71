"""The change feed: which customers changed, for caches of profile's answers."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from qianmian_core.auth import Principal, require_scope
from qianmian_core.errors import ERROR_RESPONSES
from qianmian_core.responses import json_response
from starlette.responses import Response

from profile_service.api.deps import DbSession, Settings
from profile_service.schemas import ChangeFeed
from profile_service.service import changes

router = APIRouter(prefix="/v1", tags=["changes"])

#: ``seq`` is a 64-bit integer on PostgreSQL.
MAX_SEQ = 2**63 - 1


@router.get(
    "/changes",
    operation_id="list_customer_changes",
    summary="Customers whose facts, consent or activity changed, in sequence order",
    response_model=ChangeFeed,
    responses=ERROR_RESPONSES,
)
def list_customer_changes(
    _principal: Annotated[Principal, Depends(require_scope("profile:read"))],
    session: DbSession,
    settings: Settings,
    after: Annotated[int, Query(ge=0, le=MAX_SEQ, description="Changes with a greater seq")] = 0,
    limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
) -> Response:
    """Follow with ``after = next_after``. Every committed change appears, in ``seq`` order; after a
    gap in ``seq`` (PostgreSQL commits out of order) rows wait up to ``PROFILE_CHANGES_SETTLE_SECONDS``."""
    settle = timedelta(seconds=settings.changes_settle_seconds)
    return json_response(changes.feed(session, after, limit, settle))
