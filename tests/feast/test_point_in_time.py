"""Historical features never leak a value from after the requested time."""

from __future__ import annotations

import random
from datetime import timedelta

import pandas as pd
from feast import FeatureStore
from qianmian_features import historical_features
from qianmian_features.testing import BankData, is_missing, latest_rows, same_value

ACTIVITY_COLUMNS = ["clicks_30d", "impressions_30d", "moments_30d", "last_moment_ts"]


def test_historical_features_are_point_in_time_correct(sqlite_store: FeatureStore, bank: BankData) -> None:
    activity = pd.read_parquet(bank.features / "customer_activity.parquet")
    customers = random.Random(3).sample(sorted(activity["customer_id"].unique()), 50)
    snapshots = sorted(activity["event_timestamp"].unique())
    # Between two weekly snapshots, so that a newer row always exists after each request.
    requested = snapshots[-3] + timedelta(days=3)
    entity_df = pd.DataFrame({"customer_id": customers, "event_timestamp": [requested] * len(customers)})

    refs = [f"customer_activity:{c}" for c in ACTIVITY_COLUMNS]
    result = historical_features(sqlite_store, entity_df, refs).set_index("customer_id")
    result.columns = [column.removeprefix("customer_activity__") for column in result.columns]
    assert len(result) == len(customers)

    expected = latest_rows(activity, "customer_id", requested, pd.Timedelta(days=14))
    for customer_id in customers:
        for column in ACTIVITY_COLUMNS:
            got = result.at[customer_id, column]
            # a customer without a row in the TTL window before the request gets nothing
            want = expected.at[customer_id, column] if customer_id in expected.index else None
            assert same_value(got, want), f"{customer_id} {column}: got {got!r}, as of request {want!r}"
        stamp = result.at[customer_id, "last_moment_ts"]
        assert is_missing(stamp) or stamp <= requested.timestamp(), "a moment from the future leaked"

    # The check above only means something if later rows hold different values.
    newest = activity[activity["event_timestamp"] == snapshots[-1]].set_index("customer_id")
    changed = sum(
        not same_value(newest.at[c, "clicks_30d"], expected.at[c, "clicks_30d"])
        for c in customers
        if c in newest.index and c in expected.index
    )
    assert changed > 0, "no sampled customer's activity changed after the requested time"


def test_entities_without_a_row_in_the_window_are_kept_with_nulls(
    sqlite_store: FeatureStore, bank: BankData
) -> None:
    """Feast's file store drops such rows; a training set must not lose new customers."""
    activity = pd.read_parquet(bank.features / "customer_activity.parquet")
    first_seen = activity.groupby("customer_id")["event_timestamp"].min()
    newcomer = first_seen.idxmax()  # joined last: no activity row before its first snapshot
    known = first_seen.idxmin()
    requested = first_seen.max() - timedelta(days=1)
    entity_df = pd.DataFrame(
        {
            "customer_id": [newcomer, known, known, "C999999999"],
            "event_timestamp": [requested] * 4,
            "label": [1, 0, 1, 0],  # rows sharing key and time stay distinct requests
        }
    )

    result = historical_features(sqlite_store, entity_df, ["customer_activity:clicks_30d"])

    assert result["customer_id"].tolist() == entity_df["customer_id"].tolist()
    assert result["label"].tolist() == [1, 0, 1, 0]
    assert is_missing(result.loc[0, "customer_activity__clicks_30d"])
    assert not is_missing(result.loc[1, "customer_activity__clicks_30d"])
    assert is_missing(result.loc[3, "customer_activity__clicks_30d"])
