"""End to end with the real generator and a real Feast store: seed, ingest a moment, read it back online.

The feature repo is applied into a temporary copy, so ``feature_repo/data`` is never written.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from profile_service.feast_pusher import FeastPusher
from profile_service.main import create_app
from profile_service.models import Base, Customer
from profile_service.service.seeding import seed
from profile_service.settings import ProfileSettings
from qianmian_core.db import Database
from qianmian_core.testing import auth_headers
from sqlalchemy import func, select

REPO_ROOT = Path(__file__).resolve().parents[3]
TOKENS = REPO_ROOT / "config" / "dev-tokens.yaml"
CUSTOMERS = 200
AS_OF = date(2025, 6, 30)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def generated_bank(tmp_path_factory: pytest.TempPathFactory) -> Path:
    generator = pytest.importorskip("qianmian_bankgen.generator")
    out = tmp_path_factory.mktemp("generated")
    generator.generate(customers=CUSTOMERS, seed=11, as_of=AS_OF, out=out)
    return out


@pytest.fixture(scope="module")
def feast_store(tmp_path_factory: pytest.TempPathFactory, generated_bank: Path) -> Any:
    features = pytest.importorskip("qianmian_features")
    repo = tmp_path_factory.mktemp("feast") / "feature_repo"
    shutil.copytree(REPO_ROOT / "feature_repo", repo, ignore=shutil.ignore_patterns("data", "__pycache__"))
    store = features.open_store(features.FeatureSettings(feature_repo=repo, data_dir=str(generated_bank)))
    features.apply(store)
    return store


@pytest.fixture
def seeded_generated(tmp_path: Path, generated_bank: Path) -> Iterator[tuple[ProfileSettings, Database]]:
    settings = ProfileSettings(
        database_url=f"sqlite:///{tmp_path}/profile.db", auth_tokens_file=TOKENS, feast_push_enabled=False
    )
    db = Database(settings.database_url)
    Base.metadata.create_all(db.engine)
    with db.session() as session:
        seed(session, generated_bank)
    yield settings, db
    db.dispose()


def test_real_generator_seeds(seeded_generated: tuple[ProfileSettings, Database]) -> None:
    _, db = seeded_generated
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Customer)) == CUSTOMERS


def test_ingested_moment_is_online_within_a_second(
    seeded_generated: tuple[ProfileSettings, Database], feast_store: Any
) -> None:
    from qianmian_features import online_features

    settings, db = seeded_generated
    app = create_app(settings, pusher=FeastPusher(store=feast_store))
    app.state.db.dispose()
    app.state.db = db
    customer_id = "C000000007"
    body = {
        "event_id": "feast-e2e-1",
        "customer_id": customer_id,
        "event_type": "large_inbound_transfer",
        "occurred_at": (datetime.now(UTC) - timedelta(seconds=1)).isoformat(),
        "amount": 250_000.0,
    }
    with TestClient(app) as client:
        started = time.perf_counter()
        response = client.post("/v1/events", json=body, headers=auth_headers("recommender", str(TOKENS)))
        assert response.status_code == 201, response.text
        read = online_features(
            feast_store, [customer_id], ["customer_activity:last_moment_type", "customer_activity:moments_7d"]
        )
        elapsed = time.perf_counter() - started
    values = read[customer_id]
    assert values["customer_activity:last_moment_type"].value == "large_inbound_transfer"
    assert values["customer_activity:moments_7d"].value >= 1
    assert elapsed < 1.0, f"ingest-to-online took {elapsed:.2f}s"
