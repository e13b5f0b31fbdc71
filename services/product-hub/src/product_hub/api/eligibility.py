"""``/v1/eligibility``: evaluate the whole active catalogue against given customer facts."""

from __future__ import annotations

from fastapi import APIRouter
from qianmian_core.responses import json_response
from starlette.responses import Response

from product_hub.api.deps import Reader, Service
from product_hub.errors import ERROR_RESPONSES
from product_hub.schemas import EvaluateRequest, EvaluationOut

router = APIRouter(prefix="/v1/eligibility", tags=["eligibility"])


@router.post(
    "/evaluate",
    operation_id="evaluate_eligibility",
    summary="Which active products these facts allow, and every failed rule code for the others",
    response_model=EvaluationOut,
    responses=ERROR_RESPONSES,
)
def evaluate_eligibility(body: EvaluateRequest, _principal: Reader, service: Service) -> Response:
    return json_response(service.evaluate(body.facts, channel=body.channel, at=body.at))
