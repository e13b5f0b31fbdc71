"""``/v1/feedback``: what the customer did with a decision's bundle, recorded once per Idempotency-Key."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from qianmian_core.auth import Principal, require_scope
from qianmian_core.errors import ERROR_RESPONSES, ErrorResponse
from qianmian_core.idempotency import idempotency_key_dependency
from starlette.responses import Response

from recommender.service.feedback import (
    FeedbackInput,
    FeedbackService,
)

router = APIRouter(prefix="/v1/feedback", tags=["feedback"])

#: The Idempotency-Key grammar, the same as rights-hub's.
#: The largest ``value`` accepted (fen): 10^15 fen, far beyond any single conversion.
MAX_VALUE = 10**15

FeedbackEvent = Literal["impression", "click", "dismiss", "accept", "convert", "redeem"]
GrantStatus = Literal["granted", "pending_retry", "refused"]

EXAMPLE_TIME = "2026-11-23T09:01:30Z"


class FeedbackRequestBody(BaseModel):
    """One event on one bundle of a decision. The customer and channel are the decision's."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "decision_id": "dec_3f9a0c1e5b7d4a2f8e6c0b1d2a3f4e5c",
                    "product_id": "DEP-1Y-01",
                    "event": "convert",
                    "at": EXAMPLE_TIME,
                    "value": 5_000_000,
                }
            ]
        },
    )

    decision_id: str = Field(min_length=1, max_length=64, description="As returned by POST /v1/decisions")
    product_id: str = Field(
        min_length=1, max_length=64, description="The product of one of the decision's bundles"
    )
    event: FeedbackEvent
    at: AwareDatetime | None = Field(
        default=None,
        description="When it happened (default: now); at most 5 min ahead, 30 days old, not before "
        "the decision",
    )
    value: int | None = Field(
        default=None, ge=0, le=MAX_VALUE, description="E.g. the converted amount in fen"
    )


class RightGrantOut(BaseModel):
    """The grant of the converted bundle's right through rights-hub."""

    right_id: str
    status: GrantStatus = Field(
        description="granted; refused (rights-hub's error_code, e.g. right_exhausted); pending_retry "
        "(rights-hub did not answer finally: a replay of this request retries under the same key)"
    )
    grant_id: str | None
    error_code: str | None


class FeedbackOut(BaseModel):
    """The recorded feedback; replays with the same Idempotency-Key return these exact bytes."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "feedback_id": "fbk_0d6b4a8e2f1c4e9a9b3d7c5e1f2a4b6c",
                    "decision_id": "dec_3f9a0c1e5b7d4a2f8e6c0b1d2a3f4e5c",
                    "product_id": "DEP-1Y-01",
                    "event": "convert",
                    "at": EXAMPLE_TIME,
                    "recorded_at": "2026-11-23T09:01:31.204518Z",
                    "value": 5_000_000,
                    "cooldown_until": None,
                    "right_grant": {
                        "right_id": "RT-TD-RATE-BOOST-15BP",
                        "status": "granted",
                        "grant_id": "grt_5c2e8f0a9d1b4c3e8a7f6b5d4c3e2a1f",
                        "error_code": None,
                    },
                }
            ]
        }
    )

    feedback_id: str
    decision_id: str
    product_id: str
    event: FeedbackEvent
    at: datetime
    recorded_at: datetime
    value: int | None
    cooldown_until: datetime | None = Field(description="After a dismiss: the product is not offered before")
    right_grant: RightGrantOut | None = Field(description="Only for a convert of a bundle with a right")


async def get_feedback(request: Request) -> FeedbackService:
    """The app's feedback service (built once in ``create_app``)."""
    service: FeedbackService = request.app.state.feedback
    return service


idempotency_key = idempotency_key_dependency(
    "feedback events", "Unique per event reported (a UUID); retries reuse it and get the same answer"
)


Feedback = Annotated[FeedbackService, Depends(get_feedback)]
IdempotencyKey = Annotated[str, Depends(idempotency_key)]
Writer = Annotated[Principal, Depends(require_scope("decisions:write"))]

RESPONSES: dict[int | str, dict[str, Any]] = {
    **ERROR_RESPONSES,
    201: {
        "description": "Recorded (or, with Idempotent-Replayed: true, recorded before under this key)",
        "headers": {
            "Idempotent-Replayed": {
                "description": "true when the answer is the stored one of an earlier request",
                "schema": {"type": "string", "enum": ["true"]},
            }
        },
    },
    400: {"model": ErrorResponse, "description": "Idempotency-Key header missing"},
    404: {"model": ErrorResponse, "description": "decision_not_found"},
    422: {
        "model": ErrorResponse,
        "description": "Invalid input; product_not_in_decision; idempotency_key_reused; "
        "feedback_in_future, feedback_too_old, feedback_before_decision, decision_too_old",
    },
    503: {"model": ErrorResponse, "description": "The feedback store is unavailable (nothing recorded)"},
}


@router.post(
    "",
    operation_id="record_feedback",
    summary="Record an impression, click, dismiss, accept, convert or redeem of a decision's bundle",
    status_code=201,
    response_model=FeedbackOut,
    responses=RESPONSES,
)
async def record_feedback(
    body: FeedbackRequestBody, principal: Writer, key: IdempotencyKey, feedback: Feedback
) -> Response:
    """Idempotent by (client, Idempotency-Key). A dismiss starts the product's cool-down; a convert
    of a bundle with a right grants it through rights-hub (``right_grant``)."""
    stored = await feedback.record(
        FeedbackInput(
            decision_id=body.decision_id,
            product_id=body.product_id,
            event=body.event,
            at=body.at,
            value=body.value,
        ),
        client=principal.client,
        key=key,
    )
    headers = {"Idempotent-Replayed": "true"} if stored.replayed else None
    return Response(
        stored.body, status_code=stored.status_code, media_type="application/json", headers=headers
    )
