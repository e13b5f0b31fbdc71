"""The one metrics module: every report (eval, tune, tests) computes its numbers here.

Inputs are a ``[customers × k]`` matrix of recommended product indices (best first, ``-1`` for an
empty slot) and a ``[customers × products]`` boolean matrix of relevant (held-out) products.
Ranking metrics average over customers with at least one relevant product; catalogue coverage
and popularity measures are over every customer given a list.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import NDArray

Bool = NDArray[np.bool_]
I64 = NDArray[np.int64]


@dataclass(frozen=True)
class RankingMetrics:
    """Offline quality of one model on one set of customers at one cut-off ``k``."""

    k: int
    customers: int
    precision: float
    recall: float
    map: float
    ndcg: float
    hit_rate: float
    coverage: float
    novelty: float
    popularity_bias: float

    def as_dict(self) -> dict[str, float | int]:
        """Plain dict for JSON and tables."""
        return asdict(self)


def top_k(scores: NDArray[np.floating], k: int, exclude: Bool | None = None) -> I64:
    """Indices of the ``k`` highest scores per row, best first; excluded cells never appear.

    Ties break by product index so results are deterministic. Rows with fewer than ``k`` allowed
    products are padded with ``-1``.
    """
    values = np.asarray(scores, dtype=np.float64).copy()
    if exclude is not None:
        values[exclude] = -np.inf
    k = min(k, values.shape[1])
    order = np.argsort(-values, axis=1, kind="stable")[:, :k]
    allowed = np.isfinite(np.take_along_axis(values, order, axis=1))
    return np.where(allowed, order, -1).astype(np.int64)


def ranking_metrics(
    recommended: I64, relevant: Bool, k: int, item_popularity: NDArray[np.floating] | None = None
) -> RankingMetrics:
    """precision@k, recall@k, MAP@k, NDCG@k, hit rate, coverage, novelty and popularity bias.

    - MAP@k: mean over customers of ``sum_i P@i · rel_i / min(|relevant|, k)``.
    - NDCG@k: binary gains, ``1/log2(rank+1)`` discount, ideal = all relevant first.
    - coverage: share of the catalogue recommended to at least one customer.
    - novelty: mean self-information ``-log2 p(i)`` of recommended products, ``p`` = share of
      customers who interacted with the product in training (higher = less obvious).
    - popularity_bias: mean ``p(i)`` of the recommended products (average recommendation popularity).
    """
    recommended = np.asarray(recommended, dtype=np.int64)[:, :k]
    n_items = relevant.shape[1]
    valid = recommended >= 0
    safe = np.where(valid, recommended, 0)
    hits = np.take_along_axis(relevant, safe, axis=1) & valid
    n_relevant = relevant.sum(axis=1)
    users = n_relevant > 0
    count = int(users.sum())

    coverage = float(np.unique(recommended[valid]).size / n_items) if n_items else 0.0
    novelty = popularity_bias = 0.0
    if item_popularity is not None and valid.any():
        p = np.asarray(item_popularity, dtype=np.float64)[recommended[valid]]
        novelty = float(np.mean(-np.log2(np.clip(p, 1e-12, None))))
        popularity_bias = float(np.mean(p))
    if count == 0:
        return RankingMetrics(k, 0, 0.0, 0.0, 0.0, 0.0, 0.0, coverage, novelty, popularity_bias)

    h = hits[users].astype(np.float64)
    n_rel = n_relevant[users].astype(np.float64)
    kk = h.shape[1]
    ranks = np.arange(1, kk + 1, dtype=np.float64)
    n_hits = h.sum(axis=1)
    precision = n_hits / k
    recall = n_hits / n_rel
    precision_at_i = np.cumsum(h, axis=1) / ranks
    average_precision = (precision_at_i * h).sum(axis=1) / np.minimum(n_rel, k)
    discount = 1.0 / np.log2(ranks + 1.0)
    dcg = (h * discount).sum(axis=1)
    ideal_hits = np.minimum(n_rel, kk).astype(np.int64)
    idcg = np.cumsum(discount)[ideal_hits - 1]
    ndcg = dcg / idcg
    return RankingMetrics(
        k=k,
        customers=count,
        precision=float(precision.mean()),
        recall=float(recall.mean()),
        map=float(average_precision.mean()),
        ndcg=float(ndcg.mean()),
        hit_rate=float((n_hits > 0).mean()),
        coverage=coverage,
        novelty=novelty,
        popularity_bias=popularity_bias,
    )


def average_precision(recommended: I64, relevant: Bool, k: int) -> NDArray[np.float64]:
    """AP@k of each customer: ``sum_i P@i · rel_i / min(|relevant|, k)``; 0 with nothing relevant.

    The Kaggle Santander Product Recommendation definition (and :func:`ranking_metrics`' MAP term).
    """
    recommended = np.asarray(recommended, dtype=np.int64)[:, :k]
    valid = recommended >= 0
    hits = np.take_along_axis(relevant, np.where(valid, recommended, 0), axis=1) & valid
    ranks = np.arange(1, hits.shape[1] + 1, dtype=np.float64)
    precision_at_i = np.cumsum(hits, axis=1) / ranks
    n_relevant = relevant.sum(axis=1).astype(np.float64)
    total = (precision_at_i * hits).sum(axis=1)
    ap: NDArray[np.float64] = np.divide(
        total, np.minimum(n_relevant, k), out=np.zeros_like(total), where=n_relevant > 0
    )
    return ap


@dataclass(frozen=True)
class NextProductMetrics:
    """The "next product added" task at cut-off ``k`` (Santander's MAP@7 convention).

    ``map``: mean AP@k over *every* customer of the test month (``customers``), a customer who
    added nothing scoring 0, as the competition scored; ``map_adders``: the same over the
    ``adders`` only (= ``map × customers / adders``); ``ndcg`` and ``recall`` over adders.
    """

    k: int
    customers: int
    adders: int
    map: float
    map_adders: float
    ndcg: float
    recall: float

    def as_dict(self) -> dict[str, float | int]:
        """Plain dict for JSON and tables."""
        return asdict(self)


def next_product_metrics(
    recommended: I64, relevant: Bool, k: int, *, customers: int | None = None
) -> NextProductMetrics:
    """Metrics of lists for the test month's customers.

    Rows of ``recommended``/``relevant`` may be all test customers or only those who added
    something (the others score 0 whatever their list); ``customers`` is the whole test population
    (default: the number of rows).
    """
    population = recommended.shape[0] if customers is None else customers
    ap = average_precision(recommended, relevant, k)
    adders = relevant.any(axis=1)
    count = int(adders.sum())
    if population < count:
        raise ValueError("customers must count every row with a relevant product")
    ranked = ranking_metrics(recommended[adders], relevant[adders], k)
    return NextProductMetrics(
        k=k,
        customers=population,
        adders=count,
        map=float(ap.sum() / population) if population else 0.0,
        map_adders=float(ap[adders].mean()) if count else 0.0,
        ndcg=ranked.ndcg,
        recall=ranked.recall,
    )
