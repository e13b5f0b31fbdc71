"""The service app factory: error shape, auth, metrics labels and probes, as a client sees them."""

import gc
from pathlib import Path

import pytest
from fastapi import APIRouter, Depends, FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel, Field
from qianmian_core.app import GC_THRESHOLDS, create_service_app, gc_thresholds
from qianmian_core.auth import Principal, TokenRegistry, require_scope
from qianmian_core.errors import ConflictError, NotFoundError
from qianmian_core.health import ReadinessCheck
from qianmian_core.testing import auth_headers


class Item(BaseModel):
    name: str = Field(min_length=1)
    qty: int = Field(ge=1)


def build_app(ready: bool = True) -> FastAPI:
    router = APIRouter()

    @router.get("/v1/things/{thing_id}")
    async def get_thing(
        thing_id: str, _p: Principal = Depends(require_scope("products:read"))
    ) -> dict[str, str]:
        if thing_id == "missing":
            raise NotFoundError("thing not found", code="thing_not_found")
        if thing_id == "boom":
            raise RuntimeError("secret 13812345678")
        return {"id": thing_id}

    @router.post("/v1/things")
    async def create_thing(
        item: Item, _p: Principal = Depends(require_scope("products:write"))
    ) -> dict[str, str]:
        if item.name == "dup":
            raise ConflictError("already exists", details={"name": item.name})
        return {"name": item.name}

    def probe() -> None:
        if not ready:
            raise ConnectionError("db down")

    return create_service_app(
        service="test-svc",
        title="t",
        version="0",
        description="d",
        tokens=TokenRegistry.from_file(Path("config/dev-tokens.yaml")),
        routers=[router],
        readiness_checks=[ReadinessCheck("database", probe)],
    )


@pytest.fixture
def client() -> TestClient:
    return TestClient(build_app(), raise_server_exceptions=False)


def test_missing_token_is_401_with_error_shape(client: TestClient) -> None:
    resp = client.get("/v1/things/a")
    assert resp.status_code == 401
    assert resp.json()["error"]["code"] == "unauthorized"
    assert resp.headers["www-authenticate"] == "Bearer"


def test_wrong_scope_is_403(client: TestClient) -> None:
    resp = client.post("/v1/things", json={"name": "x", "qty": 1}, headers=auth_headers("readonly-analyst"))
    assert resp.status_code == 403
    assert resp.json()["error"] == {
        "code": "insufficient_scope",
        "message": "scope 'products:write' required",
        "details": {"scope": "products:write"},
    }


def test_invalid_body_is_422_without_echoing_input(client: TestClient) -> None:
    resp = client.post(
        "/v1/things", json={"name": "13812345678", "qty": 0}, headers=auth_headers("console-alice")
    )
    assert resp.status_code == 422
    body = resp.json()["error"]
    assert body["code"] == "validation_error"
    assert body["details"][0]["loc"] == ["body", "qty"]
    assert "13812345678" not in resp.text


def test_typed_errors_map_to_status(client: TestClient) -> None:
    headers = auth_headers("console-alice")
    assert client.get("/v1/things/missing", headers=headers).json()["error"]["code"] == "thing_not_found"
    resp = client.post("/v1/things", json={"name": "dup", "qty": 1}, headers=headers)
    assert resp.status_code == 409
    assert resp.json()["error"]["details"] == {"name": "dup"}


def test_unexpected_error_is_500_and_leaks_nothing(client: TestClient) -> None:
    resp = client.get("/v1/things/boom", headers=auth_headers("console-alice"))
    assert resp.status_code == 500
    assert resp.json() == {"error": {"code": "internal_error", "message": "internal error", "details": None}}


def test_unknown_route_is_404_in_error_shape(client: TestClient) -> None:
    resp = client.get("/nope")
    assert resp.status_code == 404
    assert resp.json()["error"]["code"] == "not_found"


def test_metrics_use_route_templates_not_ids(client: TestClient) -> None:
    client.get("/v1/things/C000000042", headers=auth_headers("console-alice"))
    text = client.get("/metrics").text
    assert 'route="/v1/things/{thing_id}"' in text
    assert "C000000042" not in text
    assert 'service="test-svc"' in text


def test_probes() -> None:
    with TestClient(build_app(ready=True)) as ok:
        assert ok.get("/healthz").json() == {"status": "ok"}
        assert ok.get("/readyz").json() == {"status": "ready", "checks": {"database": "ok"}}
    with TestClient(build_app(ready=False)) as down:
        resp = down.get("/readyz")
        assert resp.status_code == 503
        assert resp.json()["error"]["details"] == {"database": "failed: ConnectionError"}


def test_a_running_service_collects_cycles_less_often_and_restores_the_thresholds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = gc.get_threshold()
    with TestClient(build_app()):
        assert gc.get_threshold() == GC_THRESHOLDS
    assert gc.get_threshold() == before
    monkeypatch.setenv("QIANMIAN_GC_THRESHOLDS", "700,10,10")
    assert gc_thresholds() == (700, 10, 10)
    for bad in ("700,10", "a,b,c", "0,10,10"):
        monkeypatch.setenv("QIANMIAN_GC_THRESHOLDS", bad)
        with pytest.raises(ValueError, match="QIANMIAN_GC_THRESHOLDS"):
            gc_thresholds()
