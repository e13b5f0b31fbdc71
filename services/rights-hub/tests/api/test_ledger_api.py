"""Ledger operations over HTTP: reserve, grant, release, redeem, reverse; idempotency; honest refusals."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient

Headers = Callable[..., dict[str, str]]
RIGHT = "/v1/rights/RT-TEST-COFFEE"


def test_reserve_then_grant_then_redeem(
    client: TestClient, create_right: Callable[..., dict[str, Any]], headers: Headers, key: Callable[[], str]
) -> None:
    create_right()
    held = client.post(
        f"{RIGHT}/reservations",
        json={"customer_id": "c1", "hold_seconds": 60, "decision_id": "d-1"},
        headers=headers("recommender", key=key()),
    )
    assert held.status_code == 201, held.text
    reservation = held.json()
    assert (reservation["status"], reservation["amount_fen"], reservation["seq"]) == ("held", 990, 1)
    granted = client.post(
        f"/v1/reservations/{reservation['reservation_id']}/grant", headers=headers("recommender", key=key())
    )
    assert granted.status_code == 201, granted.text
    grant = granted.json()
    assert (grant["status"], grant["reservation_id"], grant["decision_id"]) == (
        "granted",
        reservation["reservation_id"],
        "d-1",
    )
    assert (
        client.get(
            f"/v1/reservations/{reservation['reservation_id']}", headers=headers("recommender")
        ).json()["status"]
        == "granted"
    )
    redeemed = client.post(
        f"/v1/grants/{grant['grant_id']}/redeem",
        json={"reason": "paid"},
        headers=headers("app-gateway", key=key()),
    )
    assert redeemed.status_code == 200, redeemed.text
    assert redeemed.json()["status"] == "redeemed"
    assert (
        client.get(f"/v1/grants/{grant['grant_id']}", headers=headers("app-gateway")).json()
        == redeemed.json()
    )
    mine = client.get("/v1/customers/c1/grants", headers=headers("app-gateway")).json()
    assert [g["grant_id"] for g in mine["items"]] == [grant["grant_id"]]
    assert (
        client.get(
            "/v1/customers/c1/grants", params={"status": "granted"}, headers=headers("app-gateway")
        ).json()["total"]
        == 0
    )
    budget = client.get(f"{RIGHT}/budget", headers=headers("recommender")).json()
    assert (budget["reserved_count"], budget["granted_count"], budget["redeemed_count"]) == (0, 0, 1)


def test_a_grant_cannot_be_redeemed_twice_or_from_a_used_hold(
    client: TestClient,
    create_right: Callable[..., dict[str, Any]],
    headers: Headers,
    key: Callable[[], str],
    error_of: Any,
) -> None:
    create_right()
    reservation = client.post(
        f"{RIGHT}/reservations", json={"customer_id": "c1"}, headers=headers("recommender", key=key())
    ).json()
    path = f"/v1/reservations/{reservation['reservation_id']}"
    grant = client.post(f"{path}/grant", headers=headers("recommender", key=key())).json()
    error_of(client.post(f"{path}/grant", headers=headers("recommender", key=key())), 409, "invalid_state")
    error_of(client.post(f"{path}/release", headers=headers("recommender", key=key())), 409, "invalid_state")
    client.post(f"/v1/grants/{grant['grant_id']}/redeem", headers=headers("app-gateway", key=key()))
    error_of(
        client.post(f"/v1/grants/{grant['grant_id']}/redeem", headers=headers("app-gateway", key=key())),
        409,
        "invalid_state",
    )


def test_release_frees_budget_and_the_customer_slot(
    client: TestClient, create_right: Callable[..., dict[str, Any]], headers: Headers, key: Callable[[], str]
) -> None:
    create_right(budget_count=1, budget_money_fen=990, per_customer_limit=1)
    reservation = client.post(
        f"{RIGHT}/reservations", json={"customer_id": "c1"}, headers=headers("recommender", key=key())
    ).json()
    released = client.post(
        f"/v1/reservations/{reservation['reservation_id']}/release", headers=headers("recommender", key=key())
    )
    assert released.json()["status"] == "released"
    again = client.post(
        f"{RIGHT}/grants", json={"customer_id": "c1"}, headers=headers("recommender", key=key())
    )
    assert again.status_code == 201, again.text
    assert again.json()["seq"] == 2


def test_over_promise_is_answered_honestly(
    client: TestClient,
    create_right: Callable[..., dict[str, Any]],
    headers: Headers,
    key: Callable[[], str],
    error_of: Any,
) -> None:
    create_right(budget_count=2, budget_money_fen=1980, per_customer_limit=1)
    ok = client.post(f"{RIGHT}/grants", json={"customer_id": "c1"}, headers=headers("recommender", key=key()))
    assert ok.status_code == 201
    error_of(
        client.post(f"{RIGHT}/grants", json={"customer_id": "c1"}, headers=headers("recommender", key=key())),
        409,
        "customer_limit_reached",
    )
    ok = client.post(f"{RIGHT}/grants", json={"customer_id": "c2"}, headers=headers("recommender", key=key()))
    assert ok.status_code == 201
    for customer in ("c1", "c3"):
        error_of(
            client.post(
                f"{RIGHT}/reservations",
                json={"customer_id": customer},
                headers=headers("recommender", key=key()),
            ),
            409,
            "right_exhausted",
        )
    assert client.get(f"{RIGHT}/budget", headers=headers("recommender")).json()["remaining_count"] == 0


def test_money_budget_binds_before_the_count_budget(
    client: TestClient,
    create_right: Callable[..., dict[str, Any]],
    headers: Headers,
    key: Callable[[], str],
    error_of: Any,
) -> None:
    create_right(budget_count=10, budget_money_fen=990 * 2 + 500, per_customer_limit=5)
    assert client.get(RIGHT, headers=headers("recommender")).json()["remaining_count"] == 2
    for _ in range(2):
        assert (
            client.post(
                f"{RIGHT}/grants", json={"customer_id": "c1"}, headers=headers("recommender", key=key())
            ).status_code
            == 201
        )
    error_of(
        client.post(f"{RIGHT}/grants", json={"customer_id": "c2"}, headers=headers("recommender", key=key())),
        409,
        "right_exhausted",
    )


def test_inactive_or_unknown_rights_are_refused(
    client: TestClient,
    create_right: Callable[..., dict[str, Any]],
    headers: Headers,
    key: Callable[[], str],
    error_of: Any,
) -> None:
    create_right(status="paused")
    error_of(
        client.post(f"{RIGHT}/grants", json={"customer_id": "c1"}, headers=headers("recommender", key=key())),
        409,
        "right_not_available",
    )
    error_of(
        client.post(
            "/v1/rights/RT-NONE/grants", json={"customer_id": "c1"}, headers=headers("recommender", key=key())
        ),
        404,
        "right_not_found",
    )
    missing = "rsv_" + "0" * 32
    error_of(
        client.post(f"/v1/reservations/{missing}/grant", headers=headers("recommender", key=key())),
        404,
        "reservation_not_found",
    )
    error_of(
        client.get(f"/v1/reservations/{missing}", headers=headers("recommender")),
        404,
        "reservation_not_found",
    )
    missing_grant = "grt_" + "0" * 32
    error_of(
        client.post(f"/v1/grants/{missing_grant}/redeem", headers=headers("app-gateway", key=key())),
        404,
        "grant_not_found",
    )
    error_of(
        client.post(f"/v1/grants/{missing_grant}/reverse", headers=headers("console-alice", key=key())),
        404,
        "grant_not_found",
    )
    error_of(
        client.get(f"/v1/grants/{missing_grant}", headers=headers("recommender")), 404, "grant_not_found"
    )
    error_of(client.get("/v1/grants/not-an-id", headers=headers("recommender")), 422, "validation_error")


def test_reverse_frees_budget_and_is_admin_only(
    client: TestClient,
    create_right: Callable[..., dict[str, Any]],
    headers: Headers,
    key: Callable[[], str],
    error_of: Any,
) -> None:
    create_right(budget_count=1, budget_money_fen=990, per_customer_limit=1)
    grant = client.post(
        f"{RIGHT}/grants", json={"customer_id": "c1"}, headers=headers("recommender", key=key())
    ).json()
    client.post(f"/v1/grants/{grant['grant_id']}/redeem", headers=headers("app-gateway", key=key()))
    path = f"/v1/grants/{grant['grant_id']}/reverse"
    error_of(client.post(path, headers=headers("recommender", key=key())), 403, "insufficient_scope")
    reversed_ = client.post(path, json={"reason": "refund"}, headers=headers("console-alice", key=key()))
    assert reversed_.status_code == 200, reversed_.text
    assert reversed_.json()["status"] == "reversed"
    error_of(client.post(path, headers=headers("console-alice", key=key())), 409, "invalid_state")
    budget = client.get(f"{RIGHT}/budget", headers=headers("recommender")).json()
    assert (budget["redeemed_count"], budget["remaining_count"]) == (0, 1)
    again = client.post(
        f"{RIGHT}/grants", json={"customer_id": "c1"}, headers=headers("recommender", key=key())
    )
    assert again.status_code == 201


def test_scopes_of_ledger_operations(
    client: TestClient,
    create_right: Callable[..., dict[str, Any]],
    headers: Headers,
    key: Callable[[], str],
    error_of: Any,
) -> None:
    create_right()
    body = {"customer_id": "c1"}
    error_of(
        client.post(f"{RIGHT}/grants", json=body, headers={"Idempotency-Key": key()}), 401, "unauthorized"
    )
    error_of(client.post(f"{RIGHT}/grants", json=body, headers=headers("readonly-analyst", key=key())), 403)
    error_of(client.post(f"{RIGHT}/reservations", json=body, headers=headers("app-gateway", key=key())), 403)
    grant = client.post(f"{RIGHT}/grants", json=body, headers=headers("recommender", key=key())).json()
    error_of(
        client.post(f"/v1/grants/{grant['grant_id']}/redeem", headers=headers("readonly-analyst", key=key())),
        403,
    )
    error_of(client.get("/v1/customers/c1/grants", headers=headers("profile-ingest")), 403)


# -- idempotency -------------------------------------------------------------------------------


def test_replay_returns_the_original_bytes_and_does_nothing_again(
    client: TestClient, create_right: Callable[..., dict[str, Any]], headers: Headers
) -> None:
    create_right()
    hdrs = headers("recommender", key="grant-c1-decision-1")
    first = client.post(f"{RIGHT}/grants", json={"customer_id": "c1"}, headers=hdrs)
    # Same request, different key order and whitespace: the same request.
    replay = client.post(
        f"{RIGHT}/grants",
        content=b'{ "decision_id": null,  "customer_id": "c1" }',
        headers={**hdrs, "Content-Type": "application/json"},
    )
    assert first.status_code == replay.status_code == 201
    assert replay.content == first.content
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert client.get(f"{RIGHT}/budget", headers=headers("recommender")).json()["granted_count"] == 1


def test_refusals_are_replayed_too(
    client: TestClient, create_right: Callable[..., dict[str, Any]], headers: Headers, key: Callable[[], str]
) -> None:
    create_right(budget_count=1, budget_money_fen=990)
    client.post(f"{RIGHT}/grants", json={"customer_id": "c1"}, headers=headers("recommender", key=key()))
    refused_key = headers("recommender", key="late-c2")
    refused = client.post(f"{RIGHT}/grants", json={"customer_id": "c2"}, headers=refused_key)
    assert refused.status_code == 409
    grant_id = client.get("/v1/customers/c1/grants", headers=headers("recommender")).json()["items"][0][
        "grant_id"
    ]
    client.post(f"/v1/grants/{grant_id}/reverse", headers=headers("console-alice", key=key()))
    # Budget is free again, but the key stands for the refused attempt: a new attempt needs a new key.
    replay = client.post(f"{RIGHT}/grants", json={"customer_id": "c2"}, headers=refused_key)
    assert (replay.status_code, replay.content) == (409, refused.content)


def test_same_key_with_a_different_request_is_refused(
    client: TestClient, create_right: Callable[..., dict[str, Any]], headers: Headers, error_of: Any
) -> None:
    create_right()
    hdrs = headers("recommender", key="k-1")
    assert client.post(f"{RIGHT}/grants", json={"customer_id": "c1"}, headers=hdrs).status_code == 201
    error_of(
        client.post(f"{RIGHT}/grants", json={"customer_id": "c2"}, headers=hdrs),
        422,
        "idempotency_key_reused",
    )
    error_of(
        client.post(f"{RIGHT}/reservations", json={"customer_id": "c1"}, headers=hdrs),
        422,
        "idempotency_key_reused",
    )
    # Keys are per client: another client may use the same string for its own request.
    other = client.post(
        f"{RIGHT}/grants", json={"customer_id": "c2"}, headers=headers("console-alice", key="k-1")
    )
    assert other.status_code == 201


def test_missing_or_malformed_key_is_refused(
    client: TestClient, create_right: Callable[..., dict[str, Any]], headers: Headers, error_of: Any
) -> None:
    create_right()
    error_of(
        client.post(f"{RIGHT}/grants", json={"customer_id": "c1"}, headers=headers("recommender")),
        400,
        "idempotency_key_required",
    )
    error_of(
        client.post(
            f"{RIGHT}/grants", json={"customer_id": "c1"}, headers=headers("recommender", key="bad key!")
        ),
        422,
        "validation_error",
    )
    error_of(
        client.post(
            f"{RIGHT}/grants", json={"customer_id": "c1"}, headers=headers("recommender", key="k" * 129)
        ),
        422,
        "validation_error",
    )
    assert client.get(f"{RIGHT}/budget", headers=headers("recommender")).json()["granted_count"] == 0


def test_hold_longer_than_allowed_is_refused(
    client: TestClient,
    create_right: Callable[..., dict[str, Any]],
    headers: Headers,
    key: Callable[[], str],
    error_of: Any,
) -> None:
    create_right()
    error_of(
        client.post(
            f"{RIGHT}/reservations",
            json={"customer_id": "c1", "hold_seconds": 10**6},
            headers=headers("recommender", key=key()),
        ),
        422,
        "validation_error",
    )
    error_of(
        client.post(
            f"{RIGHT}/reservations",
            json={"customer_id": "c1", "hold_seconds": 0},
            headers=headers("recommender", key=key()),
        ),
        422,
        "validation_error",
    )
