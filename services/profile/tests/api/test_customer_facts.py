"""GET /v1/customers/facts (page by page) and POST /v1/customers/facts/lookup (by id): every customer
exactly as the single-customer endpoints give them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from qianmian_rules import SEGMENTS, CustomerFacts

CUSTOMER = "C000000001"  # holds products, assessed
POTENTIAL = "C000000002"  # holds nothing
UNASSESSED = "C000000003"  # never assessed
ALL = [f"C{i:09d}" for i in range(1, 31)]
Headers = Callable[[str], dict[str, str]]


def _page(client: TestClient, headers: Headers, **params: Any) -> dict[str, Any]:
    response = client.get("/v1/customers/facts", params=params, headers=headers("recommender"))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _all(client: TestClient, headers: Headers, **params: Any) -> list[dict[str, Any]]:
    customers: list[dict[str, Any]] = []
    after: str | None = None
    while True:
        page = _page(client, headers, **params, **({"after": after} if after else {}))
        customers += page["customers"]
        if page["next_after"] is None:
            return customers
        assert page["next_after"] == page["customers"][-1]["customer_id"]
        after = page["next_after"]


def test_pages_cover_every_customer_once_in_id_order(client: TestClient, headers: Headers) -> None:
    for limit in (1, 7, 29, 30, 1000):
        customers = _all(client, headers, limit=limit)
        assert [c["customer_id"] for c in customers] == ALL
    first = _page(client, headers, limit=7)
    assert len(first["customers"]) == 7
    assert first["next_after"] == "C000000007"
    assert _page(client, headers, limit=30)["next_after"] is None
    assert _page(client, headers, after="C000000030") == {"customers": [], "next_after": None}
    assert [c["customer_id"] for c in _page(client, headers, after="C000000028")["customers"]] == [
        "C000000029",
        "C000000030",
    ]


def test_bulk_answer_equals_the_single_customer_endpoints(client: TestClient, headers: Headers) -> None:
    now = datetime.now(UTC)
    # one customer opts out of personalisation and two channels
    opted_out = client.put(
        f"/v1/customers/{CUSTOMER}/consents",
        json={"personalised": False, "push": False, "app": True, "reason": "customer call"},
        headers=headers("profile-ingest"),
    )
    assert opted_out.status_code == 200
    # one customer's current assessment has expired
    expired = client.put(
        f"/v1/customers/{UNASSESSED}/risk-assessment",
        json={
            "level": 4,
            "assessed_at": (now - timedelta(days=400)).isoformat(),
            "expires_at": (now - timedelta(days=35)).isoformat(),
            "source": "branch_questionnaire",
        },
        headers=headers("profile-ingest"),
    )
    assert expired.json()["valid"] is False
    bulk = {c["customer_id"]: c for c in _all(client, headers, limit=8)}
    assert list(bulk) == ALL
    for cid in ALL:
        facts = client.get(f"/v1/customers/{cid}/eligibility-facts", headers=headers("recommender"))
        consents = client.get(f"/v1/customers/{cid}/consents", headers=headers("recommender")).json()
        assert bulk[cid] == {
            "customer_id": cid,
            "facts": facts.json(),
            "consents": consents["channels"],
            "personalised": consents["personalised"],
        }, cid
        # byte for byte, not only equal once parsed (set-valued fields keep their order)
        raw = client.get(
            "/v1/customers/facts",
            params={"after": f"C{int(cid[1:]) - 1:09d}", "limit": 1},
            headers=headers("recommender"),
        ).text
        assert facts.text in raw
    assert bulk[CUSTOMER]["personalised"] is False
    assert bulk[CUSTOMER]["consents"]["push"] is False
    assert bulk[CUSTOMER]["facts"]["held_product_ids"]
    assert bulk[POTENTIAL]["facts"]["held_product_ids"] == []
    assert bulk[UNASSESSED]["facts"]["risk_level"] == 4
    assert datetime.fromisoformat(bulk[UNASSESSED]["facts"]["risk_expires_at"]) < now
    assert {c["personalised"] for c in bulk.values()} == {True, False}
    for row in bulk.values():
        CustomerFacts.model_validate(row["facts"])


@pytest.mark.parametrize("segment", SEGMENTS)
def test_segment_filter(client: TestClient, headers: Headers, segment: str) -> None:
    everyone = _all(client, headers)
    expected = [c["customer_id"] for c in everyone if segment in c["facts"]["segments"]]
    assert 0 < len(expected) < len(everyone)
    got = _all(client, headers, segment=segment, limit=3)
    assert [c["customer_id"] for c in got] == expected
    assert all(segment in c["facts"]["segments"] for c in got)


def test_facts_route_is_not_taken_for_a_customer_id(client: TestClient, headers: Headers) -> None:
    assert client.get("/v1/customers/facts", headers=headers("recommender")).status_code == 200
    profile = client.get(f"/v1/customers/{CUSTOMER}", headers=headers("recommender"))
    assert profile.json()["customer_id"] == CUSTOMER


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 5001},
        {"limit": "many"},
        {"after": "C1"},
        {"after": "13812345678"},
        {"segment": "vip"},
        {"segment": ""},
    ],
)
def test_bad_parameters_are_422(
    client: TestClient, headers: Headers, error: Callable[..., dict[str, Any]], params: dict[str, Any]
) -> None:
    body = error(
        client.get("/v1/customers/facts", params=params, headers=headers("recommender")),
        422,
        "validation_error",
    )
    assert "13812345678" not in str(body)


def test_needs_profile_read(client: TestClient, headers: Headers, error: Callable[..., object]) -> None:
    error(client.get("/v1/customers/facts"), 401, "unauthorized")
    error(client.get("/v1/customers/facts", headers=headers("readonly-analyst")), 403, "insufficient_scope")
    assert client.get("/v1/customers/facts", headers=headers("content-hub")).status_code == 200


def _lookup(client: TestClient, headers: Headers, ids: list[str]) -> dict[str, Any]:
    response = client.post(
        "/v1/customers/facts/lookup", json={"customer_ids": ids}, headers=headers("recommender")
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_lookup_equals_the_pages_and_names_the_missing(client: TestClient, headers: Headers) -> None:
    # an opted-out customer, so the lookup's consent is not only the default
    assert (
        client.put(
            f"/v1/customers/{POTENTIAL}/consents",
            json={"personalised": False, "sms": False, "reason": "customer call"},
            headers=headers("profile-ingest"),
        ).status_code
        == 200
    )
    pages = {c["customer_id"]: c for c in _all(client, headers)}
    asked = ["C000000017", CUSTOMER, "C999999998", POTENTIAL, CUSTOMER, UNASSESSED, "C000000030"]
    body = _lookup(client, headers, asked)
    assert [c["customer_id"] for c in body["customers"]] == sorted(set(asked) - {"C999999998"})
    assert body["missing"] == ["C999999998"]
    for item in body["customers"]:
        assert item == pages[item["customer_id"]]
    assert {c["customer_id"]: c["personalised"] for c in body["customers"]}[POTENTIAL] is False
    every = _lookup(client, headers, ALL)
    assert every == {"customers": list(pages.values()), "missing": []}
    assert _lookup(client, headers, ["C999999997"]) == {"customers": [], "missing": ["C999999997"]}


@pytest.mark.parametrize(
    "body",
    [
        {"customer_ids": []},
        {"customer_ids": ["C000000001"] * 501},
        {"customer_ids": ["13812345678"]},
        {"customer_ids": "C000000001"},
        {"customer_ids": ["C000000001"], "extra": 1},
        {},
    ],
)
def test_bad_lookups_are_422(
    client: TestClient, headers: Headers, error: Callable[..., dict[str, Any]], body: dict[str, Any]
) -> None:
    answer = error(
        client.post("/v1/customers/facts/lookup", json=body, headers=headers("recommender")),
        422,
        "validation_error",
    )
    assert "13812345678" not in str(answer)
