"""product-hub's ``eligible_for`` against the real profile service, seeded from the synthetic bank.

The expected answer is computed independently from the generator's parquet files with the rule
engine, so this checks the whole path: bankgen -> profile seed -> eligibility-facts contract ->
product-hub's HTTP client -> rule evaluation -> listing.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import httpx
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from product_hub.cli import main as product_hub_cli
from product_hub.facts import ProfileFactsClient
from product_hub.main import create_app as create_product_hub
from product_hub.settings import ProductHubSettings
from profile_service.cli import main as profile_cli
from profile_service.main import create_app as create_profile
from profile_service.service.activity import NullPusher
from profile_service.settings import ProfileSettings
from qianmian_bankgen.catalogue import CATALOGUE
from qianmian_bankgen.generator import generate
from qianmian_core.testing import auth_headers, dev_token
from qianmian_rules import CustomerFacts, check_eligibility, check_suitability

DEV_TOKENS = Path("config/dev-tokens.yaml")


@pytest.fixture(scope="module")
def bank(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bank")
    generate(customers=600, seed=11, as_of=datetime.now(UTC).date(), out=out)
    return out


@pytest.fixture(scope="module")
def services(bank: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    var = tmp_path_factory.mktemp("var")
    profile_url = f"sqlite:///{var / 'profile.db'}"
    product_url = f"sqlite:///{var / 'product-hub.db'}"
    mp = pytest.MonkeyPatch()
    mp.setenv("PROFILE_DATABASE_URL", profile_url)
    mp.setenv("PRODUCT_HUB_DATABASE_URL", product_url)
    assert profile_cli(["seed", "--data", str(bank)]) == 0
    assert product_hub_cli(["migrate"]) == 0
    assert product_hub_cli(["seed"]) == 0
    mp.undo()
    profile_app = create_profile(
        ProfileSettings(database_url=profile_url, environment="test", auth_tokens_file=DEV_TOKENS),
        pusher=NullPusher(),
    )
    facts_client = ProfileFactsClient(
        "http://profile.test", dev_token("recommender"), transport=httpx.ASGITransport(app=profile_app)
    )
    product_app = create_product_hub(
        ProductHubSettings(database_url=product_url, environment="test", auth_tokens_file=DEV_TOKENS),
        facts_provider=facts_client,
    )
    with TestClient(product_app) as client:
        yield client


def expected_offerable(bank: Path, customer_id: str, now: datetime) -> set[str]:
    customers = pd.read_parquet(bank / "customers.parquet").set_index("customer_id")
    holdings = pd.read_parquet(bank / "holdings.parquet")
    row = customers.loc[customer_id]
    held = holdings[holdings["customer_id"] == customer_id]
    expires = row["risk_expires_at"]
    facts = CustomerFacts(
        age=int(row["age"]),
        aum=float(row["aum"]),
        region=str(row["region"]),
        segments=frozenset(s for s in str(row["segments"]).split(",") if s),
        lifecycle_stage=str(row["lifecycle_stage"]),
        held_product_ids=frozenset(held["product_id"]),
        held_product_types=frozenset(held["product_type"]),
        risk_level=None if pd.isna(row["risk_level"]) else int(row["risk_level"]),
        risk_expires_at=None if pd.isna(expires) else expires.to_pydatetime(),
    )
    return {
        p.product_id
        for p in CATALOGUE
        if not check_eligibility(p.eligibility, facts) and not check_suitability(p.risk_rating, facts, now)
    }


def test_listing_equals_the_rule_engine_on_seeded_customers(services: TestClient, bank: Path) -> None:
    customers = pd.read_parquet(bank / "customers.parquet")
    sample = customers.sample(40, random_state=3)["customer_id"].tolist()
    headers = auth_headers("recommender")
    non_empty = 0
    for customer_id in sample:
        resp = services.get(
            "/v1/products", params={"eligible_for": customer_id, "limit": 500}, headers=headers
        )
        assert resp.status_code == 200, resp.text
        listed = {item["product_id"] for item in resp.json()["items"]}
        assert listed == expected_offerable(bank, customer_id, datetime.now(UTC)), customer_id
        non_empty += bool(listed)
    assert non_empty >= 30  # the catalogue serves most customers something


def test_no_risk_rated_product_for_customers_without_a_valid_assessment(
    services: TestClient, bank: Path
) -> None:
    customers = pd.read_parquet(bank / "customers.parquet")
    today = pd.Timestamp(date.today(), tz="UTC")
    invalid = customers[customers["risk_level"].isna() | (customers["risk_expires_at"] <= today)]
    assert len(invalid) > 10
    for customer_id in invalid["customer_id"].head(15):
        resp = services.get(
            "/v1/products",
            params={"eligible_for": customer_id, "limit": 500},
            headers=auth_headers("recommender"),
        )
        assert resp.status_code == 200
        assert all(item["risk_rating"] is None for item in resp.json()["items"])


def test_unknown_customer_is_404_through_profile(services: TestClient) -> None:
    resp = services.get(
        "/v1/products", params={"eligible_for": "C999999999"}, headers=auth_headers("recommender")
    )
    assert resp.status_code == 404
    assert resp.json()["error"]["code"] == "customer_not_found"


def test_profile_down_is_503_in_the_error_shape(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ph.db'}"
    from product_hub.database import migrate

    migrate(url)
    app = create_product_hub(
        ProductHubSettings(
            database_url=url,
            environment="test",
            auth_tokens_file=DEV_TOKENS,
            profile_url="http://127.0.0.1:9",  # discard port: nothing listens
        )
    )
    with TestClient(app) as client:
        resp = client.get(
            "/v1/products", params={"eligible_for": "C000000001"}, headers=auth_headers("recommender")
        )
    assert resp.status_code == 503
    assert resp.json()["error"]["code"] == "dependency_unavailable"
