"""Pushed activity is served at once; stale values are reported missing, never used."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from feast import FeatureStore
from qianmian_features import (
    CUSTOMER_ACTIVITY_COLUMNS,
    check_freshness,
    feature_refs,
    online_features,
    push_customer_activity,
    ttl_by_view,
)
from qianmian_features.testing import BankData

ACTIVITY_REFS = [f"customer_activity:{column}" for column in CUSTOMER_ACTIVITY_COLUMNS]


def _activity_row(customer_id: str, at: datetime, clicks_7d: int) -> dict[str, object]:
    row: dict[str, object] = dict.fromkeys(CUSTOMER_ACTIVITY_COLUMNS, 0)
    row.update(
        customer_id=customer_id,
        event_timestamp=at,
        clicks_7d=clicks_7d,
        last_moment_type="salary_credited",
        last_moment_ts=int(at.timestamp()),
    )
    return row


def test_pushed_activity_is_visible_online_within_a_second(online_store: FeatureStore) -> None:
    # An id the generator never issues: the test owns this entity in the shared store.
    customer_id = "C999999901"
    pushed_at = datetime.now(UTC).replace(microsecond=0)
    online_features(online_store, [customer_id], ACTIVITY_REFS)  # warm the registry cache

    started = time.perf_counter()
    assert push_customer_activity(online_store, [_activity_row(customer_id, pushed_at, clicks_7d=42)]) == 1
    features = online_features(online_store, [customer_id], ACTIVITY_REFS)[customer_id]
    elapsed = time.perf_counter() - started

    assert features["customer_activity:clicks_7d"].value == 42
    assert features["customer_activity:last_moment_type"].value == "salary_credited"
    assert features["customer_activity:clicks_7d"].event_timestamp == pushed_at
    assert elapsed < 1.0, f"push to visible took {elapsed:.3f}s"
    fresh, missing = check_freshness(features, ttl_by_view(online_store), pushed_at + timedelta(minutes=1))
    assert missing == []
    assert fresh["customer_activity:clicks_7d"] == 42


def test_push_rejects_naive_timestamps(sqlite_store: FeatureStore) -> None:
    row = _activity_row("C999999902", datetime(2025, 6, 30, 12), clicks_7d=1)
    with pytest.raises(ValueError, match="timezone-aware"):
        push_customer_activity(sqlite_store, [row])


def test_stale_features_are_missing_and_fresh_ones_kept(online_store: FeatureStore, bank: BankData) -> None:
    refs = feature_refs(online_store, ["customer_profile", "customer_activity"])
    # a customer with both a profile and an activity snapshot at as-of
    profiles = pd.read_parquet(bank.features / "customer_profile.parquet", columns=["customer_id"])
    activity = pd.read_parquet(bank.features / "customer_activity.parquet", columns=["customer_id"])
    customer_id = sorted(set(profiles["customer_id"]) & set(activity["customer_id"]))[0]
    values = online_features(online_store, [customer_id], refs)[customer_id]
    ttls = ttl_by_view(online_store)
    assert ttls["customer_activity"] == timedelta(days=14)
    assert ttls["customer_profile"] == timedelta(days=62)

    fresh, missing = check_freshness(values, ttls, bank.as_of)
    assert missing == [], "everything materialised up to as-of is fresh at as-of"

    # 15 days later the weekly activity snapshot is past its 14-day TTL; Feast still
    # returns it online, the freshness check must not.
    later = bank.as_of + timedelta(days=15)
    fresh, missing = check_freshness(values, ttls, later)
    assert missing == sorted(ACTIVITY_REFS)
    assert "customer_profile:aum" in fresh
    assert not any(ref.startswith("customer_activity:") for ref in fresh)
