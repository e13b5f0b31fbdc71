from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from qianmian_rules import CustomerFacts

Headers = Callable[[str], dict[str, str]]
ErrorOf = Callable[..., dict[str, Any]]
Create = Callable[..., dict[str, Any]]

NEXT_YEAR = datetime.now(UTC) + timedelta(days=365)
FACTS = CustomerFacts(
    age=35,
    aum=120_000,
    region="310000",
    segments=frozenset({"payroll"}),
    lifecycle_stage="active",
    held_product_types=frozenset({"deposit"}),
    risk_level=2,
    risk_expires_at=NEXT_YEAR,
)


@pytest.fixture
def catalogue(create_product: Create) -> None:
    create_product("active", product_id="WM-R2")  # min AUM 50k, 18..70, R2
    create_product("active", product_id="WM-R3", risk_rating=3)  # too risky for C2
    create_product("active", product_id="WM-RICH", eligibility={"min_aum": 1_000_000})
    create_product("approved", product_id="WM-NOT-LIVE")
    create_product(
        "active", product_id="CARD", product_type="credit_card", risk_rating=None, channels=["app"],
        eligibility={"excluded_holdings": ["credit_card"], "segments": ["payroll"]},
    )  # fmt: skip
    create_product(
        "active", product_id="DEP-LATER", product_type="deposit", risk_rating=None,
        sale_start=(NEXT_YEAR - timedelta(days=30)).isoformat(),
    )  # fmt: skip


def ids(response: Any) -> list[str]:
    assert response.status_code == 200, response.text
    return [p["product_id"] for p in response.json()["items"]]


@pytest.mark.usefixtures("catalogue")
def test_eligible_for_lists_only_offerable_products(
    client: TestClient, headers: Headers, facts_provider: Any
) -> None:
    facts_provider.facts["C001"] = FACTS
    h = headers("recommender")
    assert ids(client.get("/v1/products", params={"eligible_for": "C001"}, headers=h)) == ["CARD", "WM-R2"]
    assert ids(
        client.get("/v1/products", params={"eligible_for": "C001", "channel": "online_rm"}, headers=h)
    ) == ["WM-R2"]
    assert ids(
        client.get("/v1/products", params={"eligible_for": "C001", "product_type": "credit_card"}, headers=h)
    ) == ["CARD"]
    later = (NEXT_YEAR - timedelta(days=1)).isoformat()
    assert "DEP-LATER" in ids(
        client.get("/v1/products", params={"eligible_for": "C001", "at": later}, headers=h)
    )


@pytest.mark.usefixtures("catalogue")
def test_expired_risk_assessment_hides_every_risk_rated_product(
    client: TestClient, headers: Headers, facts_provider: Any
) -> None:
    facts_provider.facts["C002"] = FACTS.model_copy(
        update={"risk_expires_at": datetime.now(UTC) - timedelta(days=1)}
    )
    facts_provider.facts["C003"] = FACTS.model_copy(update={"risk_level": None, "risk_expires_at": None})
    for customer in ("C002", "C003"):
        response = client.get(
            "/v1/products", params={"eligible_for": customer}, headers=headers("recommender")
        )
        assert ids(response) == ["CARD"]


def test_eligible_for_unknown_customer_is_404(
    client: TestClient, headers: Headers, error_of: ErrorOf
) -> None:
    response = client.get("/v1/products", params={"eligible_for": "C404"}, headers=headers("recommender"))
    error_of(response, 404, "customer_not_found")


def test_eligible_for_with_profile_down_is_503(
    client: TestClient, headers: Headers, error_of: ErrorOf, facts_provider: Any
) -> None:
    facts_provider.unavailable = True
    response = client.get("/v1/products", params={"eligible_for": "C001"}, headers=headers("recommender"))
    error_of(response, 503, "dependency_unavailable")


@pytest.mark.usefixtures("catalogue")
def test_evaluate_explains_every_ineligible_product(client: TestClient, headers: Headers) -> None:
    body = {"facts": FACTS.model_dump(mode="json"), "channel": "app"}
    response = client.post("/v1/eligibility/evaluate", json=body, headers=headers("recommender"))
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["eligible"] == ["CARD", "WM-R2"]
    codes = {v["product_id"]: {f["code"] for f in v["failures"]} for v in result["verdicts"]}
    assert codes["WM-R3"] == {"risk_level_too_low"}
    assert codes["WM-RICH"] == {"aum_below_min"}
    assert codes["DEP-LATER"] == {"outside_sale_window"}
    assert "WM-NOT-LIVE" not in codes  # only active products are evaluated
    assert [v["eligible"] for v in result["verdicts"]][:2] == [True, True]


@pytest.mark.usefixtures("catalogue")
def test_evaluate_at_a_time_and_in_a_channel(client: TestClient, headers: Headers) -> None:
    facts = FACTS.model_copy(update={"held_product_types": frozenset({"credit_card"})})
    body = {"facts": facts.model_dump(mode="json"), "channel": "online_rm", "at": NEXT_YEAR.isoformat()}
    result = client.post("/v1/eligibility/evaluate", json=body, headers=headers("readonly-analyst")).json()
    codes = {v["product_id"]: {f["code"] for f in v["failures"]} for v in result["verdicts"]}
    assert codes["CARD"] == {"channel_not_allowed", "excluded_holding_present"}
    assert codes["DEP-LATER"] == set()


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"facts": {"age": 30}},
        {"facts": {**FACTS.model_dump(mode="json"), "age": -1}},
        {"facts": {**FACTS.model_dump(mode="json"), "risk_level": 9}},
        {"facts": {**FACTS.model_dump(mode="json"), "name": "张三"}},
        {"facts": FACTS.model_dump(mode="json"), "channel": "Bad Channel"},
        {"facts": FACTS.model_dump(mode="json"), "at": "2030-01-01T00:00:00"},
    ],
)
def test_evaluate_rejects_bad_input(
    client: TestClient, headers: Headers, error_of: ErrorOf, body: Any
) -> None:
    response = client.post("/v1/eligibility/evaluate", json=body, headers=headers("recommender"))
    error = error_of(response, 422, "validation_error")
    assert "张三" not in response.text  # the input is never echoed back
    assert error["details"]


def test_evaluate_needs_the_read_scope(client: TestClient, headers: Headers, error_of: ErrorOf) -> None:
    body = {"facts": FACTS.model_dump(mode="json")}
    error_of(client.post("/v1/eligibility/evaluate", json=body), 401)
    error_of(client.post("/v1/eligibility/evaluate", json=body, headers=headers("app-gateway")), 403)
