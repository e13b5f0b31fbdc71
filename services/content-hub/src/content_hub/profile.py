"""The customer traits rendering may use, from the profile service, behind a one-method protocol.

Content-hub asks profile for ``GET /v1/customers/{customer_id}/eligibility-facts`` rather than the full
360 view: that answer carries no personal identifiers at all (not even masked ones), and of it only
``segments`` and ``lifecycle_stage`` are read — everything else is dropped at parsing (data
minimisation, PIPL art. 6).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from pydantic import BaseModel, ConfigDict
from qianmian_core.clients import ServiceClient, path_of
from qianmian_core.errors import DependencyUnavailableError

from content_hub.errors import CustomerNotFoundError


class ProfileUnavailableError(DependencyUnavailableError):
    """The profile service did not answer usably (rendering then degrades to neutral values)."""

    code = "dependency_unavailable"


@dataclass(frozen=True, slots=True)
class CustomerTraits:
    """The only customer facts content may use: non-sensitive, chosen for salutations."""

    segments: frozenset[str]
    lifecycle_stage: str | None


class CustomerTraitsProvider(Protocol):
    """Gives the renderer's view of one customer."""

    async def traits_for(self, customer_id: str) -> CustomerTraits:
        """The customer's traits; raise CustomerNotFoundError or a DependencyUnavailableError."""
        ...


class _TraitsBody(BaseModel):
    # Every other field of the answer is ignored on purpose.
    model_config = ConfigDict(extra="ignore")

    segments: list[str]
    lifecycle_stage: str | None = None


class ProfileTraitsClient(ServiceClient):
    """Reads customer traits from the profile service over HTTP with a short timeout."""

    service = "profile"
    unavailable_error = ProfileUnavailableError
    default_timeout_s = 0.5

    async def traits_for(self, customer_id: str) -> CustomerTraits:
        """Ask profile for the customer's segments and lifecycle stage."""
        body = await self._client.get_model(
            path_of("v1", "customers", customer_id, "eligibility-facts"),
            _TraitsBody,
            not_found=CustomerNotFoundError(
                f"customer {customer_id} not found", details={"customer_id": customer_id}
            ),
        )
        return CustomerTraits(frozenset(body.segments), body.lifecycle_stage)
