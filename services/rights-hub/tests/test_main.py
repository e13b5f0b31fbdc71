"""Probes, metrics and the OpenAPI contract of the app."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

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


def _ratio(client: TestClient, right_id: str) -> float | None:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(f'qianmian_rights_budget_remaining_ratio{{budget="{right_id}"}}'):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_budget_remaining_ratio_follows_the_ledger(
    client: TestClient,
    create_right: Callable[..., dict[str, Any]],
    headers: Callable[..., dict[str, str]],
    key: Callable[[], str],
) -> None:
    right = create_right(budget_count=4, budget_money_fen=4 * 990)
    assert _ratio(client, right["right_id"]) == 1.0
    held = client.post(
        f"/v1/rights/{right['right_id']}/reservations",
        json={"customer_id": "c1", "hold_seconds": 60},
        headers=headers("recommender", key=key()),
    )
    assert held.status_code == 201, held.text
    assert _ratio(client, right["right_id"]) == 0.75  # a hold uses budget too
    draft = create_right(status="draft", right_id="RT-TEST-DRAFT")
    assert _ratio(client, draft["right_id"]) is None  # only active rights are reported
