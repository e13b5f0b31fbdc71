from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

Headers = Callable[[str], dict[str, str]]
Payload = Callable[..., dict[str, Any]]
ErrorOf = Callable[..., dict[str, Any]]
Create = Callable[..., dict[str, Any]]


# -- create --------------------------------------------------------------------------------------


def test_create_returns_a_draft_authored_by_the_caller(
    client: TestClient, headers: Headers, product_payload: Payload
) -> None:
    response = client.post("/v1/products", json=product_payload(), headers=headers("console-alice"))
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "draft"
    assert body["author"] == "console-alice"
    assert body["approved_by"] is None
    assert body["version"] == 1
    assert body["eligibility"]["min_aum"] == 50_000
    assert body["attributes"]["tags"] == ["steady", "short"]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"product_type": "lottery"}, "product_type"),
        ({"risk_rating": 6}, "risk_rating"),
        ({"product_type": "deposit", "risk_rating": 2}, None),  # deposits carry no rating
        ({"product_type": "fund", "risk_rating": None}, None),  # funds must carry one
        ({"channels": []}, "channels"),
        ({"channels": ["app", "app"]}, None),
        ({"eligibility": {"min_aum": 10, "max_aum": 5}}, "eligibility"),
        ({"eligibility": {"segments": ["vip"]}}, "eligibility"),
        ({"eligibility": {"unknown_rule": 1}}, "eligibility"),
        ({"sale_start": "2030-01-02T00:00:00Z", "sale_end": "2030-01-01T00:00:00Z"}, None),
        ({"sale_start": "2030-01-01T00:00:00"}, "sale_start"),  # naive datetimes are refused
        ({"margin_rate": -0.1}, "margin_rate"),
        ({"product_id": "bad id!"}, "product_id"),
        ({"quota": 0}, "quota"),
        ({"surprise": True}, "surprise"),
    ],
)
def test_create_rejects_invalid_products_with_the_error_shape(
    client: TestClient,
    headers: Headers,
    product_payload: Payload,
    error_of: ErrorOf,
    overrides: dict[str, Any],
    field: str | None,
) -> None:
    response = client.post(
        "/v1/products", json=product_payload(**overrides), headers=headers("console-alice")
    )
    error = error_of(response, 422, "validation_error")
    assert error["details"]
    if field is not None:
        assert any(field in d["loc"] for d in error["details"])


def test_create_rejects_a_non_json_body(client: TestClient, headers: Headers, error_of: ErrorOf) -> None:
    response = client.post(
        "/v1/products",
        content=b"not json",
        headers={**headers("console-alice"), "content-type": "application/json"},
    )
    error_of(response, 422, "validation_error")


def test_create_refuses_a_duplicate_id(
    client: TestClient, headers: Headers, create_product: Create, error_of: ErrorOf, product_payload: Payload
) -> None:
    create_product()
    response = client.post("/v1/products", json=product_payload(), headers=headers("console-bob"))
    error_of(response, 409, "product_exists")


def test_create_needs_a_token(client: TestClient, product_payload: Payload, error_of: ErrorOf) -> None:
    error_of(client.post("/v1/products", json=product_payload()), 401, "unauthorized")
    bad = {"Authorization": "Bearer " + "x" * 40}
    error_of(client.post("/v1/products", json=product_payload(), headers=bad), 401, "unauthorized")


def test_create_needs_the_write_scope(
    client: TestClient, headers: Headers, product_payload: Payload, error_of: ErrorOf
) -> None:
    for name in ("readonly-analyst", "recommender"):
        response = client.post("/v1/products", json=product_payload(), headers=headers(name))
        error_of(response, 403, "insufficient_scope")


# -- read ----------------------------------------------------------------------------------------


def test_get_returns_the_product(client: TestClient, headers: Headers, create_product: Create) -> None:
    created = create_product()
    response = client.get("/v1/products/WM-TEST-90D", headers=headers("readonly-analyst"))
    assert response.status_code == 200
    assert response.json() == created


def test_get_unknown_or_malformed_id(client: TestClient, headers: Headers, error_of: ErrorOf) -> None:
    error = error_of(
        client.get("/v1/products/NOPE", headers=headers("recommender")), 404, "product_not_found"
    )
    assert error["details"] == {"product_id": "NOPE"}
    error_of(client.get("/v1/products/bad%20id", headers=headers("recommender")), 422, "validation_error")


def test_get_needs_the_read_scope(client: TestClient, headers: Headers, error_of: ErrorOf) -> None:
    error_of(client.get("/v1/products/NOPE"), 401)
    error_of(client.get("/v1/products/NOPE", headers=headers("app-gateway")), 403, "insufficient_scope")


def test_list_filters_by_status_type_channel_and_sale_window(
    client: TestClient, headers: Headers, create_product: Create
) -> None:
    create_product("active", product_id="A-WM")
    create_product("draft", product_id="B-DEP", product_type="deposit", risk_rating=None, channels=["sms"])
    create_product(
        "active",
        product_id="C-FUND",
        product_type="fund",
        risk_rating=4,
        sale_start="2031-01-01T00:00:00Z",
        sale_end="2031-06-30T00:00:00+08:00",
    )
    h = headers("readonly-analyst")

    def ids(**params: Any) -> list[str]:
        response = client.get("/v1/products", params=params, headers=h)
        assert response.status_code == 200, response.text
        return [p["product_id"] for p in response.json()["items"]]

    assert ids() == ["A-WM", "B-DEP", "C-FUND"]
    assert ids(status="active") == ["A-WM", "C-FUND"]
    assert ids(status="draft") == ["B-DEP"]
    assert ids(product_type="deposit") == ["B-DEP"]
    assert ids(channel="sms") == ["B-DEP"]
    assert ids(at="2031-03-01T00:00:00Z") == ["A-WM", "B-DEP", "C-FUND"]
    assert ids(at="2032-01-01T00:00:00Z") == ["A-WM", "B-DEP"]
    assert ids(limit=1, offset=1) == ["B-DEP"]
    page = client.get("/v1/products", params={"limit": 1}, headers=h).json()
    assert (page["total"], page["limit"], page["offset"]) == (3, 1, 0)


@pytest.mark.parametrize(
    "params",
    [
        {"status": "pending"},
        {"product_type": "lottery"},
        {"limit": 0},
        {"limit": 10_000},
        {"offset": -1},
        {"at": "yesterday"},
        {"at": "2030-01-01T00:00:00"},
        {"eligible_for": "../admin"},
        {"channel": "App Store"},
    ],
)
def test_list_rejects_bad_parameters(
    client: TestClient, headers: Headers, error_of: ErrorOf, params: dict[str, Any]
) -> None:
    error_of(
        client.get("/v1/products", params=params, headers=headers("recommender")), 422, "validation_error"
    )


def test_list_needs_the_read_scope(client: TestClient, headers: Headers, error_of: ErrorOf) -> None:
    error_of(client.get("/v1/products"), 401)
    error_of(client.get("/v1/products", headers=headers("profile-ingest")), 403, "insufficient_scope")


# -- edit ----------------------------------------------------------------------------------------


def test_author_edits_a_draft_and_the_version_moves(
    client: TestClient, headers: Headers, create_product: Create
) -> None:
    create_product()
    response = client.patch(
        "/v1/products/WM-TEST-90D",
        json={"version": 1, "name": "稳健理财91天", "quota": 1000, "eligibility": {"min_aum": 100_000}},
        headers=headers("console-alice"),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["name"], body["quota"], body["version"]) == ("稳健理财91天", 1000, 2)
    assert body["eligibility"]["min_aum"] == 100_000
    assert body["updated_at"] >= body["created_at"]
    # null clears a nullable field
    response = client.patch(
        "/v1/products/WM-TEST-90D", json={"version": 2, "quota": None}, headers=headers("console-alice")
    )
    assert response.json()["quota"] is None


def test_edit_with_a_stale_version_conflicts(
    client: TestClient, headers: Headers, create_product: Create, error_of: ErrorOf
) -> None:
    create_product()
    h = headers("console-alice")
    assert (
        client.patch("/v1/products/WM-TEST-90D", json={"version": 1, "value": 1.0}, headers=h).status_code
        == 200
    )
    response = client.patch("/v1/products/WM-TEST-90D", json={"version": 1, "value": 2.0}, headers=h)
    error = error_of(response, 409, "version_conflict")
    assert error["details"] == {"current_version": 2}


def test_edit_that_makes_the_product_invalid_is_422(
    client: TestClient, headers: Headers, create_product: Create, error_of: ErrorOf
) -> None:
    create_product()
    h = headers("console-alice")
    for patch in (
        {"version": 1, "product_type": "deposit"},  # a rated deposit
        {"version": 1, "name": None},
        {"version": 1, "channels": []},
        {"version": 1, "sale_start": "2030-02-01T00:00:00Z", "sale_end": "2030-01-01T00:00:00Z"},
        {"version": 1, "unknown": 1},
        {"name": "no version"},
    ):
        error_of(client.patch("/v1/products/WM-TEST-90D", json=patch, headers=h), 422, "validation_error")
    assert client.get("/v1/products/WM-TEST-90D", headers=h).json()["version"] == 1


def test_only_drafts_and_only_by_their_author(
    client: TestClient, headers: Headers, create_product: Create, error_of: ErrorOf
) -> None:
    create_product()
    patch = {"version": 1, "value": 9.0}
    error_of(
        client.patch("/v1/products/WM-TEST-90D", json=patch, headers=headers("console-bob")),
        403,
        "not_author",
    )
    approved = create_product("approved", product_id="WM-APPROVED")
    response = client.patch(
        "/v1/products/WM-APPROVED",
        json={"version": approved["version"], "value": 9.0},
        headers=headers("console-alice"),
    )
    error_of(response, 409, "not_editable")


def test_edit_unknown_product_and_scopes(client: TestClient, headers: Headers, error_of: ErrorOf) -> None:
    patch = {"version": 1, "value": 9.0}
    error_of(
        client.patch("/v1/products/NOPE", json=patch, headers=headers("console-alice")),
        404,
        "product_not_found",
    )
    error_of(client.patch("/v1/products/NOPE", json=patch), 401)
    error_of(client.patch("/v1/products/NOPE", json=patch, headers=headers("readonly-analyst")), 403)


# -- workflow ------------------------------------------------------------------------------------


def test_full_workflow_is_recorded_in_the_history(
    client: TestClient, headers: Headers, create_product: Create
) -> None:
    create_product()
    path = "/v1/products/WM-TEST-90D/transitions"
    approved = client.post(
        path, json={"to": "approved", "comment": "checked"}, headers=headers("console-bob")
    )
    assert approved.status_code == 200
    assert approved.json()["approved_by"] == "console-bob"
    assert approved.json()["approved_at"] is not None
    assert (
        client.post(path, json={"to": "active"}, headers=headers("console-alice")).json()["status"]
        == "active"
    )
    assert (
        client.post(path, json={"to": "retired"}, headers=headers("console-bob")).json()["status"]
        == "retired"
    )

    history = client.get("/v1/products/WM-TEST-90D/history", headers=headers("readonly-analyst")).json()
    moves = [(c["from_status"], c["to_status"], c["actor"]) for c in history["changes"]]
    assert moves == [
        (None, "draft", "console-alice"),
        ("draft", "approved", "console-bob"),
        ("approved", "active", "console-alice"),
        ("active", "retired", "console-bob"),
    ]
    assert history["changes"][1]["comment"] == "checked"


def test_the_author_cannot_approve_their_own_product(
    client: TestClient, headers: Headers, create_product: Create, error_of: ErrorOf
) -> None:
    create_product()
    response = client.post(
        "/v1/products/WM-TEST-90D/transitions", json={"to": "approved"}, headers=headers("console-alice")
    )
    error = error_of(response, 403, "maker_checker_violation")
    assert error["details"] == {"author": "console-alice"}
    assert (
        client.get("/v1/products/WM-TEST-90D", headers=headers("console-alice")).json()["status"] == "draft"
    )


@pytest.mark.parametrize(
    ("status", "target"),
    [("draft", "active"), ("draft", "retired"), ("approved", "approved"), ("active", "active"),
     ("retired", "active"), ("retired", "approved"), ("active", "approved")],
)  # fmt: skip
def test_illegal_transitions_conflict(
    client: TestClient, headers: Headers, create_product: Create, error_of: ErrorOf, status: str, target: str
) -> None:
    create_product(status)
    actor = "console-bob" if target == "approved" else "console-alice"
    response = client.post(
        "/v1/products/WM-TEST-90D/transitions", json={"to": target}, headers=headers(actor)
    )
    error = error_of(response, 409, "illegal_transition")
    assert error["details"] == {"from": status, "to": target}


def test_a_product_whose_sale_window_ended_cannot_be_activated(
    client: TestClient, headers: Headers, create_product: Create, error_of: ErrorOf
) -> None:
    past = datetime.now(UTC) - timedelta(days=1)
    create_product("approved", sale_start=(past - timedelta(days=30)).isoformat(), sale_end=past.isoformat())
    response = client.post(
        "/v1/products/WM-TEST-90D/transitions", json={"to": "active"}, headers=headers("console-alice")
    )
    error_of(response, 409, "sale_window_ended")


def test_transition_scopes_and_bad_input(
    client: TestClient, headers: Headers, create_product: Create, error_of: ErrorOf
) -> None:
    create_product()
    path = "/v1/products/WM-TEST-90D/transitions"
    error_of(client.post(path, json={"to": "approved"}), 401)
    error_of(
        client.post(path, json={"to": "approved"}, headers=headers("readonly-analyst")),
        403,
        "insufficient_scope",
    )
    error_of(
        client.post(path, json={"to": "active"}, headers=headers("recommender")), 403, "insufficient_scope"
    )
    error_of(client.post(path, json={"to": "draft"}, headers=headers("console-bob")), 422, "validation_error")
    error_of(
        client.post(path, json={"to": "approved", "comment": "x" * 501}, headers=headers("console-bob")), 422
    )
    error_of(
        client.post("/v1/products/NOPE/transitions", json={"to": "approved"}, headers=headers("console-bob")),
        404,
        "product_not_found",
    )


def test_history_unknown_product_and_scopes(client: TestClient, headers: Headers, error_of: ErrorOf) -> None:
    error_of(
        client.get("/v1/products/NOPE/history", headers=headers("readonly-analyst")), 404, "product_not_found"
    )
    error_of(client.get("/v1/products/NOPE/history"), 401)
    error_of(client.get("/v1/products/NOPE/history", headers=headers("app-gateway")), 403)
    error_of(client.get("/v1/products/bad%20id/history", headers=headers("readonly-analyst")), 422)
