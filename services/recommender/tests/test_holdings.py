"""Holdings as training data: cut-off respected, acquired once, seen, and the baselines' counts."""

from __future__ import annotations

import numpy as np
import pandas as pd
from recommender.ml.data import Bank, InteractionWeights, load_bank, training_data, with_holdings
from recommender.ml.idmap import IdMap
from recommender.ml.models import ALSRecommender, PopularityRecommender, SegmentPopularityRecommender
from recommender.ml.split import time_split

PRODUCTS = IdMap(["A", "B", "C", "D"])


def _ts(day: str) -> pd.Timestamp:
    return pd.Timestamp(day, tz="UTC")


def _tiny() -> Bank:
    log = pd.DataFrame(
        [
            ("c1", "A", "impression", _ts("2025-05-01")),
            ("c1", "A", "purchase", _ts("2025-05-02")),
            ("c2", "B", "purchase", _ts("2025-05-03")),
            ("c3", "C", "impression", _ts("2025-05-04")),
            ("c1", "C", "purchase", _ts("2025-06-20")),  # test period
            ("c2", "D", "impression", _ts("2025-06-25")),
        ],
        columns=["customer_id", "product_id", "interaction_type", "event_timestamp"],
    )
    positions = pd.DataFrame(
        [
            ("c1", "A", _ts("2025-05-02")),  # opened by the logged purchase: not repeated
            ("c1", "B", _ts("2019-03-01")),  # an old position: a holding row
            ("c2", "B", _ts("2018-01-01")),  # held, and topped up by the purchase of 2025-05-03
            ("c4", "D", _ts("2020-07-07")),  # a customer the log never saw
            ("c1", "C", _ts("2025-06-20")),  # opened by the test-period purchase
            ("c3", "D", _ts("2025-06-18")),  # opened after the cut-off: must not reach training
        ],
        columns=["customer_id", "product_id", "opened_at"],
    )
    customers = pd.DataFrame(
        {
            "customer_id": ["c1", "c2", "c3", "c4"],
            "seg_payroll": [True, True, False, True],
            "seg_wealth": [False, False, True, False],
        }
    )
    return Bank(
        name="tiny",
        interactions=with_holdings(log, positions),
        customers=customers,
        products=pd.DataFrame({"product_id": list(PRODUCTS.ids)}),
    )


def test_holdings_before_the_cutoff_train_and_later_ones_never_leak() -> None:
    bank = _tiny()
    holding = bank.interactions[bank.interactions["interaction_type"] == "holding"]
    # The two positions the log's purchases opened are not repeated as holdings.
    assert set(zip(holding["customer_id"], holding["product_id"], strict=True)) == {
        ("c1", "B"),
        ("c2", "B"),
        ("c4", "D"),
        ("c3", "D"),
    }
    split = time_split(bank.interactions, test_days=10)  # cut-off 2025-06-15
    train_holdings = split.train[split.train["interaction_type"] == "holding"]
    train_pairs = set(zip(train_holdings["customer_id"], train_holdings["product_id"], strict=True))
    assert ("c3", "D") not in train_pairs
    assert list(split.test["product_id"]) == ["C"]  # the test is purchases only
    as_purchase = InteractionWeights(holding=30.0)
    data = training_data(bank, products=PRODUCTS, weights=as_purchase, interactions=split.train)
    assert "c4" in data.customers  # holdings make a customer warm
    c1, c2, c3, c4 = (data.customers.index(c) for c in ("c1", "c2", "c3", "c4"))
    matrix = data.interactions.toarray()
    # c1: A impression + purchase; B held (weight of a purchase). c2: B purchase and holding count once.
    np.testing.assert_allclose(matrix[c1], [30.5, 30.0, 0.0, 0.0])
    np.testing.assert_allclose(matrix[c2], [0.0, 30.0, 0.0, 0.0])
    np.testing.assert_allclose(matrix[c3], [0.0, 0.0, 0.5, 0.0])  # no D: opened after the cut-off
    np.testing.assert_allclose(matrix[c4], [0.0, 0.0, 0.0, 30.0])
    assert data.seen.toarray()[c1].tolist() == [1, 1, 0, 0]
    assert data.purchased.toarray()[c1].tolist() == [1, 0, 0, 0]
    assert data.held.toarray()[c1].tolist() == [0, 1, 0, 0]
    assert data.held.toarray()[c2].tolist() == [0, 0, 0, 0]  # purchased: not "held only"
    # The default weight 0 keeps holdings as seen items only.
    seen_only = training_data(bank, products=PRODUCTS, weights=InteractionWeights(), interactions=split.train)
    np.testing.assert_allclose(seen_only.interactions.toarray()[c1], [30.5, 0.0, 0.0, 0.0])
    assert seen_only.seen.toarray()[c1].tolist() == [1, 1, 0, 0]


def test_held_products_are_never_recommended_and_baselines_count_purchases() -> None:
    bank = _tiny()
    split = time_split(bank.interactions, test_days=10)
    data = training_data(
        bank, products=PRODUCTS, weights=InteractionWeights(holding=30.0), interactions=split.train
    )
    als = ALSRecommender(factors=2, iterations=2, num_threads=1).fit(data)
    assert not {p for p, _ in als.recommend(["c1"], k=4)[0]} & {"A", "B"}
    assert not {p for p, _ in als.recommend(["c4"], k=4)[0]} & {"D"}
    # Purchases only by default (A and B once each); holding_share 1 adds the held-only B and D.
    np.testing.assert_allclose(PopularityRecommender().fit(data).popularity, [0.5, 0.5, 0.0, 0.0])
    np.testing.assert_allclose(
        PopularityRecommender(holding_share=1.0).fit(data).popularity, [0.25, 0.5, 0.0, 0.25]
    )
    segment = SegmentPopularityRecommender().fit(data)
    payroll = segment.segments.index("segment=payroll")
    np.testing.assert_allclose(segment.rates[payroll], [1 / 3, 1 / 3, 0.0, 0.0], rtol=1e-6)


def test_generated_bank_trains_on_its_holdings(bank: Bank, bank_dir: object) -> None:
    from pathlib import Path

    assert isinstance(bank_dir, Path)
    types = set(bank.interactions["interaction_type"].unique())
    assert types == {"impression", "click", "purchase", "holding"}
    logged = load_bank(bank_dir, holdings=False)
    assert "holding" not in set(logged.interactions["interaction_type"].unique())
    positions = pd.read_parquet(bank_dir / "holdings.parquet")
    holdings = int((bank.interactions["interaction_type"] == "holding").sum())
    purchases = int((bank.interactions["interaction_type"] == "purchase").sum())
    # Every position is either a holding row or was opened by a logged purchase.
    assert len(positions) - purchases <= holdings < len(positions)
