"""Materialised online values are exactly the point-in-time offline values at the same time."""

from __future__ import annotations

import random

import pandas as pd
import pytest
from feast import FeatureStore
from qianmian_features import (
    OnlineFeatures,
    feature_refs,
    historical_features,
    online_features,
    online_product_features,
)
from qianmian_features.testing import BankData, latest_rows, same_value

CUSTOMER_VIEWS = ("customer_profile", "customer_activity")
SAMPLE = 50


def _historical(
    store: FeatureStore, key: str, ids: list[str], refs: list[str], bank: BankData
) -> pd.DataFrame:
    entity_df = pd.DataFrame({key: ids, "event_timestamp": [bank.as_of] * len(ids)})
    return historical_features(store, entity_df, refs).set_index(key)


def _assert_parity(online: OnlineFeatures, offline: pd.DataFrame, refs: list[str]) -> None:
    mismatches = []
    for entity_id, features in online.items():
        for ref in refs:
            value = features[ref].value
            expected = offline.at[entity_id, ref.replace(":", "__")]
            if not same_value(value, expected):
                mismatches.append(f"{entity_id} {ref}: online={value!r} offline={expected!r}")
    assert not mismatches, "\n".join(mismatches[:20])


def test_customer_features_online_equal_point_in_time_offline(
    online_store: FeatureStore, bank: BankData
) -> None:
    profiles = pd.read_parquet(bank.features / "customer_profile.parquet", columns=["customer_id"])
    customers = sorted(profiles["customer_id"].unique())
    sample = random.Random(7).sample(customers, SAMPLE)
    refs = feature_refs(online_store, CUSTOMER_VIEWS)

    online = online_features(online_store, sample, refs)
    offline = _historical(online_store, "customer_id", sample, refs, bank)

    _assert_parity(online, offline, refs)
    present = sum(features[refs[0]].present for features in online.values())
    assert present >= SAMPLE * 0.9, "most sampled customers should have a current profile"


def test_online_event_timestamps_are_the_latest_source_rows(
    online_store: FeatureStore, bank: BankData
) -> None:
    activity = pd.read_parquet(bank.features / "customer_activity.parquet")
    expected = latest_rows(activity, "customer_id", bank.as_of, pd.Timedelta(days=14))
    sample = random.Random(11).sample(sorted(activity["customer_id"].unique()), SAMPLE)

    online = online_features(online_store, sample, ["customer_activity:clicks_30d"])

    for customer_id in sample:
        feature = online[customer_id]["customer_activity:clicks_30d"]
        if customer_id in expected.index:
            assert feature.event_timestamp == expected.at[customer_id, "event_timestamp"]
            assert feature.value == expected.at[customer_id, "clicks_30d"]
        else:
            assert not feature.present


def test_product_features_online_equal_point_in_time_offline(
    online_store: FeatureStore, bank: BankData
) -> None:
    stats = pd.read_parquet(bank.features / "product_stats.parquet", columns=["product_id"])
    products = sorted(stats["product_id"].unique())
    refs = feature_refs(online_store, ["product_stats"])

    online = online_product_features(online_store, products, refs)
    offline = _historical(online_store, "product_id", products, refs, bank)

    _assert_parity(online, offline, refs)
    assert all(features[refs[0]].present for features in online.values())


@pytest.mark.parametrize("service", ["recommender_v1"])
def test_feature_service_serves_all_three_views(sqlite_store: FeatureStore, service: str) -> None:
    views = {
        projection.name for projection in sqlite_store.get_feature_service(service).feature_view_projections
    }
    assert views == {"customer_profile", "customer_activity", "product_stats"}
