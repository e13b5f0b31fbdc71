"""The catalogue over HTTP: create, edit, workflow with maker-checker, listings, budget, ledger, auth."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient

Headers = Callable[..., dict[str, str]]


def test_create_returns_a_draft_with_full_budget(
    client: TestClient, headers: Headers, right_payload: Callable[..., dict[str, Any]]
) -> None:
    response = client.post("/v1/rights", json=right_payload(), headers=headers("console-alice"))
    assert response.status_code == 201
    right = response.json()
    assert right["status"] == "draft"
    assert right["author"] == "console-alice"
    assert right["remaining_count"] == 5
    assert right["remaining_money_fen"] == 4950
    assert client.get("/v1/rights/RT-TEST-COFFEE", headers=headers("recommender")).json() == right


def test_create_refuses_duplicates_and_invalid_bodies(
    client: TestClient, headers: Headers, right_payload: Callable[..., dict[str, Any]], error_of: Any
) -> None:
    assert (
        client.post("/v1/rights", json=right_payload(), headers=headers("console-alice")).status_code == 201
    )
    error_of(
        client.post("/v1/rights", json=right_payload(), headers=headers("console-alice")), 409, "right_exists"
    )
    now = datetime.now(UTC)
    for bad in (
        {"right_type": "lottery"},
        {"unit_cost_fen": -1},
        {"budget_count": 0},
        {"segments": ["martians"]},
        {"lifecycle_stages": ["teen"]},
        {"valid_from": now.isoformat(), "valid_until": (now - timedelta(days=1)).isoformat()},
        {"valid_from": "2025-01-01T00:00:00"},  # naive: refused
        {"unit_cost_fen": 10_000, "budget_money_fen": 5_000},
        {"partner": None},
        {"right_id": "bad id"},
        {"surprise": 1},
    ):
        error = error_of(
            client.post(
                "/v1/rights",
                json=right_payload(**{"right_id": "RT-X", **bad}),
                headers=headers("console-alice"),
            ),
            422,
            "validation_error",
        )
        assert error["details"], bad


def test_auth_is_required_and_scoped(
    client: TestClient, headers: Headers, right_payload: Callable[..., dict[str, Any]], error_of: Any
) -> None:
    error_of(client.get("/v1/rights"), 401, "unauthorized")
    error_of(client.get("/v1/rights", headers={"Authorization": "Bearer " + "x" * 40}), 401, "unauthorized")
    error_of(client.get("/v1/rights", headers=headers("profile-ingest")), 403, "insufficient_scope")
    error_of(client.post("/v1/rights", json=right_payload(), headers=headers("recommender")), 403)
    error_of(client.get("/v1/rights/RT-NONE/ledger", headers=headers("recommender")), 403)


def test_unknown_right_is_404(client: TestClient, headers: Headers, error_of: Any) -> None:
    for path in ("/v1/rights/RT-NONE", "/v1/rights/RT-NONE/budget", "/v1/rights/RT-NONE/ledger"):
        error_of(client.get(path, headers=headers("console-alice")), 404, "right_not_found")
    error_of(
        client.post("/v1/rights/RT-NONE/transitions", json={"to": "active"}, headers=headers("console-bob")),
        404,
        "right_not_found",
    )


def test_activation_needs_someone_other_than_the_author(
    client: TestClient, create_right: Callable[..., dict[str, Any]], headers: Headers, error_of: Any
) -> None:
    create_right(status="draft")
    path = "/v1/rights/RT-TEST-COFFEE/transitions"
    error_of(
        client.post(path, json={"to": "active"}, headers=headers("console-alice")),
        403,
        "maker_checker_violation",
    )
    error_of(
        client.post(path, json={"to": "active"}, headers=headers("recommender")), 403, "insufficient_scope"
    )
    error_of(
        client.post(path, json={"to": "paused"}, headers=headers("console-alice")), 409, "illegal_transition"
    )
    active = client.post(path, json={"to": "active", "comment": "ok"}, headers=headers("console-bob")).json()
    assert (active["status"], active["activated_by"]) == ("active", "console-bob")
    paused = client.post(path, json={"to": "paused"}, headers=headers("console-alice")).json()
    assert paused["status"] == "paused"
    error_of(
        client.post(path, json={"to": "active"}, headers=headers("console-alice")),
        403,
        "maker_checker_violation",
    )
    assert (
        client.post(path, json={"to": "retired"}, headers=headers("console-alice")).json()["status"]
        == "retired"
    )
    error_of(
        client.post(path, json={"to": "active"}, headers=headers("console-bob")), 409, "illegal_transition"
    )
    error_of(client.post(path, json={"to": "draft"}, headers=headers("console-bob")), 422, "validation_error")


def test_only_the_author_edits_a_draft_at_the_current_version(
    client: TestClient, create_right: Callable[..., dict[str, Any]], headers: Headers, error_of: Any
) -> None:
    create_right(status="draft")
    path = "/v1/rights/RT-TEST-COFFEE"
    error_of(
        client.patch(path, json={"version": 1, "name": "x"}, headers=headers("console-bob")),
        403,
        "not_author",
    )
    edited = client.patch(path, json={"version": 1, "budget_count": 3}, headers=headers("console-alice"))
    assert edited.status_code == 200, edited.text
    assert (edited.json()["budget_count"], edited.json()["version"]) == (3, 2)
    error_of(
        client.patch(path, json={"version": 1, "name": "x"}, headers=headers("console-alice")),
        409,
        "version_conflict",
    )
    error_of(
        client.patch(path, json={"version": 2, "unit_cost_fen": 10**6}, headers=headers("console-alice")),
        422,
        "validation_error",
    )
    client.post(f"{path}/transitions", json={"to": "active"}, headers=headers("console-bob"))
    error_of(
        client.patch(path, json={"version": 3, "name": "x"}, headers=headers("console-alice")),
        409,
        "not_editable",
    )


def test_affordable_listing_filters_status_window_budget_and_eligibility(
    client: TestClient, create_right: Callable[..., dict[str, Any]], headers: Headers, key: Callable[[], str]
) -> None:
    now = datetime.now(UTC)
    create_right(right_id="RT-OPEN", segments=[], lifecycle_stages=[])
    create_right(right_id="RT-PAYROLL", segments=["payroll"], lifecycle_stages=["active"])
    create_right(right_id="RT-DRAFT", status="draft")
    create_right(right_id="RT-PAUSED", status="paused")
    create_right(right_id="RT-LATER", valid_from=(now + timedelta(days=2)).isoformat())
    create_right(right_id="RT-ONE", budget_count=1, budget_money_fen=990, segments=[], lifecycle_stages=[])
    granted = client.post(
        "/v1/rights/RT-ONE/grants", json={"customer_id": "c1"}, headers=headers("recommender", key=key())
    )
    assert granted.status_code == 201

    def affordable(**params: str) -> list[str]:
        response = client.get(
            "/v1/rights", params={"affordable": "true", **params}, headers=headers("recommender")
        )
        assert response.status_code == 200, response.text
        return [r["right_id"] for r in response.json()["items"]]

    assert affordable() == ["RT-OPEN", "RT-PAYROLL"]
    assert affordable(segment="payroll", lifecycle_stage="active") == ["RT-OPEN", "RT-PAYROLL"]
    assert affordable(segment="wealth") == ["RT-OPEN"]
    assert affordable(lifecycle_stage="churned") == ["RT-OPEN"]
    assert "RT-LATER" in affordable(at=(now + timedelta(days=3)).isoformat())
    everything = client.get("/v1/rights", headers=headers("readonly-analyst")).json()
    assert everything["total"] == 6
    drafts = client.get("/v1/rights", params={"status": "draft"}, headers=headers("recommender")).json()
    assert [r["right_id"] for r in drafts["items"]] == ["RT-DRAFT"]
    bad = client.get("/v1/rights", params={"segment": "martians"}, headers=headers("recommender"))
    assert bad.status_code == 422


def test_budget_status_and_ledger(
    client: TestClient, create_right: Callable[..., dict[str, Any]], headers: Headers, key: Callable[[], str]
) -> None:
    create_right()
    rec = headers("recommender", key=key())
    client.post("/v1/rights/RT-TEST-COFFEE/reservations", json={"customer_id": "c1"}, headers=rec)
    grant = client.post(
        "/v1/rights/RT-TEST-COFFEE/grants",
        json={"customer_id": "c2"},
        headers=headers("recommender", key=key()),
    ).json()
    client.post(f"/v1/grants/{grant['grant_id']}/redeem", headers=headers("app-gateway", key=key()))
    client.post(
        "/v1/rights/RT-TEST-COFFEE/grants",
        json={"customer_id": "c3"},
        headers=headers("recommender", key=key()),
    )
    budget = client.get("/v1/rights/RT-TEST-COFFEE/budget", headers=headers("recommender")).json()
    assert {
        k: budget[k] for k in ("reserved_count", "granted_count", "redeemed_count", "remaining_count")
    } == {
        "reserved_count": 1,
        "granted_count": 1,
        "redeemed_count": 1,
        "remaining_count": 2,
    }
    assert budget["remaining_money_fen"] == 2 * 990
    assert budget["burn_rate_per_hour"] == 3 / 24
    assert budget["projected_exhaustion_at"] is not None

    ledger = client.get("/v1/rights/RT-TEST-COFFEE/ledger", headers=headers("console-alice")).json()
    ops = [e["operation"] for e in ledger["items"]]
    assert ops == ["create", "status_change", "reserve", "grant", "redeem", "grant"]
    first = client.get(
        "/v1/rights/RT-TEST-COFFEE/ledger", params={"limit": 2}, headers=headers("console-alice")
    )
    assert first.json()["next_after"] == first.json()["items"][-1]["entry_id"]
    rest = client.get(
        "/v1/rights/RT-TEST-COFFEE/ledger",
        params={"after": first.json()["next_after"]},
        headers=headers("console-bob"),
    ).json()
    assert [e["operation"] for e in rest["items"]] == ops[2:]
