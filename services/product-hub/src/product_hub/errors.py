"""The product hub's error codes, on the shared typed hierarchy (mapped to HTTP once, in qianmian_core)."""

from __future__ import annotations

from typing import Any

from qianmian_core.errors import ERROR_RESPONSES as CORE_ERROR_RESPONSES
from qianmian_core.errors import (
    ConflictError,
    DependencyUnavailableError,
    ErrorResponse,
    ForbiddenError,
    NotFoundError,
)


class ProductNotFoundError(NotFoundError):
    """No product with this id."""

    code = "product_not_found"


class CustomerNotFoundError(NotFoundError):
    """The profile service knows no customer with this id."""

    code = "customer_not_found"


class ProductExistsError(ConflictError):
    """A product with this id already exists."""

    code = "product_exists"


class VersionConflictError(ConflictError):
    """The client edited a stale version of the product (optimistic locking)."""

    code = "version_conflict"


class IllegalTransitionError(ConflictError):
    """The workflow does not allow this status change from the product's current status."""

    code = "illegal_transition"


class NotEditableError(ConflictError):
    """Only drafts may be edited; approved products change only through the workflow."""

    code = "not_editable"


class MakerCheckerError(ForbiddenError):
    """The approver must be someone other than the author."""

    code = "maker_checker_violation"


class NotAuthorError(ForbiddenError):
    """Only the author of a draft may edit it (keeps maker and checker apart)."""

    code = "not_author"


class ProfileUnavailableError(DependencyUnavailableError):
    """The profile service did not answer usably."""

    code = "dependency_unavailable"


#: Every error answer a product-hub route can give, for OpenAPI.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    **CORE_ERROR_RESPONSES,
    409: {"model": ErrorResponse, "description": "Conflicts with the product's current state or version"},
}

#: Routes that ask the profile service for customer facts can also answer 503.
ERROR_RESPONSES_WITH_PROFILE: dict[int | str, dict[str, Any]] = {
    **ERROR_RESPONSES,
    503: {"model": ErrorResponse, "description": "The profile service is unreachable"},
}
