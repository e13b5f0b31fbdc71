"""``/v1/products``: the catalogue, its editing and its approval workflow."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from pydantic import AwareDatetime
from qianmian_core.auth import require_scope
from qianmian_core.responses import json_response
from qianmian_rules import PRODUCT_TYPES
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from product_hub.api.deps import Reader, Service, Writer
from product_hub.errors import ERROR_RESPONSES, ERROR_RESPONSES_WITH_PROFILE
from product_hub.schemas import (
    ProductCreate,
    ProductHistory,
    ProductOut,
    ProductPage,
    ProductStatus,
    ProductUpdate,
    TransitionRequest,
)
from product_hub.service import ProductFilter

router = APIRouter(prefix="/v1/products", tags=["products"])

PRODUCT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
ProductIdPath = Annotated[str, Path(pattern=PRODUCT_ID_PATTERN, description="Product code")]

#: Who may move a product to each status: approving is the checker's right, the rest the maker's.
TRANSITION_SCOPES = {"approved": "products:approve", "active": "products:write", "retired": "products:write"}


@router.post(
    "",
    operation_id="create_product",
    summary="Create a draft product (the caller becomes its author)",
    status_code=201,
    response_model=ProductOut,
    responses=ERROR_RESPONSES,
)
def create_product(body: ProductCreate, principal: Writer, service: Service) -> Response:
    return json_response(service.create(body, author=principal.client), status_code=201)


@router.get(
    "",
    operation_id="list_products",
    summary="List products; with eligible_for, only those the customer may be offered",
    response_model=ProductPage,
    responses=ERROR_RESPONSES_WITH_PROFILE,
)
async def list_products(
    _principal: Reader,
    service: Service,
    status: Annotated[ProductStatus | None, Query(description="Workflow status")] = None,
    product_type: Annotated[
        str | None, Query(pattern=f"^({'|'.join(PRODUCT_TYPES)})$", description="Product type")
    ] = None,
    channel: Annotated[str | None, Query(pattern=r"^[a-z][a-z0-9_]{0,31}$", description="Channel")] = None,
    eligible_for: Annotated[
        str | None,
        Query(
            pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$",
            description=(
                "Customer id: only active products on sale, within quota, whose eligibility rules the "
                "customer meets and which suit the customer's risk assessment"
            ),
        ),
    ] = None,
    at: Annotated[
        AwareDatetime | None, Query(description="Only products on sale at this time (ISO 8601 with zone)")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Response:
    query = ProductFilter(
        status=status, product_type=product_type, channel=channel, at=at, limit=limit, offset=offset
    )
    return json_response(await service.list_products(query, eligible_for=eligible_for))


@router.get(
    "/{product_id}",
    operation_id="get_product",
    summary="One product",
    response_model=ProductOut,
    responses=ERROR_RESPONSES,
)
def get_product(product_id: ProductIdPath, _principal: Reader, service: Service) -> Response:
    return json_response(service.get(product_id))


@router.patch(
    "/{product_id}",
    operation_id="update_product",
    summary="Edit a draft (only its author; version must match)",
    response_model=ProductOut,
    responses=ERROR_RESPONSES,
)
def update_product(
    product_id: ProductIdPath, body: ProductUpdate, principal: Writer, service: Service
) -> Response:
    return json_response(service.update(product_id, body, actor=principal.client))


@router.post(
    "/{product_id}/transitions",
    operation_id="transition_product",
    summary="Move a product: approve (products:approve, not by its author), activate or retire",
    response_model=ProductOut,
    responses=ERROR_RESPONSES,
)
async def transition_product(
    product_id: ProductIdPath, body: TransitionRequest, request: Request, service: Service
) -> Response:
    # The scope depends on the target status, so it is checked here rather than in the signature.
    principal = await require_scope(TRANSITION_SCOPES[body.to])(request)
    return json_response(
        await run_in_threadpool(service.transition, product_id, body, actor=principal.client)
    )


@router.get(
    "/{product_id}/history",
    operation_id="get_product_history",
    summary="The product's workflow history, oldest first",
    response_model=ProductHistory,
    responses=ERROR_RESPONSES,
)
def get_product_history(product_id: ProductIdPath, _principal: Reader, service: Service) -> Response:
    return json_response(service.history(product_id))
