"""POST/GET /contacts: the recommender's contact history."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from profile_service.service.activity import RecordingPusher

C = "C000000002"
Headers = Callable[[str], dict[str, str]]
NOW = datetime.now(UTC)


def _contact(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "channel": "app",
        "placement": "home_banner",
        "product_id": "WM-R2-01",
        "content_id": "CNT-1",
        "decision_id": "dec-123",
        "action": "impression",
        "at": (NOW - timedelta(seconds=5)).isoformat(),
    }
    body.update(overrides)
    return body


def test_record_and_filter(client: TestClient, headers: Headers, pusher: RecordingPusher) -> None:
    created = client.post(f"/v1/customers/{C}/contacts", json=_contact(), headers=headers("recommender"))
    assert created.status_code == 201, created.text
    assert created.json()["decision_id"] == "dec-123"
    client.post(
        f"/v1/customers/{C}/contacts",
        json=_contact(channel="sms", action="click"),
        headers=headers("recommender"),
    )
    assert pusher.rows[-1]["customer_id"] == C
    assert pusher.rows[-1]["clicks_7d"] >= 1
    since = (NOW - timedelta(minutes=1)).isoformat()
    recent = client.get(
        f"/v1/customers/{C}/contacts", params={"since": since}, headers=headers("app-gateway")
    ).json()
    assert [c["action"] for c in recent["items"]] == ["click", "impression"]
    sms = client.get(
        f"/v1/customers/{C}/contacts",
        params={"channel": "sms", "since": since},
        headers=headers("app-gateway"),
    )
    assert [c["channel"] for c in sms.json()["items"]] == ["sms"]
    profile = client.get(f"/v1/customers/{C}", headers=headers("app-gateway")).json()
    assert profile["contacts_30d"] >= 2


@pytest.mark.parametrize(
    "overrides",
    [
        {"action": "like"},
        {"channel": "fax"},
        {"at": (NOW + timedelta(hours=1)).isoformat()},
        {"at": "yesterday"},
        {"product_id": ""},
        {"placement": "a b"},
    ],
)
def test_invalid_contacts_are_422(
    client: TestClient, headers: Headers, error: Callable[..., object], overrides: dict[str, Any]
) -> None:
    error(
        client.post(
            f"/v1/customers/{C}/contacts", json=_contact(**overrides), headers=headers("recommender")
        ),
        422,
    )


def test_bad_queries_and_unknown_customers(
    client: TestClient, headers: Headers, error: Callable[..., object]
) -> None:
    error(
        client.get(f"/v1/customers/{C}/contacts", params={"channel": "fax"}, headers=headers("app-gateway")),
        422,
    )
    error(
        client.get(
            f"/v1/customers/{C}/contacts",
            params={"since": "2024-01-01T00:00:00"},
            headers=headers("app-gateway"),
        ),
        422,
    )
    error(client.get("/v1/customers/C999999999/contacts", headers=headers("app-gateway")), 404)
    error(
        client.post("/v1/customers/C999999999/contacts", json=_contact(), headers=headers("recommender")), 404
    )
