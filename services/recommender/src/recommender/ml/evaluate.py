"""Offline evaluation: every model on the same splits, one metrics module, one report.

Protocol (written into the report): products already bought in the training data are removed
from each customer's list; relevance = held-out purchases; customers are *cold* when they have no
interaction at all in the training data. The oracle scores with the planted affinity.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from recommender.ml.data import Bank, InteractionWeights, TrainingData, customer_feature_tokens, training_data
from recommender.ml.idmap import IdMap
from recommender.ml.metrics import RankingMetrics, ranking_metrics, top_k
from recommender.ml.models import (
    ALSRecommender,
    BPRRecommender,
    LightFMHybrid,
    OracleRecommender,
    PopularityRecommender,
    Recommender,
    SegmentPopularityRecommender,
)
from recommender.ml.split import Split, leave_last_out, time_split

AS_OF = date(2025, 6, 30)
CF_MODELS = ("als", "bpr", "lightfm")
ModelFactory = Callable[[], Recommender]


def default_models(threads: int, seed: int) -> dict[str, ModelFactory]:
    """The candidate models with the hyper-parameters the report uses (see ``recommender tune``)."""
    return {
        "popularity": PopularityRecommender,
        "segment_popularity": SegmentPopularityRecommender,
        "als": lambda: ALSRecommender(
            factors=32, regularization=0.1, alpha=5.0, iterations=15, random_state=seed, num_threads=threads
        ),
        "bpr": lambda: BPRRecommender(
            factors=32,
            learning_rate=0.05,
            regularization=0.01,
            iterations=60,
            random_state=seed,
            num_threads=threads,
        ),
        "lightfm": lambda: LightFMHybrid(
            no_components=32, learning_rate=0.05, epochs=10, random_state=seed, num_threads=threads
        ),
    }


@dataclass
class ModelResult:
    """Metrics of one model on one split: all, warm and cold customers, plus timings."""

    model: str
    split: str
    all: RankingMetrics
    warm: RankingMetrics
    cold: RankingMetrics
    fit_seconds: float
    score_seconds: float


@dataclass
class SplitResult:
    """One split's data sizes and every model's result."""

    split: Split
    train_customers: int
    train_interactions: int
    test_purchases: int
    test_customers: int
    cold_test_customers: int
    results: list[ModelResult] = field(default_factory=list)


def relevance(test: pd.DataFrame, customers: IdMap, products: IdMap) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """``[customers × products]`` True where the customer bought the product in the test period."""
    rows = customers.indices(test["customer_id"].tolist())
    cols = products.indices(test["product_id"].tolist())
    keep = (rows >= 0) & (cols >= 0)
    out = np.zeros((len(customers), len(products)), dtype=np.bool_)
    out[rows[keep], cols[keep]] = True
    return out


def evaluate_model(
    model: Recommender,
    data: TrainingData,
    universe: IdMap,
    tokens: Sequence[Sequence[str]],
    relevant: np.ndarray[Any, np.dtype[np.bool_]],
    k: int,
    chunk: int = 20_000,
) -> tuple[np.ndarray[Any, np.dtype[np.int64]], float]:
    """Top-k lists for every customer of ``universe`` with training purchases excluded; seconds taken."""
    started = time.perf_counter()
    rows = data.customers.indices(list(universe.ids))
    lists = np.empty((len(universe), min(k, len(data.products))), dtype=np.int64)
    ids = universe.ids
    for lo in range(0, len(universe), chunk):
        hi = min(lo + chunk, len(universe))
        scores = model.score(ids[lo:hi], tokens[lo:hi])
        seen = np.zeros(scores.shape, dtype=np.bool_)
        block = rows[lo:hi]
        warm = np.flatnonzero(block >= 0)
        if warm.size:
            seen[warm] = data.seen[block[warm]].toarray() > 0
        lists[lo:hi] = top_k(scores, k, exclude=seen)
    del relevant
    return lists, time.perf_counter() - started


def run_split(
    bank: Bank,
    split: Split,
    products: IdMap,
    factories: dict[str, ModelFactory],
    weights: InteractionWeights,
    k: int,
    log: Callable[[str], None] = print,
) -> SplitResult:
    """Train every model on ``split.train`` and measure it on ``split.test``."""
    data = training_data(bank, products=products, weights=weights, interactions=split.train)
    universe = IdMap.from_values(split.test["customer_id"].unique().tolist())
    customers = bank.customers.set_index("customer_id").reindex(list(universe.ids)).reset_index()
    tokens = customer_feature_tokens(customers)
    relevant = relevance(split.test, universe, products)
    cold = data.customers.indices(list(universe.ids)) < 0
    counts = np.asarray((data.interactions > 0).sum(axis=0)).ravel()
    item_popularity = counts / max(len(data.customers), 1)
    result = SplitResult(
        split=split,
        train_customers=len(data.customers),
        train_interactions=len(split.train),
        test_purchases=int(relevant.sum()),
        test_customers=len(universe),
        cold_test_customers=int(cold.sum()),
    )
    models: dict[str, ModelFactory] = dict(factories)
    if bank.affinity is not None and bank.oracle_customers is not None and bank.oracle_products is not None:
        affinity, oc, op = bank.affinity, bank.oracle_customers, bank.oracle_products
        models["oracle"] = lambda: OracleRecommender(affinity, oc, op)
    for name, factory in models.items():
        started = time.perf_counter()
        model = factory().fit(data)
        fit_seconds = time.perf_counter() - started
        lists, score_seconds = evaluate_model(model, data, universe, tokens, relevant, k)

        def measure(
            mask: np.ndarray[Any, np.dtype[np.bool_]], lists: np.ndarray[Any, np.dtype[np.int64]] = lists
        ) -> RankingMetrics:
            return ranking_metrics(lists[mask], relevant[mask], k, item_popularity)

        everyone = np.ones(len(universe), dtype=np.bool_)
        item = ModelResult(
            name, split.name, measure(everyone), measure(~cold), measure(cold), fit_seconds, score_seconds
        )
        result.results.append(item)
        log(
            f"  {split.name:>14} {name:>18}: NDCG@{k} {item.all.ndcg:.4f} (warm {item.warm.ndcg:.4f}, "
            f"cold {item.cold.ndcg:.4f}) fit {fit_seconds:.1f}s score {score_seconds:.1f}s"
        )
    return result


def evaluate(
    bank: Bank,
    products: IdMap,
    *,
    threads: int,
    seed: int,
    k: int = 10,
    test_days: int = 30,
    weights: InteractionWeights | None = None,
    splits: Sequence[str] = ("time", "leave_last_out"),
    log: Callable[[str], None] = print,
) -> list[SplitResult]:
    """Run every model on every requested split."""
    weights = weights or InteractionWeights()
    factories = default_models(threads, seed)
    out: list[SplitResult] = []
    for name in splits:
        split = (
            time_split(bank.interactions, test_days=test_days)
            if name == "time"
            else leave_last_out(bank.interactions)
        )
        log(f"split {split.name}: {split.description}")
        out.append(run_split(bank, split, products, factories, weights, k, log))
    return out
