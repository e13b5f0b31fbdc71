"""The content hub's error codes, on the shared typed hierarchy (mapped to HTTP once, in qianmian_core)."""

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


class ContentNotFoundError(NotFoundError):
    """No content item with this id."""

    code = "content_not_found"


class VersionNotFoundError(NotFoundError):
    """The content item has no such version."""

    code = "version_not_found"


class VariantNotFoundError(NotFoundError):
    """The served version has no variant for this channel."""

    code = "variant_not_found"


class CustomerNotFoundError(NotFoundError):
    """The profile service knows no customer with this id."""

    code = "customer_not_found"


class ContentExistsError(ConflictError):
    """A content item with this id already exists."""

    code = "content_exists"


class IllegalTransitionError(ConflictError):
    """The workflow does not allow this move from the version's current status."""

    code = "illegal_transition"


class NotEditableError(ConflictError):
    """Only drafts are edited in place; anything else changes through a new version."""

    code = "not_editable"


class OpenVersionExistsError(ConflictError):
    """A draft or in-review version is already open; finish it before starting another."""

    code = "open_version_exists"


class NotApprovedError(ConflictError):
    """The item has no approved version, so nothing may be served."""

    code = "content_not_approved"


class OutOfWindowError(ConflictError):
    """The approved version is outside its validity window at this time."""

    code = "content_out_of_window"


class RenderedTooLongError(ConflictError):
    """Filled in for this customer, the text exceeds the channel's length limit (never truncated)."""

    code = "rendered_too_long"


class MakerCheckerError(ForbiddenError):
    """The reviewer must be someone other than the author."""

    code = "maker_checker_violation"


class NotAuthorError(ForbiddenError):
    """Only the author of a draft may edit it (keeps maker and checker apart)."""

    code = "not_author"


class ComplianceFindingsError(UnprocessableError):
    """Screening found problems; ``details`` lists every finding with its position."""

    code = "compliance_findings"


class CommentRequiredError(UnprocessableError):
    """A rejection must say why, so the author can rework the content."""

    code = "comment_required"


#: Every error answer a content-hub route can give, for OpenAPI.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    **CORE_ERROR_RESPONSES,
    409: {"model": ErrorResponse, "description": "Conflicts with the content's current state"},
}
