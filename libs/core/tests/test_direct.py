"""Direct routes: answered without the router, exactly as the router answers them."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from pydantic import BaseModel, ValidationError
from qianmian_core.app import create_service_app
from qianmian_core.auth import TokenRegistry, require_scope
from qianmian_core.direct import DirectRoutes
from qianmian_core.errors import ConflictError
from qianmian_core.responses import json_response
from qianmian_core.testing import auth_headers
from starlette.responses import Response

_write = require_scope("products:write")


class Item(BaseModel):
    name: str
    qty: int


#: How many times the direct handler ran (the router's copy of it counts the same way).
CALLS: list[str] = []


class ItemRoute(APIRoute):
    """A route that takes its inputs itself, as the recommender's decision route does."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        async def handler(request: Request) -> Response:
            await _write(request)
            try:
                item = Item.model_validate_json(await request.body() or b"null")
            except ValidationError as exc:
                raise RequestValidationError(
                    [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_input=False)]
                ) from None
            CALLS.append(request.scope.get("route").path)  # type: ignore[union-attr]
            if item.name == "dup":
                raise ConflictError("already exists", details={"name": item.name})
            if item.name == "boom":
                raise RuntimeError("secret 13812345678")
            return json_response({"name": item.name, "qty": item.qty})

        return handler


async def create_item(item: Item) -> dict[str, Any]:  # the documented signature (OpenAPI)
    return item.model_dump()


def build(direct: bool) -> FastAPI:
    router = APIRouter(prefix="/v1/items")
    router.add_api_route("", create_item, methods=["POST"], route_class_override=ItemRoute)
    route = router.routes[-1]
    assert isinstance(route, ItemRoute)
    return create_service_app(
        service="direct-svc",
        title="t",
        version="0",
        description="d",
        tokens=TokenRegistry.from_file(Path("config/dev-tokens.yaml")),
        routers=[router],
        direct_routes=[route] if direct else (),
    )


CASES: list[tuple[str, str, dict[str, str], bytes]] = [
    ("POST", "/v1/items", {"content-type": "application/json"}, b'{"name": "a", "qty": 2}'),
    ("POST", "/v1/items", {}, b'{"name": "a", "qty": "x"}'),  # 422
    ("POST", "/v1/items", {}, b"not json"),  # 422
    ("POST", "/v1/items", {}, b'{"name": "dup", "qty": 1}'),  # 409 (AppError)
    ("POST", "/v1/items", {}, b'{"name": "boom", "qty": 1}'),  # 500, nothing leaked
    ("GET", "/v1/items", {}, b""),  # 405 from the router
    ("POST", "/v1/items/", {}, b'{"name": "a", "qty": 2}'),  # not exact: the router's answer
]


@pytest.mark.parametrize(("method", "path", "headers", "body"), CASES)
@pytest.mark.parametrize("token", ["console-alice", None])
def test_a_direct_route_answers_as_the_router_does(
    method: str, path: str, headers: dict[str, str], body: bytes, token: str | None
) -> None:
    auth = auth_headers(token) if token else {}
    answers = []
    for direct in (False, True):
        client = TestClient(build(direct), raise_server_exceptions=False, follow_redirects=False)
        resp = client.request(method, path, content=body, headers={**headers, **auth})
        answers.append((resp.status_code, resp.content, resp.headers.get("content-type")))
    assert answers[1] == answers[0]
    assert "13812345678" not in answers[1][1].decode()


def test_a_direct_route_is_labelled_and_timed_by_its_template() -> None:
    CALLS.clear()
    client = TestClient(build(True))
    resp = client.post("/v1/items", json={"name": "a", "qty": 1}, headers=auth_headers("console-alice"))
    assert resp.status_code == 200
    assert resp.json() == {"name": "a", "qty": 1}
    assert CALLS == ["/v1/items"]
    text = client.get("/metrics").text
    assert 'method="POST",route="/v1/items",service="direct-svc",status="200"' in text
    # Still documented as the route it is.
    assert "/v1/items" in client.get("/openapi.json").json()["paths"]


def test_a_route_with_path_parameters_cannot_be_direct() -> None:
    route = APIRoute("/v1/items/{item_id}", create_item, methods=["GET"])
    with pytest.raises(ValueError, match="no path parameters"):
        DirectRoutes(FastAPI(), [route])
