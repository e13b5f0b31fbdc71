"""What an outbound list reads from other services: profile's customers page by page, and the
channel text of each content item from content-hub.

- :class:`CustomerFactsClient`: profile's ``GET /v1/customers/facts?segment=&after=&limit=`` (scope
  ``profile:read``), customers in id order with exactly the eligibility facts and consents that
  ``/eligibility-facts`` and ``/consents`` give one customer (what :class:`ProfileClient` reads for
  a live decision). A timeout is long: a page of thousands of customers is a bulk read.
- :class:`ContentRenderClient`: content-hub's ``GET /v1/content/render`` without a customer, i.e.
  the served variant filled with the product's facts and the neutral salutation, formatted for the
  channel as the customer sees or hears it (the SMS with its signature and opt-out instruction, the
  agent's script with its risk statement). One call per content item of a list, not per row; it
  never needs a customer's identity.
"""

from __future__ import annotations

from typing import Any, Protocol
from urllib.parse import urlencode

from pydantic import BaseModel, ConfigDict
from qianmian_core.clients import ServiceClient
from qianmian_core.errors import DependencyUnavailableError, NotFoundError

from recommender.service.profile import CustomerFactsWire, ProfileUnavailableError


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class CustomerFactsPageWire(_Wire):
    """A page of profile's ``GET /v1/customers/facts`` (customers in id order)."""

    customers: list[CustomerFactsWire]
    #: ``after`` of the next page; None on the last page.
    next_after: str | None


class CustomerPages(Protocol):
    """Customers of the bank page by page, in customer id order."""

    async def facts_page(
        self, *, segment: str | None, after: str | None, limit: int
    ) -> CustomerFactsPageWire: ...


class CustomerFactsClient(ServiceClient):
    """Reads profile's customers with their facts and consents, page by page."""

    service = "profile"
    unavailable_error = ProfileUnavailableError
    default_timeout_s = 30.0

    async def facts_page(
        self, *, segment: str | None, after: str | None, limit: int
    ) -> CustomerFactsPageWire:
        """Up to ``limit`` customers after ``after`` (optionally of one segment)."""
        query: dict[str, Any] = {"limit": limit}
        if segment is not None:
            query["segment"] = segment
        if after is not None:
            query["after"] = after
        return await self._client.get_model(f"/v1/customers/facts?{urlencode(query)}", CustomerFactsPageWire)


class RenderedWire(_Wire):
    """content-hub's ``GET /v1/content/render`` (only the fields read here)."""

    content_id: str
    version: int
    channel: str
    text: str


class ContentUnavailableError(DependencyUnavailableError):
    """content-hub could not be reached or answered badly."""

    code = "content_hub_unavailable"


class ContentNotRenderableError(Exception):
    """content-hub refuses to render the item now (no longer approved, out of its window, too long)."""


class ContentRenderer(Protocol):
    async def render(self, content_id: str, channel: str, at: str) -> RenderedWire: ...


class ContentRenderClient(ServiceClient):
    """Renders content items for a channel, non-personalised (no customer id is ever sent)."""

    service = "content-hub"
    unavailable_error = ContentUnavailableError
    default_timeout_s = 5.0

    async def render(self, content_id: str, channel: str, at: str) -> RenderedWire:
        """The channel's text of the item's served version as of ``at`` (ISO 8601).

        Raises :class:`ContentNotRenderableError` when content-hub answers 404/409/422 for the item,
        :class:`ContentUnavailableError` when it cannot be reached.
        """
        query = urlencode({"content_id": content_id, "channel": channel, "at": at})
        try:
            return await self._client.get_model(f"/v1/content/render?{query}", RenderedWire)
        except DependencyUnavailableError as exc:
            upstream = exc.details.get("upstream_status") if isinstance(exc.details, dict) else None
            if upstream in (409, 422):
                raise ContentNotRenderableError(content_id) from None
            raise
        except NotFoundError:
            raise ContentNotRenderableError(content_id) from None


__all__ = [
    "ContentNotRenderableError",
    "ContentRenderClient",
    "ContentRenderer",
    "ContentUnavailableError",
    "CustomerFactsClient",
    "CustomerFactsPageWire",
    "CustomerFactsWire",
    "CustomerPages",
    "RenderedWire",
]
