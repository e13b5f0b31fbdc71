"""The profile service as the decision pipeline reads it: eligibility facts and consents."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Protocol

from pydantic import BaseModel, ConfigDict
from qianmian_core.clients import ServiceClient, path_of
from qianmian_core.errors import DependencyUnavailableError, NotFoundError
from qianmian_rules import CustomerFacts


class CustomerNotFoundError(NotFoundError):
    """The profile service does not know the customer."""

    code = "customer_not_found"


class ProfileUnavailableError(DependencyUnavailableError):
    """The profile service could not be reached or answered badly."""

    code = "profile_unavailable"


class ConsentWire(BaseModel):
    """profile's ``GET /v1/customers/{id}/consents`` (only the fields read here)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    customer_id: str
    channels: dict[str, bool]
    personalised: bool


@dataclass(frozen=True, slots=True)
class ProfileView:
    """The customer as the profile service describes them."""

    facts: CustomerFacts
    consents: Mapping[str, bool]
    personalised: bool


class ProfileSource(Protocol):
    async def customer(self, customer_id: str) -> ProfileView: ...


class ProfileClient(ServiceClient):
    """Reads eligibility facts and consents from the profile service."""

    service = "profile"
    unavailable_error = ProfileUnavailableError
    default_timeout_s = 0.5

    async def customer(self, customer_id: str) -> ProfileView:
        """Facts and consents, fetched concurrently; 404 → CustomerNotFoundError."""
        missing = CustomerNotFoundError(
            f"customer {customer_id} not found", details={"customer_id": customer_id}
        )
        facts, consents = await asyncio.gather(
            self._client.get_model(
                path_of("v1", "customers", customer_id, "eligibility-facts"), CustomerFacts, not_found=missing
            ),
            self._client.get_model(
                path_of("v1", "customers", customer_id, "consents"), ConsentWire, not_found=missing
            ),
        )
        return ProfileView(facts, MappingProxyType(dict(consents.channels)), consents.personalised)


__all__ = [
    "ConsentWire",
    "CustomerNotFoundError",
    "ProfileClient",
    "ProfileSource",
    "ProfileUnavailableError",
    "ProfileView",
]
