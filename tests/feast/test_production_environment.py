"""The production yaml works end to end: SQL registry in PostgreSQL, Redis online store."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import redis
from qianmian_features import (
    FeastEnvironment,
    FeatureSettings,
    apply,
    materialize,
    online_features,
    open_store,
)
from qianmian_features.testing import BankData


def test_production_environment_applies_materialises_and_serves(
    repo_copy: Callable[[str], Path],
    bank: BankData,
    redis_test_url: str,
    postgres_database: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in postgres_database.items():
        monkeypatch.setenv(name, value)
    project = f"qianmian_prod_{uuid.uuid4().hex[:10]}"
    settings = FeatureSettings(
        feast_env=FeastEnvironment.PRODUCTION,
        feature_repo=repo_copy("production"),
        data_dir=str(bank.out),
        feast_project=project,
        redis_url=redis_test_url,
    )
    try:
        store = open_store(settings)
        apply(store)
        materialize(store, end=bank.as_of)

        assert store.config.registry.registry_type == "sql"
        assert {fv.name for fv in store.list_feature_views()} == {
            "customer_profile",
            "customer_activity",
            "product_stats",
        }
        activity = pd.read_parquet(bank.features / "customer_activity.parquet")
        latest = activity[activity["event_timestamp"] == activity["event_timestamp"].max()]
        customer_id = str(latest["customer_id"].iloc[0])
        values = online_features(store, [customer_id], ["customer_activity:clicks_30d"])[customer_id]
        assert values["customer_activity:clicks_30d"].present
        # A second process reading the same registry sees the same objects.
        assert open_store(settings).get_feature_service("recommender_v1").name == "recommender_v1"
    finally:
        # the registry goes with the database; Redis keys end with the project name
        client = redis.Redis.from_url(redis_test_url)
        try:
            keys = list(client.scan_iter(match=f"*{project}", count=1_000))
            if keys:
                client.delete(*keys)
        finally:
            client.close()
