"""Training: deterministic for a seed, warm/cold handled, CF beats popularity on planted data."""

from __future__ import annotations

import numpy as np
import pytest
from recommender.ml.data import Bank, TrainingData
from recommender.ml.evaluate import run_split
from recommender.ml.idmap import IdMap
from recommender.ml.models import (
    ALSRecommender,
    BPRRecommender,
    LightFMHybrid,
    PopularityRecommender,
    Recommender,
    SegmentPopularityRecommender,
)
from recommender.ml.split import leave_last_out, time_split

FACTORIES = {
    "als": lambda: ALSRecommender(factors=16, iterations=8, random_state=3, num_threads=2),
    "bpr": lambda: BPRRecommender(factors=16, iterations=20, random_state=3, num_threads=1),
    "lightfm": lambda: LightFMHybrid(no_components=16, epochs=3, random_state=3, num_threads=1),
    "segment_popularity": SegmentPopularityRecommender,
}


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_training_is_deterministic_for_a_seed(name: str, data: TrainingData) -> None:
    ids = list(data.customers.ids[:200])
    first = FACTORIES[name]().fit(data).score(ids)
    second = FACTORIES[name]().fit(data).score(ids)
    np.testing.assert_array_equal(first, second)
    assert first.shape == (200, len(data.products))


def test_cold_customers_are_scored_by_name(data: TrainingData) -> None:
    tokens = [
        ["segment=wealth", "age_band=56-65", "risk=4"],
        ["segment=long_tail", "age_band=18-25", "risk=none"],
    ]
    lightfm = LightFMHybrid(no_components=8, epochs=2, num_threads=1).fit(data)
    cold = lightfm.score(["NEW-1", "NEW-2"], tokens)
    assert not np.allclose(cold[0], cold[1])  # features matter for cold customers
    als = ALSRecommender(factors=8, iterations=3, num_threads=1).fit(data)
    np.testing.assert_allclose(als.score(["NEW-1"])[0], als.popularity)  # popularity fallback
    # A warm customer's list never repeats a product they bought.
    warm = next(c for c in data.customers.ids if data.seen[data.customers.index(c)].nnz)
    bought = {data.products.ids[j] for j in data.seen[data.customers.index(warm)].indices}
    assert not bought & {p for p, _ in als.recommend([warm], k=10)[0]}


def test_lightfm_scores_new_products_from_features(data: TrainingData) -> None:
    model = LightFMHybrid(no_components=8, epochs=2, num_threads=1).fit(data)
    scores = model.score_new_products(
        list(data.customers.ids[:5]), [["type=fund", "risk=R3"], ["type=deposit"]]
    )
    assert scores.shape == (5, 2)
    assert np.isfinite(scores).all()


def _ndcg(results: list, name: str) -> float:  # type: ignore[type-arg]
    return next(r.all.ndcg for r in results if r.model == name)


def test_cf_beats_popularity_on_planted_data(bank: Bank, catalogue: IdMap) -> None:
    split = time_split(bank.interactions, test_days=45)
    factories: dict[str, type[Recommender] | object] = {
        "popularity": PopularityRecommender,
        "als": lambda: ALSRecommender(
            factors=16, regularization=0.1, alpha=5.0, iterations=10, num_threads=2
        ),
        "lightfm": lambda: LightFMHybrid(no_components=16, epochs=10, num_threads=2),
    }
    result = run_split(bank, split, catalogue, factories, _weights(), 10, log=lambda _m: None)  # type: ignore[arg-type]
    ndcg = {r.model: r.all.ndcg for r in result.results}
    assert ndcg["als"] > 1.05 * ndcg["popularity"], ndcg
    assert ndcg["lightfm"] > 1.10 * ndcg["popularity"], ndcg
    assert ndcg["oracle"] > ndcg["popularity"], ndcg


def test_leave_last_out_hides_the_held_out_pair(bank: Bank) -> None:
    split = leave_last_out(bank.interactions)
    held = set(zip(split.test["customer_id"], split.test["product_id"], strict=True))
    train_pairs = set(zip(split.train["customer_id"], split.train["product_id"], strict=True))
    assert held
    assert not held & train_pairs


def _weights():  # type: ignore[no-untyped-def]
    from recommender.ml.data import InteractionWeights

    return InteractionWeights()


def _exposure_data() -> TrainingData:
    """600 customers, 4 products: everyone was shown P0 six times and never clicked it; half bought
    P1 (after a click), the other half P2; nobody touched P3."""
    import pandas as pd
    from recommender.ml.data import InteractionWeights, engaged_matrix, interaction_matrix, purchase_matrix

    rows = []
    for i in range(600):
        cid = f"C{i:04d}"
        rows += [(cid, "P0", "impression")] * 6
        bought = "P1" if i % 2 else "P2"
        rows += [(cid, bought, "impression"), (cid, bought, "click"), (cid, bought, "purchase")]
    frame = pd.DataFrame(rows, columns=["customer_id", "product_id", "interaction_type"])
    customers = IdMap.from_values(frame["customer_id"].unique().tolist())
    products = IdMap(["P0", "P1", "P2", "P3"])
    weights = InteractionWeights()
    seen = purchase_matrix(frame, customers, products)
    return TrainingData(
        customers=customers,
        products=products,
        interactions=interaction_matrix(frame, customers, products, weights),
        seen=seen,
        purchased=seen,
        held=seen * 0,
        customer_tokens=[["segment=payroll"] for _ in range(len(customers))],
        product_tokens=[[f"type=t{j}"] for j in range(4)],
        weights=weights,
        window=("", ""),
        engaged=engaged_matrix(frame, customers, products, weights),
    )


def test_engaged_pairs_are_clicks_purchases_and_weighted_holdings() -> None:
    import pandas as pd
    from recommender.ml.data import InteractionWeights, engaged_matrix

    frame = pd.DataFrame(
        [
            ("C1", "P0", "impression"),
            ("C1", "P0", "impression"),
            ("C1", "P1", "click"),
            ("C2", "P2", "purchase"),
            ("C2", "P0", "holding"),
        ],
        columns=["customer_id", "product_id", "interaction_type"],
    )
    customers, products = IdMap(["C1", "C2"]), IdMap(["P0", "P1", "P2"])
    seen_only = engaged_matrix(frame, customers, products, InteractionWeights()).toarray()
    np.testing.assert_array_equal(seen_only, [[0, 1, 0], [0, 0, 1]])
    as_positive = engaged_matrix(frame, customers, products, InteractionWeights(holding=30.0)).toarray()
    np.testing.assert_array_equal(as_positive, [[0, 1, 0], [1, 0, 1]])


def test_lightfm_learns_interest_not_exposure() -> None:
    data = _exposure_data()
    ids = list(data.customers.ids)

    def top1(positives: str) -> np.ndarray:  # type: ignore[type-arg]
        model = LightFMHybrid(no_components=8, epochs=15, positives=positives, random_state=3, num_threads=1)
        scores = model.fit(data).score(ids)
        scores[data.seen.toarray() > 0] = -np.inf  # what is left once the bought product is removed
        return np.asarray(scores.argmax(axis=1))

    # Interest only: the product everyone was shown and nobody wanted is never first; the other
    # half's purchase is (customers alike in every token share their taste).
    assert (top1("engaged") != 0).all()
    # Every pair a positive: the six unclicked impressions make P0 the first choice of most.
    assert (top1("all") == 0).mean() > 0.5
    with pytest.raises(ValueError, match="positives"):
        LightFMHybrid(positives="clicks")
    restored = LightFMHybrid.from_hyper_parameters(LightFMHybrid(positives="all").hyper_parameters)
    assert isinstance(restored, LightFMHybrid)
    assert restored.positives == "all"
