"""``/v1/content``: authoring, review workflow, archive, search, screening and rendering."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from pydantic import AwareDatetime
from qianmian_core.auth import require_scope
from qianmian_core.errors import ErrorResponse
from qianmian_core.responses import json_response
from qianmian_rules import SEGMENTS
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from content_hub.api.deps import Reader, Service, Writer
from content_hub.errors import ERROR_RESPONSES
from content_hub.schemas import (
    ID_PATTERN,
    Channel,
    ContentCreate,
    ContentHistory,
    ContentOut,
    ContentPage,
    ContentPatch,
    RenderOut,
    ScreenRequest,
    ScreenResult,
    TransitionRequest,
    VersionOut,
    VersionStatus,
)
from content_hub.service import ContentFilter

router = APIRouter(prefix="/v1/content", tags=["content"])

ContentIdPath = Annotated[str, Path(pattern=ID_PATTERN, description="Content code")]
VersionPath = Annotated[int, Path(ge=1, le=1_000_000, description="Version number")]
IdQuery = Annotated[str | None, Query(pattern=ID_PATTERN)]

#: Who may move a version to each status: review decisions are the checker's, the rest the maker's.
TRANSITION_SCOPES = {
    "in_review": "content:write",
    "approved": "content:approve",
    "rejected": "content:approve",
    "retired": "content:write",
}

RENDER_RESPONSES = {
    **ERROR_RESPONSES,
    409: {
        "model": ErrorResponse,
        "description": "Not approved (content_not_approved), outside its validity window "
        "(content_out_of_window) or too long once filled in (rendered_too_long)",
    },
}


@router.get(
    "/render",
    operation_id="render_content",
    summary="The served variant of an item for a channel, filled in for a customer",
    response_model=RenderOut,
    responses=RENDER_RESPONSES,
)
async def render_content(
    _principal: Reader,
    service: Service,
    content_id: Annotated[str, Query(pattern=ID_PATTERN)],
    channel: Annotated[Channel, Query(description="Channel whose variant to render")],
    customer_id: Annotated[
        str | None,
        Query(
            pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$",
            description="Omit for a non-personalised render (neutral salutation)",
        ),
    ] = None,
    at: Annotated[AwareDatetime | None, Query(description="Render as of this time; default now")] = None,
) -> Response:
    return json_response(await service.render(content_id, channel, customer_id, at))


@router.post(
    "/screen",
    operation_id="screen_content",
    summary="Screen text or variants for compliance without storing anything",
    response_model=ScreenResult,
    responses=ERROR_RESPONSES,
)
def screen_content(body: ScreenRequest, _principal: Writer, service: Service) -> Response:
    return json_response(service.screen(body))


@router.post(
    "",
    operation_id="create_content",
    summary="Create a content item; its version 1 is a draft authored by the caller",
    status_code=201,
    response_model=VersionOut,
    responses=ERROR_RESPONSES,
)
def create_content(body: ContentCreate, principal: Writer, service: Service) -> Response:
    return json_response(service.create(body, author=principal.client), status_code=201)


@router.get(
    "",
    operation_id="search_content",
    summary="Search content versions; by default approved ones in their validity window (recommender)",
    response_model=ContentPage,
    responses=ERROR_RESPONSES,
)
def search_content(
    _principal: Reader,
    service: Service,
    product_id: IdQuery = None,
    right_id: IdQuery = None,
    channel: Annotated[Channel | None, Query(description="Only content with a variant for it")] = None,
    segment: Annotated[
        str | None,
        Query(pattern=f"^({'|'.join(SEGMENTS)})$", description="Only content targeting it (or everyone)"),
    ] = None,
    status: Annotated[VersionStatus, Query(description="Version status")] = "approved",
    at: Annotated[AwareDatetime | None, Query(description="Validity is checked at this time")] = None,
    include_out_of_window: Annotated[
        bool, Query(description="Approved ones outside their window too")
    ] = False,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Response:
    query = ContentFilter(
        product_id=product_id,
        right_id=right_id,
        channel=channel,
        segment=segment,
        status=status,
        at=at,
        include_out_of_window=include_out_of_window,
        limit=limit,
        offset=offset,
    )
    return json_response(service.search(query))


@router.get(
    "/{content_id}",
    operation_id="get_content",
    summary="A content item: its versions and which one serves",
    response_model=ContentOut,
    responses=ERROR_RESPONSES,
)
def get_content(content_id: ContentIdPath, _principal: Reader, service: Service) -> Response:
    return json_response(service.get(content_id))


@router.get(
    "/{content_id}/history",
    operation_id="get_content_history",
    summary="Every workflow move of every version (actor, time, comment), oldest first",
    response_model=ContentHistory,
    responses=ERROR_RESPONSES,
)
def get_content_history(content_id: ContentIdPath, _principal: Reader, service: Service) -> Response:
    return json_response(service.history(content_id))


@router.post(
    "/{content_id}/versions",
    operation_id="create_content_version",
    summary="Start a new draft version from the latest one (rework, or change approved content)",
    status_code=201,
    response_model=VersionOut,
    responses=ERROR_RESPONSES,
)
def create_content_version(
    content_id: ContentIdPath, body: ContentPatch, principal: Writer, service: Service
) -> Response:
    return json_response(service.new_version(content_id, body, actor=principal.client), status_code=201)


@router.get(
    "/{content_id}/versions/{version}",
    operation_id="get_content_version",
    summary="One version exactly as written and reviewed (archive)",
    response_model=VersionOut,
    responses=ERROR_RESPONSES,
)
def get_content_version(
    content_id: ContentIdPath, version: VersionPath, _principal: Reader, service: Service
) -> Response:
    return json_response(service.get_version(content_id, version))


@router.patch(
    "/{content_id}/versions/{version}",
    operation_id="update_content_draft",
    summary="Edit a draft version (only its author)",
    response_model=VersionOut,
    responses=ERROR_RESPONSES,
)
def update_content_draft(
    content_id: ContentIdPath, version: VersionPath, body: ContentPatch, principal: Writer, service: Service
) -> Response:
    return json_response(service.edit_draft(content_id, version, body, actor=principal.client))


@router.post(
    "/{content_id}/versions/{version}/transitions",
    operation_id="transition_content",
    summary="Submit (screens; 422 compliance_findings), approve or reject (not by the author), retire",
    response_model=VersionOut,
    responses=ERROR_RESPONSES,
)
async def transition_content(
    content_id: ContentIdPath,
    version: VersionPath,
    body: TransitionRequest,
    request: Request,
    service: Service,
) -> Response:
    # The scope depends on the target status, so it is checked here rather than in the signature.
    principal = await require_scope(TRANSITION_SCOPES[body.to])(request)
    return json_response(
        await run_in_threadpool(service.transition, content_id, version, body, actor=principal.client)
    )
