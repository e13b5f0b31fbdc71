"""Ledger operations (reserve, grant, release, redeem, reverse) and grant reads.

Every operation needs an ``Idempotency-Key`` header: a retry with the same key and body gets the
original answer byte for byte (with ``Idempotent-Replayed: true``); the same key with a different
request is refused with 422 ``idempotency_key_reused``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Path, Query
from qianmian_core.auth import Principal
from qianmian_core.responses import json_response
from starlette.responses import Response

from rights_hub.api.deps import Admin, Granter, IdempotencyKey, Ledger, Reader, Redeemer
from rights_hub.api.rights import RightIdPath
from rights_hub.errors import ERROR_RESPONSES, LEDGER_ERROR_RESPONSES
from rights_hub.schemas import (
    GrantOut,
    GrantPage,
    GrantRequest,
    GrantStatus,
    ReasonRequest,
    ReservationOut,
    ReserveRequest,
)
from rights_hub.service import StoredResponse
from rights_hub.service.ledger import Idempotency

router = APIRouter(prefix="/v1", tags=["ledger"])

ItemId = Annotated[str, Path(pattern=r"^(rsv|grt)_[0-9a-f]{32}$", description="Reservation or grant id")]
CustomerIdPath = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")]


def _answer(stored: StoredResponse) -> Response:
    headers = {"Idempotent-Replayed": "true"} if stored.replayed else None
    return Response(
        stored.body, status_code=stored.status_code, media_type="application/json", headers=headers
    )


def _follow_up(
    operation: Callable[[str, ReasonRequest, Idempotency], StoredResponse],
    item_id: str,
    body: ReasonRequest | None,
    principal: Principal,
    key: str,
) -> Response:
    """Run an idempotent operation on an existing hold or grant (the body, a reason, is optional)."""
    return _answer(operation(item_id, body or ReasonRequest(), Idempotency(principal.client, key)))


@router.post(
    "/rights/{right_id}/reservations",
    operation_id="reserve_right",
    summary="Hold one unit of budget for a customer until the hold expires",
    status_code=201,
    response_model=ReservationOut,
    responses=LEDGER_ERROR_RESPONSES,
)
def reserve_right(
    right_id: RightIdPath, body: ReserveRequest, principal: Granter, key: IdempotencyKey, service: Ledger
) -> Response:
    return _answer(service.reserve(right_id, body, Idempotency(principal.client, key)))


@router.post(
    "/rights/{right_id}/grants",
    operation_id="grant_right",
    summary="Grant a right directly (409 right_exhausted / customer_limit_reached when it cannot be)",
    status_code=201,
    response_model=GrantOut,
    responses=LEDGER_ERROR_RESPONSES,
)
def grant_right(
    right_id: RightIdPath, body: GrantRequest, principal: Granter, key: IdempotencyKey, service: Ledger
) -> Response:
    return _answer(service.grant(right_id, body, Idempotency(principal.client, key)))


@router.post(
    "/reservations/{reservation_id}/grant",
    operation_id="grant_reservation",
    summary="Turn a live hold into a grant",
    status_code=201,
    response_model=GrantOut,
    responses=LEDGER_ERROR_RESPONSES,
)
def grant_reservation(
    reservation_id: ItemId,
    principal: Granter,
    key: IdempotencyKey,
    service: Ledger,
    body: ReasonRequest | None = None,
) -> Response:
    return _follow_up(service.grant_reservation, reservation_id, body, principal, key)


@router.post(
    "/reservations/{reservation_id}/release",
    operation_id="release_reservation",
    summary="Give a hold back before it expires",
    response_model=ReservationOut,
    responses=LEDGER_ERROR_RESPONSES,
)
def release_reservation(
    reservation_id: ItemId,
    principal: Granter,
    key: IdempotencyKey,
    service: Ledger,
    body: ReasonRequest | None = None,
) -> Response:
    return _follow_up(service.release, reservation_id, body, principal, key)


@router.get(
    "/reservations/{reservation_id}",
    operation_id="get_reservation",
    summary="One reservation",
    response_model=ReservationOut,
    responses=ERROR_RESPONSES,
)
def get_reservation(reservation_id: ItemId, _principal: Reader, service: Ledger) -> Response:
    return json_response(service.get_reservation(reservation_id))


@router.post(
    "/grants/{grant_id}/redeem",
    operation_id="redeem_grant",
    summary="The customer used the granted right",
    response_model=GrantOut,
    responses=LEDGER_ERROR_RESPONSES,
)
def redeem_grant(
    grant_id: ItemId,
    principal: Redeemer,
    key: IdempotencyKey,
    service: Ledger,
    body: ReasonRequest | None = None,
) -> Response:
    return _follow_up(service.redeem, grant_id, body, principal, key)


@router.post(
    "/grants/{grant_id}/reverse",
    operation_id="reverse_grant",
    summary="Take back a granted or redeemed right and free its budget (admin)",
    response_model=GrantOut,
    responses=LEDGER_ERROR_RESPONSES,
)
def reverse_grant(
    grant_id: ItemId,
    principal: Admin,
    key: IdempotencyKey,
    service: Ledger,
    body: ReasonRequest | None = None,
) -> Response:
    return _follow_up(service.reverse, grant_id, body, principal, key)


@router.get(
    "/grants/{grant_id}",
    operation_id="get_grant",
    summary="One grant",
    response_model=GrantOut,
    responses=ERROR_RESPONSES,
)
def get_grant(grant_id: ItemId, _principal: Reader, service: Ledger) -> Response:
    return json_response(service.get_grant(grant_id))


@router.get(
    "/customers/{customer_id}/grants",
    operation_id="list_customer_grants",
    summary="A customer's grants, newest first",
    response_model=GrantPage,
    responses=ERROR_RESPONSES,
)
def list_customer_grants(
    customer_id: CustomerIdPath,
    _principal: Reader,
    service: Ledger,
    status: Annotated[GrantStatus | None, Query()] = None,
    right_id: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")] = None,
) -> Response:
    return json_response(service.customer_grants(customer_id, status=status, right_id=right_id))
