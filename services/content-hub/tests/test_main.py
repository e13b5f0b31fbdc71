from __future__ import annotations

from collections.abc import Callable

from content_hub.main import create_app
from content_hub.settings import ContentHubSettings
from fastapi.testclient import TestClient

EXPECTED_OPERATIONS = {
    ("post", "/v1/content"): "create_content",
    ("get", "/v1/content"): "search_content",
    ("get", "/v1/content/render"): "render_content",
    ("post", "/v1/content/screen"): "screen_content",
    ("get", "/v1/content/{content_id}"): "get_content",
    ("get", "/v1/content/{content_id}/history"): "get_content_history",
    ("post", "/v1/content/{content_id}/versions"): "create_content_version",
    ("get", "/v1/content/{content_id}/versions/{version}"): "get_content_version",
    ("patch", "/v1/content/{content_id}/versions/{version}"): "update_content_draft",
    ("post", "/v1/content/{content_id}/versions/{version}/transitions"): "transition_content",
}


def test_openapi_has_stable_operation_ids_and_documents_errors(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    for (method, path), operation_id in EXPECTED_OPERATIONS.items():
        operation = schema["paths"][path][method]
        assert operation["operationId"] == operation_id
        assert {"401", "403", "404", "422"} <= set(operation["responses"])
    assert "409" in schema["paths"]["/v1/content/render"]["get"]["responses"]


def test_probes_and_metrics(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready", "checks": {"database": "ok"}}
    client.get("/v1/content")
    assert "qianmian_http_requests_total" in client.get("/metrics").text


def test_readiness_fails_when_the_database_is_unusable(settings: ContentHubSettings) -> None:
    broken = settings.model_copy(update={"database_url": "postgresql+psycopg://nobody@127.0.0.1:1/none"})
    with TestClient(create_app(broken)) as client:
        response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "not_ready"


def test_default_app_renders_degraded_when_profile_is_down(
    settings: ContentHubSettings,
    headers: Callable[[str], dict[str, str]],
    create_content: Callable[..., object],
) -> None:
    create_content("approved")  # through the fixture app, on the same database file
    # No provider injected: the real HTTP client, pointed at a closed port.
    down = settings.model_copy(update={"profile_url": "http://127.0.0.1:9", "profile_timeout_s": 0.5})
    with TestClient(create_app(down)) as client:
        response = client.get(
            "/v1/content/render",
            params={"content_id": "CNT-TEST-1", "channel": "push", "customer_id": "C1"},
            headers=headers("recommender"),
        )
    assert response.status_code == 200, response.text
    assert response.json()["degraded"] is True
    assert response.json()["fields"]["body"].startswith("尊敬的客户，")
