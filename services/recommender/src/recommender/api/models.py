"""``/v1/models``: which model is serving, and reloading the newest approved one."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from qianmian_core.auth import Principal, require_scope
from qianmian_core.errors import ERROR_RESPONSES, ConflictError, NotFoundError
from starlette.concurrency import run_in_threadpool

from recommender.ml.registry import RegistryError
from recommender.service.holder import ModelHolder

router = APIRouter(prefix="/v1/models", tags=["models"])


async def get_holder(request: Request) -> ModelHolder:
    """The app's model holder (built once in ``create_app``)."""
    holder: ModelHolder = request.app.state.model_holder
    return holder


Holder = Annotated[ModelHolder, Depends(get_holder)]
Reader = Annotated[Principal, Depends(require_scope("models:read"))]
Admin = Annotated[Principal, Depends(require_scope("models:admin"))]


@router.get(
    "/current",
    operation_id="get_current_model",
    summary="The model version serving now: type, hyper-parameters, data window, metrics",
    responses=ERROR_RESPONSES,
)
async def current_model(_principal: Reader, holder: Holder) -> dict[str, Any]:
    current = holder.current
    if current is None:
        raise NotFoundError("no approved model is loaded", code="no_model")
    return current.manifest.summary()


@router.post(
    "/reload",
    operation_id="reload_model",
    summary="Load the newest approved model and swap it in without dropping requests",
    responses={**ERROR_RESPONSES, 409: ERROR_RESPONSES[404] | {"description": "Model rejected"}},
)
async def reload_model(_principal: Admin, holder: Holder) -> dict[str, Any]:
    try:
        result = await run_in_threadpool(holder.reload)
    except RegistryError as exc:
        raise ConflictError(str(exc), code="model_rejected") from None
    return {"version": result.version, "previous": result.previous, "changed": result.changed}
