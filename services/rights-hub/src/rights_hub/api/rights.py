"""``/v1/rights``: the catalogue, its workflow, budget status and the ledger."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from pydantic import AwareDatetime
from qianmian_core.auth import require_scope
from qianmian_core.responses import json_response
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from rights_hub.api.deps import Admin, Catalogue, Reader, Writer
from rights_hub.errors import ERROR_RESPONSES
from rights_hub.schemas import (
    ID_PATTERN,
    BudgetOut,
    LedgerPage,
    LifecycleStage,
    RightCreate,
    RightOut,
    RightPage,
    RightStatus,
    RightType,
    RightUpdate,
    Segment,
    TransitionRequest,
)
from rights_hub.service import RightFilter

router = APIRouter(prefix="/v1/rights", tags=["rights"])

RightIdPath = Annotated[str, Path(pattern=ID_PATTERN, description="Right code")]

#: Activating (or resuming) spends budget, so it is the checker's scope; the rest is the maker's.
TRANSITION_SCOPES = {"active": "rights:approve", "paused": "rights:write", "retired": "rights:write"}


@router.post(
    "",
    operation_id="create_right",
    summary="Create a draft right (the caller becomes its author)",
    status_code=201,
    response_model=RightOut,
    responses=ERROR_RESPONSES,
)
def create_right(body: RightCreate, principal: Writer, service: Catalogue) -> Response:
    return json_response(service.create(body, author=principal.client), status_code=201)


@router.get(
    "",
    operation_id="list_rights",
    summary="List rights; with affordable=true, only those that may be granted now",
    response_model=RightPage,
    responses=ERROR_RESPONSES,
)
def list_rights(
    _principal: Reader,
    service: Catalogue,
    affordable: Annotated[
        bool,
        Query(description="Only active rights inside their window with budget left for one more grant"),
    ] = False,
    segment: Annotated[Segment | None, Query(description="Only rights open to this segment")] = None,
    lifecycle_stage: Annotated[
        LifecycleStage | None, Query(description="Only rights open to this lifecycle stage")
    ] = None,
    status: Annotated[RightStatus | None, Query(description="Workflow status")] = None,
    right_type: Annotated[RightType | None, Query(description="Right type")] = None,
    at: Annotated[
        AwareDatetime | None, Query(description="Evaluate the granting window at this time (default now)")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Response:
    query = RightFilter(
        status=status,
        right_type=right_type,
        affordable=affordable,
        segment=segment,
        lifecycle_stage=lifecycle_stage,
        at=at,
        limit=limit,
        offset=offset,
    )
    return json_response(service.list_rights(query))


@router.get(
    "/{right_id}",
    operation_id="get_right",
    summary="One right with its counters",
    response_model=RightOut,
    responses=ERROR_RESPONSES,
)
def get_right(right_id: RightIdPath, _principal: Reader, service: Catalogue) -> Response:
    return json_response(service.get(right_id))


@router.patch(
    "/{right_id}",
    operation_id="update_right",
    summary="Edit a draft (only its author; version must match)",
    response_model=RightOut,
    responses=ERROR_RESPONSES,
)
def update_right(right_id: RightIdPath, body: RightUpdate, principal: Writer, service: Catalogue) -> Response:
    return json_response(service.update(right_id, body, actor=principal.client))


@router.post(
    "/{right_id}/transitions",
    operation_id="transition_right",
    summary="Activate (rights:approve, not by its author), pause or retire a right",
    response_model=RightOut,
    responses=ERROR_RESPONSES,
)
async def transition_right(
    right_id: RightIdPath, body: TransitionRequest, request: Request, service: Catalogue
) -> Response:
    # The scope depends on the target status, so it is checked here rather than in the signature.
    principal = await require_scope(TRANSITION_SCOPES[body.to])(request)
    return json_response(await run_in_threadpool(service.transition, right_id, body, actor=principal.client))


@router.get(
    "/{right_id}/budget",
    operation_id="get_right_budget",
    summary="Budget status: total, reserved, granted, redeemed, remaining; burn rate, projected exhaustion",
    response_model=BudgetOut,
    responses=ERROR_RESPONSES,
)
def get_right_budget(
    right_id: RightIdPath,
    _principal: Reader,
    service: Catalogue,
    window_hours: Annotated[float, Query(gt=0, le=24 * 90, description="Pacing window")] = 24.0,
) -> Response:
    return json_response(service.budget(right_id, window_hours=window_hours))


@router.get(
    "/{right_id}/ledger",
    operation_id="get_right_ledger",
    summary="The right's ledger in order (admin)",
    response_model=LedgerPage,
    responses=ERROR_RESPONSES,
)
def get_right_ledger(
    right_id: RightIdPath,
    _principal: Admin,
    service: Catalogue,
    after: Annotated[int, Query(ge=0, description="Return entries after this entry id")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    return json_response(service.ledger(right_id, after=after, limit=limit))
