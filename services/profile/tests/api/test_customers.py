"""GET /v1/customers/{id} (masked 360) and /eligibility-facts (the CustomerFacts contract)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from qianmian_rules import CustomerFacts

CUSTOMER = "C000000001"
POTENTIAL = "C000000002"
UNASSESSED = "C000000003"
Headers = Callable[[str], dict[str, str]]


def test_profile_is_masked_and_complete(client: TestClient, headers: Headers) -> None:
    response = client.get(f"/v1/customers/{CUSTOMER}", headers=headers("app-gateway"))
    assert response.status_code == 200
    body = response.json()
    assert body["pii"] == {
        "name": "张**",
        "mobile": "138****5678",
        "id_number": "110101********1234",
        "card_number": "6222 **** **** 0123",
    }
    for raw in ("张三丰", "13812345678", "110101199003071234", "6222021234567890123"):
        assert raw not in response.text
    assert body["customer_id"] == CUSTOMER
    assert set(body["value"]) >= {"aum", "annual_margin", "retention_probability", "discount_rate", "clv"}
    assert body["value"]["clv"] > 0
    assert body["risk_assessment"]["level"] in range(1, 6)
    assert isinstance(body["risk_assessment"]["valid"], bool)
    assert set(body["consents"]["channels"]) == {
        "app",
        "mini_program",
        "push",
        "sms",
        "remote_agent",
        "online_rm",
    }
    assert body["consents"]["personalised"] is True
    assert body["holdings"]
    assert body["lifecycle_stage"]
    assert isinstance(body["tags"], list)
    assert isinstance(body["contacts_30d"], int)
    assert all(m["customer_id"] == CUSTOMER for m in body["recent_moments"])


def test_profile_without_assessment_or_holdings(client: TestClient, headers: Headers) -> None:
    assert (
        client.get(f"/v1/customers/{UNASSESSED}", headers=headers("app-gateway")).json()["risk_assessment"]
        is None
    )
    potential = client.get(f"/v1/customers/{POTENTIAL}", headers=headers("app-gateway")).json()
    assert potential["holdings"] == []


def test_eligibility_facts_are_exactly_customer_facts(client: TestClient, headers: Headers) -> None:
    response = client.get(f"/v1/customers/{CUSTOMER}/eligibility-facts", headers=headers("recommender"))
    assert response.status_code == 200
    body = response.json()
    assert set(body) == set(CustomerFacts.model_fields)
    facts = CustomerFacts.model_validate(body)
    assert facts.held_product_ids
    assert facts.risk_level is not None
    assert facts.risk_expires_at is not None
    unassessed = client.get(f"/v1/customers/{UNASSESSED}/eligibility-facts", headers=headers("recommender"))
    assert unassessed.json()["risk_level"] is None


@pytest.mark.parametrize("path", ["/v1/customers/{}", "/v1/customers/{}/eligibility-facts"])
def test_unknown_customer_is_404(
    client: TestClient, headers: Headers, error: Callable[..., object], path: str
) -> None:
    error(client.get(path.format("C999999999"), headers=headers("recommender")), 404, "customer_not_found")


@pytest.mark.parametrize("bad_id", ["42", "C12345", "c000000001", "C0000000011", "13812345678"])
@pytest.mark.parametrize("path", ["/v1/customers/{}", "/v1/customers/{}/eligibility-facts"])
def test_malformed_customer_id_is_422(
    client: TestClient, headers: Headers, error: Callable[..., dict[str, object]], path: str, bad_id: str
) -> None:
    body = error(client.get(path.format(bad_id), headers=headers("recommender")), 422, "validation_error")
    # The offending value is never echoed: it might be a phone number.
    assert bad_id not in str(body)
