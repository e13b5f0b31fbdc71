"""The HTTP client of the profile service, against a stand-in app implementing the documented contract.

``GET /v1/customers/{id}/eligibility-facts`` with a bearer token -> 200 facts | 404 | 5xx; content-hub
keeps only segments and lifecycle stage.
"""

from __future__ import annotations

import httpx
import pytest
from content_hub.errors import CustomerNotFoundError
from content_hub.profile import CustomerTraits, ProfileTraitsClient, ProfileUnavailableError
from fastapi import FastAPI, HTTPException, Request

pytestmark = pytest.mark.anyio

TOKEN = "t" * 32


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
            return {"segments": "wealth"}
        if customer_id != "C1":
            raise HTTPException(404)
        return {
            "age": 41,
            "aum": 250000.5,
            "region": "440300",
            "segments": ["wealth"],
            "lifecycle_stage": "active",
        }

    return app


def client(token: str = TOKEN) -> ProfileTraitsClient:
    return ProfileTraitsClient("http://profile", token, transport=httpx.ASGITransport(app=contract_app()))


async def test_only_segments_and_stage_are_kept() -> None:
    assert await client().traits_for("C1") == CustomerTraits(frozenset({"wealth"}), "active")


async def test_unknown_customer_is_customer_not_found() -> None:
    with pytest.raises(CustomerNotFoundError):
        await client().traits_for("C2")


@pytest.mark.parametrize("customer_id", ["C-BROKEN", "C-ODD"])
async def test_server_errors_and_contract_breaks_are_dependency_unavailable(customer_id: str) -> None:
    with pytest.raises(ProfileUnavailableError):
        await client().traits_for(customer_id)


async def test_unreachable_profile_is_dependency_unavailable() -> None:
    unreachable = ProfileTraitsClient("http://127.0.0.1:9", TOKEN, timeout_s=0.5)
    with pytest.raises(ProfileUnavailableError):
        await unreachable.traits_for("C1")
    await unreachable.aclose()
