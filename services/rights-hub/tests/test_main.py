"""Probes, metrics and the OpenAPI contract of the app."""

from __future__ import annotations

from fastapi.testclient import TestClient


def test_probes_and_metrics(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok"}
    assert "qianmian_http_requests_total" in client.get("/metrics").text


def test_openapi_lists_every_operation_with_the_error_shape(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    operations = {op["operationId"]: op for path in schema["paths"].values() for op in path.values()}
    assert {
        "create_right",
        "list_rights",
        "get_right",
        "update_right",
        "transition_right",
        "get_right_budget",
        "get_right_ledger",
        "reserve_right",
        "grant_right",
        "grant_reservation",
        "release_reservation",
        "get_reservation",
        "redeem_grant",
        "reverse_grant",
        "get_grant",
        "list_customer_grants",
    } <= set(operations)
    assert "409" in operations["grant_right"]["responses"]
    assert "400" in operations["grant_right"]["responses"]
    assert "ErrorResponse" in schema["components"]["schemas"]
