"""The direct online reader gives the SDK's answer, value for value, on every online store we run."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest
from feast import FeatureStore
from qianmian_features import (
    CUSTOMER_ACTIVITY_COLUMNS,
    feature_refs,
    online_features,
    online_product_features,
    push_customer_activity,
)
from qianmian_features.online import OnlineReader, UnsupportedFeaturesError
from qianmian_features.testing import BankData

CUSTOMER_VIEWS = ("customer_profile", "customer_activity")


def _customers(bank: BankData, n: int) -> list[str]:
    ids = pd.read_parquet(bank.out / "customers.parquet")["customer_id"].astype(str).tolist()
    return ids[:n]


def test_reader_equals_the_sdk_for_every_customer_feature(online_store: FeatureStore, bank: BankData) -> None:
    refs = feature_refs(online_store, CUSTOMER_VIEWS)
    # known customers, one twice, and an id the store has never seen
    ids = [*_customers(bank, 40), "C000000003", "C999999999"]
    reader = OnlineReader(online_store, "customer_id", refs)

    direct = reader.read(ids)
    sdk = online_features(online_store, ids, refs)

    assert direct == sdk
    assert set(direct["C999999999"]) == set(refs)
    assert all(not v.present for v in direct["C999999999"].values())
    present = [v for values in direct.values() for v in values.values() if v.present]
    assert len(present) > 30 * len(refs)  # the comparison is over real rows, not empty ones


def test_reader_reads_product_views(online_store: FeatureStore, bank: BankData) -> None:
    products = pd.read_parquet(bank.out / "products.parquet")["product_id"].astype(str).tolist()[:12]
    product_refs = feature_refs(online_store, ["product_stats"])
    reader = OnlineReader(online_store, "product_id", product_refs)
    read = reader.read(products)
    assert read == online_product_features(online_store, products, product_refs)
    assert any(v.present for values in read.values() for v in values.values())


def test_reader_sees_a_push_made_after_it_was_created(online_store: FeatureStore) -> None:
    customer_id = "C999999911"  # an id the generator never issues: this test owns it
    refs = [f"customer_activity:{c}" for c in CUSTOMER_ACTIVITY_COLUMNS]
    reader = OnlineReader(online_store, "customer_id", refs)
    assert not reader.read([customer_id])[customer_id]["customer_activity:clicks_7d"].present

    at = datetime.now(UTC).replace(microsecond=0)
    row: dict[str, object] = dict.fromkeys(CUSTOMER_ACTIVITY_COLUMNS, 0)
    row.update(customer_id=customer_id, event_timestamp=at, clicks_7d=7, last_moment_type="salary_credited")
    push_customer_activity(online_store, [row])

    values = reader.read([customer_id])[customer_id]
    assert values["customer_activity:clicks_7d"].value == 7
    assert values["customer_activity:clicks_7d"].event_timestamp == at
    assert values == online_features(online_store, [customer_id], refs)[customer_id]


def test_reader_refuses_what_it_cannot_read(sqlite_store: FeatureStore) -> None:
    with pytest.raises(ValueError, match="view:feature"):
        OnlineReader(sqlite_store, "customer_id", ["clicks_7d"])
    with pytest.raises(ValueError, match="no feature"):
        OnlineReader(sqlite_store, "customer_id", ["customer_activity:no_such_feature"])
    product_ref = feature_refs(sqlite_store, ["product_stats"])[0]
    with pytest.raises(UnsupportedFeaturesError, match="not keyed by customer_id"):
        OnlineReader(sqlite_store, "customer_id", [product_ref])
    # recommender_v1 serves customer and product views together: one key cannot read it
    with pytest.raises(UnsupportedFeaturesError, match="product_stats"):
        OnlineReader(sqlite_store, "customer_id", "recommender_v1")
    with pytest.raises(Exception, match="no_such_view"):
        OnlineReader(sqlite_store, "customer_id", ["no_such_view:x"])
