"""PUT /consents (effective immediately, history kept), GET /consents, GET /consents/history."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

C = "C000000001"
Headers = Callable[[str], dict[str, str]]


def test_opt_out_is_immediate_and_kept_in_history(client: TestClient, headers: Headers) -> None:
    before = client.get(f"/v1/customers/{C}/consents", headers=headers("app-gateway")).json()
    assert before["personalised"] is True
    assert before["channels"]["push"] is True
    response = client.put(
        f"/v1/customers/{C}/consents",
        json={"push": False, "personalised": False, "reason": "customer call 2024-06-01"},
        headers=headers("profile-ingest"),
    )
    assert response.status_code == 200, response.text
    assert response.json()["personalised"] is False
    assert response.json()["channels"]["push"] is False
    profile = client.get(f"/v1/customers/{C}", headers=headers("app-gateway")).json()
    assert profile["consents"]["personalised"] is False
    history = client.get(f"/v1/customers/{C}/consents/history", headers=headers("app-gateway")).json()[
        "items"
    ]
    changed = {(h["channel"], h["old_value"], h["new_value"], h["actor"]) for h in history}
    assert ("push", True, False, "profile-ingest") in changed
    assert ("personalised", True, False, "profile-ingest") in changed
    # setting the same value again changes nothing and adds no history
    client.put(
        f"/v1/customers/{C}/consents",
        json={"push": False, "reason": "again"},
        headers=headers("profile-ingest"),
    )
    again = client.get(f"/v1/customers/{C}/consents/history", headers=headers("app-gateway")).json()["items"]
    assert len(again) == len(history)
    # opting back in is a new entry, newest first
    client.put(
        f"/v1/customers/{C}/consents",
        json={"personalised": True, "reason": "app"},
        headers=headers("console-alice"),
    )
    latest = client.get(f"/v1/customers/{C}/consents/history", headers=headers("app-gateway")).json()[
        "items"
    ][0]
    assert latest == {
        **latest,
        "channel": "personalised",
        "old_value": False,
        "new_value": True,
        "actor": "console-alice",
    }


@pytest.mark.parametrize(
    "body",
    [
        {"reason": "nothing to change"},
        {"push": False},  # no reason
        {"push": False, "reason": ""},
        {"telegram": True, "reason": "x"},
        {"push": "maybe", "reason": "x"},
    ],
)
def test_invalid_consent_changes_are_422(
    client: TestClient, headers: Headers, error: Callable[..., object], body: dict[str, Any]
) -> None:
    error(
        client.put(f"/v1/customers/{C}/consents", json=body, headers=headers("profile-ingest")),
        422,
        "validation_error",
    )


def test_unknown_and_malformed_customers(
    client: TestClient, headers: Headers, error: Callable[..., object]
) -> None:
    body = {"push": False, "reason": "x"}
    error(client.put("/v1/customers/C999999999/consents", json=body, headers=headers("profile-ingest")), 404)
    error(client.get("/v1/customers/C999999999/consents", headers=headers("app-gateway")), 404)
    error(client.get("/v1/customers/C999999999/consents/history", headers=headers("app-gateway")), 404)
    error(client.put("/v1/customers/C1/consents", json=body, headers=headers("profile-ingest")), 422)
    error(client.get("/v1/customers/C1/consents/history", headers=headers("app-gateway")), 422)
