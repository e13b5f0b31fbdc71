"""The recommender reads concurrent decisions' customers from profile in one lookup, and each answer is
what profile's single-customer endpoints give."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from profile_service.cli import main as profile_cli
from profile_service.main import create_app as create_profile
from profile_service.service.activity import NullPusher
from profile_service.settings import ProfileSettings
from qianmian_bankgen.generator import generate
from qianmian_core.testing import dev_token
from recommender.service.profile import (
    LOOKUP_MAX,
    CustomerNotFoundError,
    ProfileClient,
    ProfileUnavailableError,
)

from tests.conftest import COMMON

CUSTOMERS = 60
IDS = [f"C{i:09d}" for i in range(1, CUSTOMERS + 1)]


class Recording(httpx.AsyncBaseTransport):
    """The profile app in memory, recording each request's method, path and number of ids."""

    def __init__(self, app: FastAPI) -> None:
        self.inner = httpx.ASGITransport(app=app)
        self.requests: list[tuple[str, str, int]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        named = len(json.loads(request.content)["customer_ids"]) if request.method == "POST" else 1
        self.requests.append((request.method, request.url.path, named))
        return await self.inner.handle_async_request(request)


class Down(httpx.AsyncBaseTransport):
    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)


@pytest.fixture(scope="module")
def profile_app(tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    bank = tmp_path_factory.mktemp("bank")
    generate(customers=CUSTOMERS, seed=11, as_of=datetime.now(UTC).date(), out=bank)
    url = f"sqlite:///{Path(tmp_path_factory.mktemp('profile')) / 'profile.db'}"
    mp = pytest.MonkeyPatch()
    mp.setenv("PROFILE_DATABASE_URL", url)
    try:
        assert profile_cli(["seed", "--data", str(bank)]) == 0
    finally:
        mp.undo()
    return create_profile(ProfileSettings(database_url=url, **COMMON), pusher=NullPusher())


def _client(transport: httpx.AsyncBaseTransport) -> ProfileClient:
    return ProfileClient("http://profile.test", dev_token("recommender"), transport=transport)


def test_concurrent_customers_are_read_in_one_lookup_equal_to_the_endpoints(profile_app: FastAPI) -> None:
    async def scenario() -> None:
        recording = Recording(profile_app)
        client = _client(recording)
        asked = [*IDS[:40], IDS[3], "C999999999"]
        answers = await asyncio.gather(*(client.customer(c) for c in asked), return_exceptions=True)
        assert recording.requests == [("POST", "/v1/customers/facts/lookup", 41)]
        assert client.lookups_sent == 1
        assert isinstance(answers[-1], CustomerNotFoundError)
        assert answers[-1].details == {"customer_id": "C999999999"}
        for customer_id, answer in zip(asked[:-1], answers[:-1], strict=True):
            assert answer == await client.customer_by_endpoints(customer_id), customer_id
        views = [a for a in answers[:-1] if not isinstance(a, BaseException)]
        assert any(v.facts.held_product_ids for v in views)
        with pytest.raises(CustomerNotFoundError):
            await client.customer_by_endpoints("C999999999")
        await client.aclose()

    asyncio.run(scenario())


def test_large_demand_is_split_into_lookups_of_at_most_the_maximum(profile_app: FastAPI) -> None:
    async def scenario() -> None:
        recording = Recording(profile_app)
        client = _client(recording)
        asked = [f"C{i:09d}" for i in range(1, 2 * LOOKUP_MAX + 201)]  # 60 exist, the rest do not
        answers = await asyncio.gather(*(client.customer(c) for c in asked), return_exceptions=True)
        assert sorted(n for _, _, n in recording.requests) == [200, LOOKUP_MAX, LOOKUP_MAX]
        found = [a for a in answers if not isinstance(a, BaseException)]
        assert len(found) == CUSTOMERS
        assert all(isinstance(a, CustomerNotFoundError) for a in answers[CUSTOMERS:])
        # later demand while nothing is out goes in a lookup of its own
        await client.customer(IDS[0])
        assert len(recording.requests) == 4
        await client.aclose()

    asyncio.run(scenario())


def test_profile_down_fails_every_waiting_customer_as_unavailable() -> None:
    async def scenario() -> None:
        client = _client(Down())
        answers = await asyncio.gather(*(client.customer(c) for c in IDS[:5]), return_exceptions=True)
        assert all(isinstance(a, ProfileUnavailableError) for a in answers)
        await client.aclose()

    asyncio.run(scenario())


def test_a_caller_giving_up_does_not_cancel_the_others(profile_app: FastAPI) -> None:
    async def scenario() -> None:
        client = _client(Recording(profile_app))
        quitter = asyncio.ensure_future(client.customer(IDS[0]))
        stayer = asyncio.ensure_future(client.customer(IDS[0]))
        await asyncio.sleep(0)
        quitter.cancel()
        view = await stayer
        assert view == await client.customer_by_endpoints(IDS[0])
        assert quitter.cancelled()
        await client.aclose()

    asyncio.run(scenario())


class WithoutLookup(Recording):
    """A profile of a version before the lookup: 404 for it, the single-customer endpoints as ever."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/customers/facts/lookup":
            self.requests.append((request.method, request.url.path, 0))
            return httpx.Response(404, json={"error": {"code": "not_found", "message": "Not Found"}})
        return await super().handle_async_request(request)


def test_a_profile_without_the_lookup_is_read_customer_by_customer(profile_app: FastAPI) -> None:
    async def scenario() -> None:
        old = WithoutLookup(profile_app)
        client = _client(old)
        answers = await asyncio.gather(
            *(client.customer(c) for c in [*IDS[:3], "C999999999"]), return_exceptions=True
        )
        assert isinstance(answers[-1], CustomerNotFoundError)
        reference = _client(Recording(profile_app))
        for customer_id, answer in zip(IDS[:3], answers[:3], strict=True):
            assert answer == await reference.customer_by_endpoints(customer_id)
        assert [path for _, path, _ in old.requests].count("/v1/customers/facts/lookup") == 1
        assert len(old.requests) == 1 + 2 * 4  # then two GETs per customer
        await client.aclose()
        await reference.aclose()

    asyncio.run(scenario())


def test_one_client_serves_successive_event_loops(profile_app: FastAPI) -> None:
    client = _client(Recording(profile_app))

    async def stuck() -> None:  # a lookup left in flight when its loop ends
        client._in_flight = 4  # the state a loop that ended mid-lookup leaves behind
        client._loop = asyncio.get_running_loop()

    async def read() -> object:
        return await asyncio.wait_for(client.customer(IDS[0]), timeout=10)

    asyncio.run(stuck())
    assert asyncio.run(read()) == asyncio.run(client.customer_by_endpoints(IDS[0]))
