"""Where customer facts come from: the profile service, behind a one-method protocol.

The profile service answers ``GET /v1/customers/{customer_id}/eligibility-facts`` with a JSON object
holding exactly the fields of :class:`qianmian_rules.CustomerFacts`.
"""

from __future__ import annotations

from typing import Protocol

from qianmian_core.clients import ServiceClient, path_of
from qianmian_rules import CustomerFacts

from product_hub.errors import CustomerNotFoundError, ProfileUnavailableError


class CustomerFactsProvider(Protocol):
    """Gives the rule engine's view of one customer."""

    async def facts_for(self, customer_id: str) -> CustomerFacts:
        """The customer's facts; raise CustomerNotFoundError or ProfileUnavailableError."""
        ...


class ProfileFactsClient(ServiceClient):
    """Reads customer facts from the profile service over HTTP with a short timeout."""

    service = "profile"
    unavailable_error = ProfileUnavailableError
    default_timeout_s = 1.0

    async def facts_for(self, customer_id: str) -> CustomerFacts:
        """Ask profile for the customer's eligibility facts."""
        return await self._client.get_model(
            path_of("v1", "customers", customer_id, "eligibility-facts"),
            CustomerFacts,
            not_found=CustomerNotFoundError(
                f"customer {customer_id} not found", details={"customer_id": customer_id}
            ),
        )
