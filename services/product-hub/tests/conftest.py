"""Fixtures: a freshly migrated SQLite database per test, the app, dev tokens, an in-memory facts double."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from product_hub.database import migrate
from product_hub.errors import CustomerNotFoundError, ProfileUnavailableError
from product_hub.main import create_app
from product_hub.settings import ProductHubSettings
from qianmian_core.testing import assert_error, auth_headers, copy_of_sqlite, migrated_sqlite_template
from qianmian_rules import CustomerFacts

REPO_ROOT = Path(__file__).resolve().parents[3]
DEV_TOKENS = REPO_ROOT / "config" / "dev-tokens.yaml"


class InMemoryFactsProvider:
    """Test double of the profile service at the boundary: facts from a dict, or a simulated outage."""

    def __init__(self) -> None:
        self.facts: dict[str, CustomerFacts] = {}
        self.unavailable = False

    async def facts_for(self, customer_id: str) -> CustomerFacts:
        if self.unavailable:
            raise ProfileUnavailableError("the profile service is unreachable")
        try:
            return self.facts[customer_id]
        except KeyError:
            raise CustomerNotFoundError(f"customer {customer_id} not found") from None


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One SQLite file migrated to head; each test gets a copy (much faster than migrating each time)."""
    return migrated_sqlite_template(tmp_path_factory.mktemp("template"), "product-hub.db", migrate)


@pytest.fixture
def database_url(tmp_path: Path, migrated_template: Path) -> str:
    return copy_of_sqlite(migrated_template, tmp_path)


@pytest.fixture
def settings(database_url: str) -> ProductHubSettings:
    return ProductHubSettings(database_url=database_url, environment="test", auth_tokens_file=DEV_TOKENS)


@pytest.fixture
def facts_provider() -> InMemoryFactsProvider:
    return InMemoryFactsProvider()


@pytest.fixture
def client(settings: ProductHubSettings, facts_provider: InMemoryFactsProvider) -> Iterator[TestClient]:
    app = create_app(settings, facts_provider=facts_provider)
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture(scope="session")
def headers() -> Callable[[str], dict[str, str]]:
    """``headers("console-alice")``: the Authorization header of a dev client."""
    return lambda client_name: auth_headers(client_name, str(DEV_TOKENS))


@pytest.fixture
def product_payload() -> Callable[..., dict[str, Any]]:
    """A valid create body; keyword arguments override fields."""

    def build(**overrides: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "product_id": "WM-TEST-90D",
            "name": "稳健理财90天",
            "name_en": "Steady wealth 90 days",
            "product_type": "wealth_management",
            "risk_rating": 2,
            "eligibility": {"min_aum": 50_000, "min_age": 18, "max_age": 70},
            "channels": ["app", "online_rm"],
            "margin_rate": 0.008,
            "value": 420.0,
            "attributes": {"tenor_days": 90, "expected_yield": 0.028, "tags": ["steady", "short"]},
        }
        body.update(overrides)
        return body

    return build


@pytest.fixture(scope="session")
def error_of() -> Callable[..., dict[str, Any]]:
    return assert_error


@pytest.fixture
def create_product(
    client: TestClient,
    headers: Callable[[str], dict[str, str]],
    product_payload: Callable[..., dict[str, Any]],
) -> Callable[..., dict[str, Any]]:
    """Create a product as console-alice and move it to ``status`` (approved by console-bob)."""

    def create(status: str = "draft", **overrides: Any) -> dict[str, Any]:
        response = client.post(
            "/v1/products", json=product_payload(**overrides), headers=headers("console-alice")
        )
        assert response.status_code == 201, response.text
        product: dict[str, Any] = response.json()
        path = f"/v1/products/{product['product_id']}/transitions"
        steps = {"draft": [], "approved": ["approved"], "active": ["approved", "active"]}
        steps["retired"] = [*steps["active"], "retired"]
        for target in steps[status]:
            actor = "console-bob" if target == "approved" else "console-alice"
            response = client.post(path, json={"to": target}, headers=headers(actor))
            assert response.status_code == 200, response.text
            product = response.json()
        return product

    return create
