"""PUT/GET /risk-assessment: append-only, latest is current, validity from expiry."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

C = "C000000003"  # never assessed
Headers = Callable[[str], dict[str, str]]
NOW = datetime.now(UTC)


def _assessment(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "level": 3,
        "assessed_at": (NOW - timedelta(days=1)).isoformat(),
        "expires_at": (NOW + timedelta(days=364)).isoformat(),
        "source": "branch_questionnaire",
    }
    body.update(overrides)
    return body


def test_assessment_becomes_current_and_feeds_facts(client: TestClient, headers: Headers) -> None:
    assert client.get(f"/v1/customers/{C}/risk-assessment", headers=headers("app-gateway")).json() is None
    response = client.put(
        f"/v1/customers/{C}/risk-assessment", json=_assessment(), headers=headers("profile-ingest")
    )
    assert response.status_code == 200, response.text
    assert response.json()["level"] == 3
    assert response.json()["valid"] is True
    facts = client.get(f"/v1/customers/{C}/eligibility-facts", headers=headers("recommender")).json()
    assert facts["risk_level"] == 3
    # an assessment that has already expired is recorded, becomes current, and is not valid
    expired = _assessment(
        level=5,
        assessed_at=(NOW - timedelta(days=400)).isoformat(),
        expires_at=(NOW - timedelta(days=35)).isoformat(),
    )
    response = client.put(
        f"/v1/customers/{C}/risk-assessment", json=expired, headers=headers("console-alice")
    )
    assert response.json()["valid"] is False
    current = client.get(f"/v1/customers/{C}", headers=headers("app-gateway")).json()["risk_assessment"]
    assert current["level"] == 5
    assert current["valid"] is False


@pytest.mark.parametrize(
    "overrides",
    [
        {"level": 0},
        {"level": 6},
        {"level": "high"},
        {"expires_at": (NOW - timedelta(days=2)).isoformat()},  # before assessed_at
        {"assessed_at": (NOW + timedelta(hours=1)).isoformat()},  # in the future
        {"assessed_at": "2024-01-01T00:00:00"},  # naive
        {"source": ""},
        {"extra": 1},
    ],
)
def test_invalid_assessments_are_422(
    client: TestClient, headers: Headers, error: Callable[..., object], overrides: dict[str, Any]
) -> None:
    response = client.put(
        f"/v1/customers/{C}/risk-assessment", json=_assessment(**overrides), headers=headers("profile-ingest")
    )
    error(response, 422, "validation_error")


def test_unknown_customer(client: TestClient, headers: Headers, error: Callable[..., object]) -> None:
    error(
        client.put(
            "/v1/customers/C999999999/risk-assessment", json=_assessment(), headers=headers("profile-ingest")
        ),
        404,
    )
    error(client.get("/v1/customers/C999999999/risk-assessment", headers=headers("app-gateway")), 404)
    error(client.get("/v1/customers/D000000001/risk-assessment", headers=headers("app-gateway")), 422)
