"""The rights hub's error codes, on the shared typed hierarchy (mapped to HTTP once, in qianmian_core)."""

from __future__ import annotations

from typing import Any

from qianmian_core.errors import ERROR_RESPONSES as CORE_ERROR_RESPONSES
from qianmian_core.errors import (
    ConflictError,
    ErrorResponse,
    ForbiddenError,
    NotFoundError,
    UnprocessableError,
)


class RightNotFoundError(NotFoundError):
    """No right with this id."""

    code = "right_not_found"


class ReservationNotFoundError(NotFoundError):
    """No reservation with this id."""

    code = "reservation_not_found"


class GrantNotFoundError(NotFoundError):
    """No grant with this id."""

    code = "grant_not_found"


class RightExistsError(ConflictError):
    """A right with this id already exists."""

    code = "right_exists"


class RightExhaustedError(ConflictError):
    """The right's count or money budget has nothing left: the honest answer to an over-promise."""

    code = "right_exhausted"


class CustomerLimitReachedError(ConflictError):
    """The customer already holds as many of this right as the per-customer limit allows."""

    code = "customer_limit_reached"


class RightNotAvailableError(ConflictError):
    """The right is not active or outside its validity window."""

    code = "right_not_available"


class InvalidStateError(ConflictError):
    """The reservation or grant is not in a state that allows this operation (e.g. already redeemed)."""

    code = "invalid_state"


class IllegalTransitionError(ConflictError):
    """The catalogue workflow does not allow this status change."""

    code = "illegal_transition"


class NotEditableError(ConflictError):
    """Only drafts may be edited."""

    code = "not_editable"


class VersionConflictError(ConflictError):
    """The client edited a stale version of the right (optimistic locking)."""

    code = "version_conflict"


class MakerCheckerError(ForbiddenError):
    """A right must be activated by someone other than its author."""

    code = "maker_checker_violation"


class NotAuthorError(ForbiddenError):
    """Only the author of a draft may edit it."""

    code = "not_author"


class IdempotencyKeyReusedError(UnprocessableError):
    """The Idempotency-Key was already used for a different request."""

    code = "idempotency_key_reused"


#: Every error answer a rights-hub route can give, for OpenAPI.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    **CORE_ERROR_RESPONSES,
    409: {"model": ErrorResponse, "description": "Conflicts with the current state, budget or limit"},
}

#: Ledger operations also answer 400 when the Idempotency-Key header is missing.
LEDGER_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    **ERROR_RESPONSES,
    400: {"model": ErrorResponse, "description": "Idempotency-Key header missing"},
}
