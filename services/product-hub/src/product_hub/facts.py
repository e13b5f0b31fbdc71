"""Where customer facts come from: the profile service, behind a one-method protocol.

The profile service answers ``GET /v1/customers/{customer_id}/eligibility-facts`` with a JSON object
holding exactly the fields of :class:`qianmian_rules.CustomerFacts`.
"""

from __future__ import annotations

from typing import Protocol
from urllib.parse import quote

import httpx
from pydantic import ValidationError
from qianmian_core.logging import get_logger
from qianmian_rules import CustomerFacts

from product_hub.errors import CustomerNotFoundError, ProfileUnavailableError

log = get_logger(__name__)


class CustomerFactsProvider(Protocol):
    """Gives the rule engine's view of one customer."""

    async def facts_for(self, customer_id: str) -> CustomerFacts:
        """The customer's facts; raise CustomerNotFoundError or ProfileUnavailableError."""
        ...


class ProfileFactsClient:
    """Reads customer facts from the profile service over HTTP with a short timeout."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout_s: float = 1.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            timeout=httpx.Timeout(timeout_s),
            transport=transport,
        )

    async def facts_for(self, customer_id: str) -> CustomerFacts:
        """Ask profile for the customer's eligibility facts."""
        path = f"/v1/customers/{quote(customer_id, safe='')}/eligibility-facts"
        try:
            response = await self._client.get(path)
        except httpx.HTTPError as exc:
            log.warning("profile_unreachable", error_type=type(exc).__name__)
            raise ProfileUnavailableError("the profile service is unreachable") from None
        if response.status_code == 404:
            raise CustomerNotFoundError(
                f"customer {customer_id} not found", details={"customer_id": customer_id}
            )
        if response.status_code != 200:
            log.warning("profile_error", status=response.status_code)
            raise ProfileUnavailableError(
                "the profile service failed", details={"upstream_status": response.status_code}
            )
        try:
            return CustomerFacts.model_validate_json(response.content)
        except ValidationError:
            # A contract break, not the caller's fault: report it as a broken dependency.
            log.error("profile_contract_violation")
            raise ProfileUnavailableError("the profile service answered in an unexpected shape") from None

    async def aclose(self) -> None:
        """Close the pooled connections."""
        await self._client.aclose()
