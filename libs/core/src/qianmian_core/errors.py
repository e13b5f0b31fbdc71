"""One error model for every service, mapped to HTTP in exactly one place.

Every error answer has the shape ``{"error": {"code": str, "message": str, "details": ...}}``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from qianmian_core.logging import get_logger

log = get_logger(__name__)


class ErrorDetail(BaseModel):
    """The body of an error answer."""

    code: str = Field(description="Stable machine-readable code, e.g. product_not_found")
    message: str = Field(description="Human-readable explanation")
    details: Any = Field(default=None, description="Structured details, e.g. the invalid fields")


class ErrorResponse(BaseModel):
    """Every 4xx and 5xx answer of every service."""

    error: ErrorDetail


class AppError(Exception):
    """Base of the typed error hierarchy; subclasses fix the HTTP status and default code."""

    status_code: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"

    def __init__(self, message: str, *, code: str | None = None, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.error_code = code or self.code
        self.details = details


class BadRequestError(AppError):
    """The request is malformed in a way validation cannot express."""

    status_code = 400
    code = "bad_request"


class UnauthorizedError(AppError):
    """No or an unknown bearer token."""

    status_code = 401
    code = "unauthorized"


class ForbiddenError(AppError):
    """The token is valid but lacks the scope, or the actor may not do this."""

    status_code = 403
    code = "forbidden"


class NotFoundError(AppError):
    """The addressed resource does not exist."""

    status_code = 404
    code = "not_found"


class ConflictError(AppError):
    """The request conflicts with the current state (duplicate id, wrong workflow state)."""

    status_code = 409
    code = "conflict"


class UnprocessableError(AppError):
    """Well-formed but semantically invalid input."""

    status_code = 422
    code = "validation_error"


class DependencyUnavailableError(AppError):
    """A database, store or service this request needs is not reachable."""

    status_code = 503
    code = "dependency_unavailable"


#: For OpenAPI: document the error shape on every route with ``responses=ERROR_RESPONSES``.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": desc}
    for status, desc in (
        (401, "Missing or unknown bearer token"),
        (403, "Token lacks the required scope"),
        (404, "Not found"),
        (422, "Invalid input"),
    )
}


def error_response(status: int, code: str, message: str, details: Any = None) -> Response:
    """Encode the error shape with orjson."""
    body = {"error": {"code": code, "message": message, "details": details}}
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


def _validation_details(exc: RequestValidationError) -> list[dict[str, Any]]:
    details = []
    for err in exc.errors():
        # Never echo the offending input back: it may be a phone or ID number.
        details.append(
            {"loc": [str(p) for p in err.get("loc", ())], "msg": err.get("msg"), "type": err.get("type")}
        )
    return details


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "too_many_requests",
}


def install_error_handlers(app: FastAPI) -> None:
    """Map every exception to the one error shape."""

    async def on_app_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, AppError)
        if exc.status_code >= 500:
            log.error("request_failed", code=exc.error_code, message=exc.message)
        return error_response(exc.status_code, exc.error_code, exc.message, exc.details)

    async def on_validation(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return error_response(422, "validation_error", "request validation failed", _validation_details(exc))

    async def on_http(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, str(exc.detail))

    async def on_unexpected(_request: Request, exc: Exception) -> Response:
        log.exception("unhandled_error", error_type=type(exc).__name__)
        return error_response(500, "internal_error", "internal error")

    app.add_exception_handler(AppError, on_app_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_unexpected)
