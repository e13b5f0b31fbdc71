"""POST /v1/events and GET /v1/customers/{id}/events."""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from profile_service.service.activity import RecordingPusher
from qianmian_core.logging import configure_logging

C = "C000000001"
Headers = Callable[[str], dict[str, str]]


def _event(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "event_id": "evt-salary-1",
        "customer_id": C,
        "event_type": "salary_credited",
        "occurred_at": (datetime.now(UTC) - timedelta(minutes=1)).isoformat(),
        "amount": 12000.0,
        "attributes": {"employer_code": "E42"},
    }
    body.update(overrides)
    return body


def test_ingest_recomputes_and_pushes(client: TestClient, headers: Headers, pusher: RecordingPusher) -> None:
    response = client.post("/v1/events", json=_event(), headers=headers("recommender"))
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["replayed"] is False
    assert "salary_recent" in body["tags"]
    assert body["event"]["event_type"] == "salary_credited"
    pushed = pusher.rows[-1]
    assert pushed["customer_id"] == C
    assert pushed["last_moment_type"] == "salary_credited"
    assert pushed["moments_7d"] >= 1
    assert set(pushed) >= {"impressions_7d", "clicks_30d", "purchases_30d", "logins_7d", "event_timestamp"}
    listed = client.get(f"/v1/customers/{C}/events", headers=headers("app-gateway")).json()["items"]
    assert listed[0]["event_id"] == "evt-salary-1"
    profile = client.get(f"/v1/customers/{C}", headers=headers("app-gateway")).json()
    assert "salary_recent" in profile["tags"]
    assert profile["recent_moments"][0]["event_id"] == "evt-salary-1"


def test_same_id_same_body_replays_and_other_body_conflicts(
    client: TestClient, headers: Headers, pusher: RecordingPusher, error: Callable[..., object]
) -> None:
    body = _event()
    first = client.post("/v1/events", json=body, headers=headers("recommender"))
    assert first.status_code == 201
    pushes = len(pusher.rows)
    again = client.post("/v1/events", json=body, headers=headers("recommender"))
    assert again.status_code == 200
    assert again.json()["replayed"] is True
    assert again.json()["event"] == first.json()["event"]
    assert len(pusher.rows) == pushes
    error(
        client.post("/v1/events", json={**body, "amount": 1.0}, headers=headers("recommender")),
        409,
        "event_id_conflict",
    )
    listed = client.get(f"/v1/customers/{C}/events", headers=headers("app-gateway")).json()["items"]
    assert sum(1 for e in listed if e["event_id"] == body["event_id"]) == 1


def test_feast_failure_keeps_the_event_and_retries(
    client: TestClient, headers: Headers, pusher: RecordingPusher
) -> None:
    pusher.fail = True
    assert client.post("/v1/events", json=_event(), headers=headers("recommender")).status_code == 201
    assert pusher.rows == []
    pusher.fail = False
    second = _event(event_id="evt-login-1", event_type="app_login", amount=None)
    assert client.post("/v1/events", json=second, headers=headers("recommender")).status_code == 201
    # both rows were queued; the flush after the second ingest pushes the customer's latest row
    assert pusher.rows
    assert pusher.rows[-1]["last_moment_type"] in {"app_login", "salary_credited"}
    assert pusher.rows[-1]["logins_7d"] >= 1


def test_phone_in_attributes_is_masked_everywhere(
    client: TestClient, headers: Headers, pusher: RecordingPusher
) -> None:
    body = _event(attributes={"note": "call back on 13812345678", "id": "110101199003071234"})
    buffer, real_stdout = io.StringIO(), sys.stdout
    sys.stdout = buffer
    try:
        configure_logging("profile")  # the service's JSON renderer, writing to the buffer
        response = client.post("/v1/events", json=body, headers=headers("recommender"))
    finally:
        sys.stdout = real_stdout
        configure_logging("profile")
    assert response.status_code == 201
    logged = buffer.getvalue()
    assert "event_ingested" in logged
    assert "13812345678" not in logged
    assert "110101199003071234" not in logged
    assert "138****5678" in logged
    assert "13812345678" not in response.text
    stored = client.get(f"/v1/customers/{C}/events", headers=headers("app-gateway")).text
    assert "13812345678" not in stored
    assert "138****5678" in stored
    assert "13812345678" not in json.dumps(pusher.rows, default=str)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"event_type": "lottery_win"}, "event_type"),
        ({"customer_id": "X1"}, "customer_id"),
        ({"occurred_at": "2025-01-01T10:00:00"}, "occurred_at"),  # naive
        ({"occurred_at": (datetime.now(UTC) + timedelta(minutes=10)).isoformat()}, None),
        ({"amount": -1}, "amount"),
        ({"amount": None}, None),  # salary needs an amount
        ({"event_id": "has spaces"}, "event_id"),
        ({"unexpected": 1}, "unexpected"),
    ],
)
def test_invalid_events_are_422(
    client: TestClient,
    headers: Headers,
    error: Callable[..., dict[str, Any]],
    overrides: dict[str, Any],
    field: str | None,
) -> None:
    body = error(
        client.post("/v1/events", json=_event(**overrides), headers=headers("recommender")),
        422,
        "validation_error",
    )
    if field is not None:
        assert any(field in d["loc"] for d in body["details"])


def test_missing_body_is_422(client: TestClient, headers: Headers, error: Callable[..., object]) -> None:
    error(client.post("/v1/events", headers=headers("recommender")), 422)


def test_unknown_customer(client: TestClient, headers: Headers, error: Callable[..., object]) -> None:
    error(
        client.post("/v1/events", json=_event(customer_id="C999999999"), headers=headers("recommender")), 404
    )
    error(client.get("/v1/customers/C999999999/events", headers=headers("app-gateway")), 404)
    error(client.get("/v1/customers/bad/events", headers=headers("app-gateway")), 422)
    error(client.get(f"/v1/customers/{C}/events?limit=0", headers=headers("app-gateway")), 422)


def test_aum_drop_makes_churn_risk(client: TestClient, headers: Headers) -> None:
    profile = client.get(f"/v1/customers/{C}", headers=headers("app-gateway")).json()
    big_drop = profile["value"]["aum"] * 2
    body = _event(event_id="evt-drop", event_type="aum_drop", amount=big_drop)
    response = client.post("/v1/events", json=body, headers=headers("recommender"))
    assert response.status_code == 201
    assert response.json()["lifecycle_stage"] == "churn_risk"
    assert "aum_drop_recent" in response.json()["tags"]
