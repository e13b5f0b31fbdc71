from __future__ import annotations

from fastapi.testclient import TestClient
from product_hub.main import create_app
from product_hub.settings import ProductHubSettings

EXPECTED_OPERATIONS = {
    ("post", "/v1/products"): "create_product",
    ("get", "/v1/products"): "list_products",
    ("get", "/v1/products/{product_id}"): "get_product",
    ("patch", "/v1/products/{product_id}"): "update_product",
    ("post", "/v1/products/{product_id}/transitions"): "transition_product",
    ("get", "/v1/products/{product_id}/history"): "get_product_history",
    ("post", "/v1/eligibility/evaluate"): "evaluate_eligibility",
}


def test_openapi_has_stable_operation_ids_and_documents_errors(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    for (method, path), operation_id in EXPECTED_OPERATIONS.items():
        operation = schema["paths"][path][method]
        assert operation["operationId"] == operation_id
        assert {"401", "403", "422"} <= set(operation["responses"])
    assert "503" in schema["paths"]["/v1/products"]["get"]["responses"]
    assert "409" in schema["paths"]["/v1/products/{product_id}/transitions"]["post"]["responses"]


def test_probes_and_metrics(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready == {"status": "ready", "checks": {"database": "ok"}}
    client.get("/v1/products")
    assert "qianmian_http_requests_total" in client.get("/metrics").text


def test_readiness_fails_when_the_database_is_unusable(settings: ProductHubSettings) -> None:
    broken = settings.model_copy(update={"database_url": "postgresql+psycopg://nobody@127.0.0.1:1/none"})
    with TestClient(create_app(broken)) as client:
        response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "not_ready"


def test_default_app_talks_to_profile_over_http_and_reports_it_down(
    settings: ProductHubSettings, headers: object
) -> None:
    # No provider injected: the real HTTP client, pointed at a closed port.
    down = settings.model_copy(update={"profile_url": "http://127.0.0.1:9", "profile_timeout_s": 0.5})
    with TestClient(create_app(down)) as client:
        response = client.get(
            "/v1/products",
            params={"eligible_for": "C1"},
            headers=headers("recommender"),  # type: ignore[operator]
        )
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "dependency_unavailable"
