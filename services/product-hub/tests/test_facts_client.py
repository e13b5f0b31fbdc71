"""The HTTP client of the profile service, against a stand-in app that implements the documented contract.

The lead adds a cross-service test against the real profile service; this one pins the contract:
``GET /v1/customers/{id}/eligibility-facts`` with a bearer token -> 200 facts | 404 | 5xx.
"""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
from fastapi import FastAPI, HTTPException, Request
from product_hub.errors import CustomerNotFoundError, ProfileUnavailableError
from product_hub.facts import ProfileFactsClient
from qianmian_rules import CustomerFacts

pytestmark = pytest.mark.anyio

TOKEN = "t" * 32
FACTS = CustomerFacts(
    age=41,
    aum=250_000.5,
    region="440300",
    segments=frozenset({"wealth", "payroll"}),
    lifecycle_stage="active",
    held_product_ids=frozenset({"DEP-3M"}),
    held_product_types=frozenset({"deposit"}),
    risk_level=3,
    risk_expires_at=datetime(2031, 1, 1, tzinfo=UTC),
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def contract_app() -> FastAPI:
    app = FastAPI()

    @app.get("/v1/customers/{customer_id}/eligibility-facts")
    async def facts(customer_id: str, request: Request) -> dict[str, object]:
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            raise HTTPException(401)
        if customer_id == "C-BROKEN":
            raise HTTPException(500)
        if customer_id == "C-ODD":
            return {"age": "old"}
        if customer_id != "C1":
            raise HTTPException(404)
        return FACTS.model_dump(mode="json")

    return app


def client(token: str = TOKEN) -> ProfileFactsClient:
    return ProfileFactsClient("http://profile", token, transport=httpx.ASGITransport(app=contract_app()))


async def test_facts_round_trip() -> None:
    assert await client().facts_for("C1") == FACTS


async def test_unknown_customer_is_customer_not_found() -> None:
    with pytest.raises(CustomerNotFoundError):
        await client().facts_for("C2")


@pytest.mark.parametrize("customer_id", ["C-BROKEN", "C-ODD"])
async def test_server_errors_and_contract_breaks_are_dependency_unavailable(customer_id: str) -> None:
    with pytest.raises(ProfileUnavailableError):
        await client().facts_for(customer_id)


async def test_a_rejected_token_is_dependency_unavailable_not_the_callers_fault() -> None:
    with pytest.raises(ProfileUnavailableError):
        await client("wrong" * 8).facts_for("C1")


async def test_unreachable_profile_is_dependency_unavailable() -> None:
    # Port 9 (discard) is closed on test machines: the connection is refused at once.
    unreachable = ProfileFactsClient("http://127.0.0.1:9", TOKEN, timeout_s=0.5)
    with pytest.raises(ProfileUnavailableError):
        await unreachable.facts_for("C1")
    await unreachable.aclose()


async def test_customer_ids_are_escaped_into_the_path() -> None:
    with pytest.raises(CustomerNotFoundError):
        await client().facts_for("C1/../C1")
