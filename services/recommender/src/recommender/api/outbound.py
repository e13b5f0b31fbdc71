"""``/v1/outbound/lists``: push/SMS campaign lists and remote-banking call lists, built in one request.

See :mod:`recommender.service.outbound` for how a list is built: every row is a decision of the live
path (same policies, same audit record), selected by priority within the list's volume constraints
and budgets, and the file is a CSV with the channel's text (the agent's call script for
remote_agent) per row.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Request
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator
from qianmian_core.auth import Principal, require_scope
from qianmian_core.errors import ERROR_RESPONSES
from qianmian_core.responses import json_response
from qianmian_rules import PRODUCT_TYPES, SEGMENTS
from starlette.responses import FileResponse, Response

from recommender.service.outbound import OutboundService, OutboundSpec

router = APIRouter(prefix="/v1/outbound/lists", tags=["outbound"])

OutboundChannel = Literal["push", "sms", "remote_agent"]
SegmentName = Annotated[
    str, Field(pattern="^(" + "|".join(SEGMENTS) + ")$", json_schema_extra={"enum": list(SEGMENTS)})
]
ProductType = Annotated[
    str, Field(pattern="^(" + "|".join(PRODUCT_TYPES) + ")$", json_schema_extra={"enum": list(PRODUCT_TYPES)})
]
ProductId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
ListId = Annotated[str, Path(min_length=1, max_length=40, pattern=r"^obl_[0-9a-f]{32}$")]


class OutboundListBody(BaseModel):
    """An outbound list to build: who (segments), what (product scope), how many, at what cost, when."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "11月理财到期挽留外呼",
                    "channel": "remote_agent",
                    "segments": ["wealth"],
                    "product_types": ["wealth_management", "deposit"],
                    "max_contacts": 2000,
                    "rights_budget_fen": 500000,
                    "agent_capacity_per_day": 400,
                    "days": 5,
                    "start_date": "2026-11-25",
                },
                {
                    "name": "代发客户存款推送",
                    "channel": "push",
                    "segments": ["payroll"],
                    "product_ids": ["DEP-3M-001"],
                    "max_contacts": 100000,
                    "scheduled_at": "2026-11-25T02:00:00Z",
                },
            ]
        },
    )

    name: str = Field(min_length=1, max_length=128, description="For people: the campaign's name")
    channel: OutboundChannel
    segments: list[SegmentName] = Field(
        default_factory=list, max_length=len(SEGMENTS), description="Customers in any of them; empty = all"
    )
    product_ids: list[ProductId] = Field(
        default_factory=list, max_length=500, description="Scope: these products (with product_types)"
    )
    product_types: list[ProductType] = Field(
        default_factory=list,
        max_length=len(PRODUCT_TYPES),
        description="Scope: products of these types; with product_ids the union; both empty = every product",
    )
    max_contacts: int = Field(ge=1, le=1_000_000, description="At most this many rows")
    rights_budget_fen: int | None = Field(
        default=None,
        ge=0,
        description="Total cost of the rights the list may carry; rows beyond it keep the product, "
        "lose the right",
    )
    agent_capacity_per_day: int | None = Field(
        default=None, ge=1, le=1_000_000, description="remote_agent (required): calls per day"
    )
    days: int | None = Field(default=None, ge=1, le=90, description="remote_agent (required): days of calls")
    start_date: date | None = Field(
        default=None, description="First day of sending or calling (bank's time zone); default today"
    )
    scheduled_at: AwareDatetime | None = Field(
        default=None,
        description="Send time (push/SMS) or first call time (remote_agent), outside the quiet hours "
        "21:00-08:00 Asia/Shanghai; default the next 10:00",
    )

    @model_validator(mode="after")
    def _agent_capacity(self) -> OutboundListBody:
        if self.channel == "remote_agent" and (self.agent_capacity_per_day is None or self.days is None):
            raise ValueError("remote_agent lists need agent_capacity_per_day and days")
        return self

    def spec(self) -> OutboundSpec:
        return OutboundSpec(
            name=self.name,
            channel=self.channel,
            max_contacts=self.max_contacts,
            segments=tuple(dict.fromkeys(self.segments)),
            product_ids=tuple(dict.fromkeys(self.product_ids)),
            product_types=tuple(dict.fromkeys(self.product_types)),
            rights_budget_fen=self.rights_budget_fen,
            agent_capacity_per_day=self.agent_capacity_per_day,
            days=self.days,
            start_date=self.start_date,
            scheduled_at=self.scheduled_at,
        )


class OutboundListOut(BaseModel):
    """An outbound list: its request, where it stands, what it holds and what it left out."""

    list_id: str
    name: str
    channel: OutboundChannel
    status: Literal["building", "ready", "failed"]
    created_at: datetime
    created_by: str
    scheduled_at: datetime = Field(description="Send time, or the first call time")
    request: dict[str, Any] = Field(description="The request as validated (start_date resolved)")
    rows: int = Field(description="Rows in the file: each a decision with its contact slot")
    scanned: int = Field(description="Customers of the segments considered")
    excluded: dict[str, int] = Field(
        description="Customers left out, by reason code (consent_refused, cap_weekly_push, "
        "over_max_contacts, over_agent_capacity …)"
    )
    rights_cost_fen: int = Field(description="Total cost of the rights the rows carry")
    rights_dropped: int = Field(description="Rows that kept their product but lost the right to the budget")
    file: str | None = Field(description="Download path of the CSV once ready")
    seconds: float | None
    error_code: str | None
    finished_at: datetime | None


async def get_outbound(request: Request) -> OutboundService:
    """The app's outbound service (built once in ``create_app``)."""
    service: OutboundService = request.app.state.outbound
    return service


Outbound = Annotated[OutboundService, Depends(get_outbound)]
Writer = Annotated[Principal, Depends(require_scope("outbound:write"))]
Reader = Annotated[Principal, Depends(require_scope("outbound:read"))]


@router.post(
    "",
    operation_id="create_outbound_list",
    summary="Build an outbound list (push/SMS campaign or remote-banking call list) and its CSV",
    status_code=201,
    response_model=OutboundListOut,
    responses=ERROR_RESPONSES,
)
async def create_outbound_list(body: OutboundListBody, principal: Writer, outbound: Outbound) -> Response:
    """Answered when the list is ready: every row's contact slot is taken and its decision audited.

    422 for a time in the quiet hours or the past (``scheduled_in_quiet_hours``,
    ``scheduled_in_past``), unknown products in the scope (``unknown_products``), or a scope with
    no product sold in the channel (``scope_not_sold_in_channel``).
    """
    result = await outbound.create(body.spec(), created_by=principal.client)
    return json_response(result, status_code=201)


@router.get(
    "/{list_id}",
    operation_id="get_outbound_list",
    summary="An outbound list's metadata",
    response_model=OutboundListOut,
    responses=ERROR_RESPONSES,
)
async def get_outbound_list(list_id: ListId, _principal: Reader, outbound: Outbound) -> Response:
    return json_response(await outbound.get(list_id))


@router.get(
    "/{list_id}/file",
    operation_id="download_outbound_list",
    summary="The list as CSV (UTF-8 with BOM): one row per contact, pseudonymous customer ids only",
    response_class=FileResponse,
    responses={**ERROR_RESPONSES, 200: {"content": {"text/csv": {}}, "description": "The CSV file"}},
)
async def download_outbound_list(list_id: ListId, _principal: Reader, outbound: Outbound) -> FileResponse:
    path = await outbound.file(list_id)
    return FileResponse(path, media_type="text/csv; charset=utf-8", filename=f"outbound-{list_id}.csv")
