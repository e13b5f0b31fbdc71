"""Fixtures: a freshly migrated SQLite database per test, the app, dev tokens, sample rights."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from qianmian_core.testing import assert_error, auth_headers, copy_of_sqlite, migrated_sqlite_template
from rights_hub.database import migrate
from rights_hub.main import create_app
from rights_hub.settings import RightsHubSettings

REPO_ROOT = Path(__file__).resolve().parents[3]
DEV_TOKENS = REPO_ROOT / "config" / "dev-tokens.yaml"


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One SQLite file migrated to head; each test gets a copy (much faster than migrating each time)."""
    return migrated_sqlite_template(tmp_path_factory.mktemp("template"), "rights-hub.db", migrate)


@pytest.fixture
def database_url(tmp_path: Path, migrated_template: Path) -> str:
    return copy_of_sqlite(migrated_template, tmp_path)


@pytest.fixture
def settings(database_url: str) -> RightsHubSettings:
    return RightsHubSettings(database_url=database_url, environment="test", auth_tokens_file=DEV_TOKENS)


@pytest.fixture
def client(settings: RightsHubSettings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture(scope="session")
def headers() -> Callable[..., dict[str, str]]:
    """``headers("recommender", key="k1")``: Authorization (and Idempotency-Key) of a dev client."""

    def build(client_name: str, key: str | None = None) -> dict[str, str]:
        result = auth_headers(client_name, str(DEV_TOKENS))
        if key is not None:
            result["Idempotency-Key"] = key
        return result

    return build


def new_key() -> str:
    """A fresh Idempotency-Key."""
    return uuid.uuid4().hex


def right_body(**overrides: Any) -> dict[str, Any]:
    """A valid create body; keyword arguments override fields."""
    now = datetime.now(UTC)
    body: dict[str, Any] = {
        "right_id": "RT-TEST-COFFEE",
        "name": "瑞幸咖啡券 9.9元",
        "right_type": "partner_perk",
        "partner": "瑞幸咖啡",
        "unit_cost_fen": 990,
        "budget_count": 5,
        "budget_money_fen": 990 * 5,
        "per_customer_limit": 2,
        "valid_from": (now - timedelta(days=1)).isoformat(),
        "valid_until": (now + timedelta(days=30)).isoformat(),
        "redeem_within_days": 14,
        "segments": ["payroll", "credit_card"],
        "lifecycle_stages": ["active"],
    }
    body.update(overrides)
    return body


@pytest.fixture
def create_right(client: TestClient, headers: Callable[..., dict[str, str]]) -> Callable[..., dict[str, Any]]:
    """Create a right as console-alice and, unless ``status="draft"``, activate it as console-bob."""

    def create(status: str = "active", **overrides: Any) -> dict[str, Any]:
        response = client.post("/v1/rights", json=right_body(**overrides), headers=headers("console-alice"))
        assert response.status_code == 201, response.text
        right: dict[str, Any] = response.json()
        path = f"/v1/rights/{right['right_id']}/transitions"
        steps = {"draft": [], "active": ["active"], "paused": ["active", "paused"]}
        steps["retired"] = [*steps["active"], "retired"]
        for target in steps[status]:
            actor = "console-bob" if target == "active" else "console-alice"
            response = client.post(path, json={"to": target}, headers=headers(actor))
            assert response.status_code == 200, response.text
            right = response.json()
        return right

    return create


@pytest.fixture(scope="session")
def error_of() -> Callable[..., dict[str, Any]]:
    return assert_error


@pytest.fixture(scope="session")
def right_payload() -> Callable[..., dict[str, Any]]:
    return right_body


@pytest.fixture
def key() -> Callable[[], str]:
    """``key()``: a fresh Idempotency-Key."""
    return new_key
