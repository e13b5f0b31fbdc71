"""Every endpoint: 401 without or with an unknown token, 403 without the right scope."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

C = "C000000001"
ENDPOINTS: list[tuple[str, str, dict[str, Any] | None, str]] = [
    ("GET", f"/v1/customers/{C}", None, "readonly-analyst"),
    ("GET", f"/v1/customers/{C}/eligibility-facts", None, "readonly-analyst"),
    ("GET", f"/v1/customers/{C}/events", None, "readonly-analyst"),
    ("GET", f"/v1/customers/{C}/consents", None, "readonly-analyst"),
    ("GET", f"/v1/customers/{C}/consents/history", None, "readonly-analyst"),
    ("GET", f"/v1/customers/{C}/risk-assessment", None, "readonly-analyst"),
    ("GET", f"/v1/customers/{C}/contacts", None, "readonly-analyst"),
    ("GET", "/v1/customers/facts", None, "readonly-analyst"),
    ("POST", "/v1/customers/facts/lookup", {"customer_ids": [C]}, "readonly-analyst"),
    ("GET", "/v1/changes", None, "profile-ingest"),
    ("POST", "/v1/events", {}, "app-gateway"),
    ("PUT", f"/v1/customers/{C}/consents", {}, "recommender"),
    ("PUT", f"/v1/customers/{C}/risk-assessment", {}, "recommender"),
    ("POST", f"/v1/customers/{C}/contacts", {}, "app-gateway"),
]


@pytest.mark.parametrize(("method", "path", "body", "weak_client"), ENDPOINTS)
def test_auth(
    client: TestClient,
    headers: Callable[[str], dict[str, str]],
    error: Callable[..., object],
    method: str,
    path: str,
    body: dict[str, Any] | None,
    weak_client: str,
) -> None:
    error(client.request(method, path, json=body), 401, "unauthorized")
    error(client.request(method, path, json=body, headers={"Authorization": "Bearer " + "x" * 40}), 401)
    error(client.request(method, path, json=body, headers=headers(weak_client)), 403, "insufficient_scope")


def test_openapi_has_stable_operation_ids(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    ids = {op["operationId"] for item in spec["paths"].values() for op in item.values()}
    assert {
        "get_customer_profile",
        "get_eligibility_facts",
        "ingest_event",
        "list_customer_events",
        "update_consents",
        "get_consents",
        "get_consent_history",
        "put_risk_assessment",
        "get_risk_assessment",
        "record_contact",
        "list_contacts",
        "list_customer_facts",
        "lookup_customer_facts",
        "list_customer_changes",
    } <= ids


def test_probes(client: TestClient) -> None:
    assert client.get("/healthz").status_code == 200
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok"}
