"""The shared JSON service client maps every answer of another service onto the typed errors."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel
from qianmian_core.clients import JsonServiceClient, ServiceClient, dev_client_token, path_of
from qianmian_core.errors import DependencyUnavailableError, NotFoundError

pytestmark = pytest.mark.anyio

TOKEN = "s" * 32


class Thing(BaseModel):
    name: str
    size: int


class ThingNotFoundError(NotFoundError):
    code = "thing_not_found"


class ThingServiceDownError(DependencyUnavailableError):
    code = "thing_service_down"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def stand_in() -> FastAPI:
    app = FastAPI()

    @app.get("/v1/things/{thing_id}", response_model=None)
    async def thing(thing_id: str, request: Request) -> object:
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            raise HTTPException(401)
        if thing_id == "broken":
            raise HTTPException(502)
        if thing_id == "odd":
            return {"name": 3}
        if thing_id == "garbage":
            return PlainTextResponse("<html>not json</html>")
        if thing_id != "t1":
            raise HTTPException(404)
        return {"name": "cup", "size": 2}

    return app


def client(token: str = TOKEN) -> JsonServiceClient:
    return JsonServiceClient(
        "things",
        "http://things/",
        token,
        transport=httpx.ASGITransport(app=stand_in()),
        unavailable_error=ThingServiceDownError,
    )


async def test_model_and_json_round_trip() -> None:
    assert await client().get_model("/v1/things/t1", Thing) == Thing(name="cup", size=2)
    assert await client().get_json("/v1/things/t1") == {"name": "cup", "size": 2}


async def test_404_raises_the_callers_not_found_error_or_a_generic_one() -> None:
    with pytest.raises(ThingNotFoundError):
        await client().get_model("/v1/things/t2", Thing, not_found=ThingNotFoundError("no t2"))
    with pytest.raises(NotFoundError) as generic:
        await client().get_json("/v1/things/t2")
    assert generic.value.error_code == "not_found"


@pytest.mark.parametrize("thing_id", ["broken", "odd", "garbage"])
async def test_server_errors_and_contract_breaks_are_dependency_unavailable(thing_id: str) -> None:
    with pytest.raises(ThingServiceDownError) as down:
        await client().get_model(f"/v1/things/{thing_id}", Thing)
    assert down.value.status_code == 503


async def test_invalid_json_is_dependency_unavailable_for_get_json() -> None:
    with pytest.raises(ThingServiceDownError):
        await client().get_json("/v1/things/garbage")


async def test_a_rejected_token_is_our_misconfiguration_not_the_callers_fault() -> None:
    with pytest.raises(ThingServiceDownError) as down:
        await client("x" * 32).get_json("/v1/things/t1")
    assert down.value.details == {"upstream_status": 401}


async def test_unreachable_service_is_dependency_unavailable() -> None:
    unreachable = JsonServiceClient("things", "http://127.0.0.1:9", TOKEN, timeout_s=0.5)
    with pytest.raises(DependencyUnavailableError, match="unreachable"):
        await unreachable.get_json("/v1/things/t1")
    await unreachable.aclose()


def test_path_segments_are_escaped() -> None:
    assert path_of("v1", "customers", "C1/../C2", "facts") == "/v1/customers/C1%2F..%2FC2/facts"


def test_dev_client_token(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text("clients:\n  a:\n    token: tok-a\n", encoding="utf-8")
    assert dev_client_token(tokens, "a", "profile") == "tok-a"
    with pytest.raises(ValueError, match="no client 'b' to call profile"):
        dev_client_token(tokens, "b", "profile")
    with pytest.raises(ValueError, match="cannot read token file"):
        dev_client_token(tmp_path / "missing.yaml", "a", "profile")


class ThingClient(ServiceClient):
    service = "things"
    unavailable_error = ThingServiceDownError
    default_timeout_s = 0.25

    async def thing(self, name: str) -> Thing:
        return await self._client.get_model(path_of("things", name), Thing)


async def test_a_service_client_subclass_names_its_service_error_and_timeout() -> None:
    client = ThingClient("http://127.0.0.1:9", TOKEN)
    assert client._client.service == "things"
    with pytest.raises(ThingServiceDownError):
        await client.thing("x")
    await client.aclose()
