"""Offline evaluation: every model on the same splits, one metrics module, one report.

Protocol (written into the report): products already bought or held in the training data are
removed from each customer's list; relevance = held-out purchases; customers are *cold* when they
have no row at all (interaction or holding) in the training data. Every model, baselines included,
is fitted on the same :class:`TrainingData`. The oracle scores with the planted affinity.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
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
#: The holding weight of the "holdings as positives" comparison: that of a purchase.
HOLDING_AS_PURCHASE = InteractionWeights().purchase
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
        # One thread: LightFM's Hogwild updates make a multi-threaded fit vary run to run (±0.003
        # NDCG@10 measured); the served model and the report should be reproducible for a seed.
        "lightfm": lambda: LightFMHybrid(
            no_components=32, learning_rate=0.05, epochs=20, random_state=seed, num_threads=1
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
    train_holdings: int
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
        train_interactions=int((split.train["interaction_type"] != "holding").sum()),
        train_holdings=int((split.train["interaction_type"] == "holding").sum()),
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
    """Run every model on every requested split (training data: ``bank.interactions``, holding rows
    included where the bank has them)."""
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


@dataclass
class Variant:
    """The time split run on other training data, for the report's holdings comparison."""

    label: str
    result: SplitResult


def without_holdings(bank: Bank) -> Bank:
    """``bank`` with its ``holding`` rows removed: behaviour = the interaction log only."""
    logged = bank.interactions[bank.interactions["interaction_type"] != "holding"]
    return replace(bank, interactions=logged)


def holdings_variants(
    bank: Bank,
    products: IdMap,
    *,
    threads: int,
    seed: int,
    k: int = 10,
    test_days: int = 30,
    weights: InteractionWeights | None = None,
    log: Callable[[str], None] = print,
) -> list[Variant]:
    """What holdings change, on the time split: every model on the interaction log alone and with the
    other holding weight (as a purchase if the report's is 0, else 0), and the popularity baselines
    counting a holding as a purchase (``holding_share`` 1)."""
    weights = weights or InteractionWeights()
    out: list[Variant] = []
    logged = without_holdings(bank)
    log("variant: interaction log only (no holdings)")
    split = time_split(logged.interactions, test_days=test_days)
    out.append(
        Variant(
            "interaction log only",
            run_split(logged, split, products, default_models(threads, seed), weights, k, log),
        )
    )
    split = time_split(bank.interactions, test_days=test_days)
    other = replace(weights, holding=HOLDING_AS_PURCHASE if weights.holding == 0 else 0.0)
    label = (
        f"log + holdings as positives (holding weight {other.holding:g})"
        if other.holding
        else "log + holdings as seen items only (holding weight 0)"
    )
    log(f"variant: {label}")
    out.append(Variant(label, run_split(bank, split, products, default_models(threads, seed), other, k, log)))
    log("variant: baselines counting holdings as purchases")
    counting: dict[str, ModelFactory] = {
        "popularity": lambda: PopularityRecommender(holding_share=1.0),
        "segment_popularity": lambda: SegmentPopularityRecommender(holding_share=1.0),
    }
    out.append(
        Variant(
            "log + holdings, baselines count holdings (holding_share 1)",
            run_split(bank, split, products, counting, weights, k, log),
        )
    )
    return out
