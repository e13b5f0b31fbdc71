"""The metrics module against examples computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from recommender.ml.metrics import ranking_metrics, top_k


def test_metrics_match_hand_computed_example() -> None:
    # Customer 0: relevant {1, 3}; list [1, 2, 3] -> hits at ranks 1 and 3.
    # Customer 1: relevant {0};    list [2, 1, 0] -> hit at rank 3.
    # Customer 2: nothing relevant -> not averaged in ranking metrics.
    relevant = np.zeros((3, 5), dtype=bool)
    relevant[0, [1, 3]] = True
    relevant[1, 0] = True
    recommended = np.array([[1, 2, 3], [2, 1, 0], [4, 1, 2]])
    m = ranking_metrics(recommended, relevant, k=3, item_popularity=np.array([0.5, 0.25, 0.125, 0.5, 0.0625]))

    assert m.customers == 2
    assert m.precision == pytest.approx((2 / 3 + 1 / 3) / 2)
    assert m.recall == pytest.approx((1.0 + 1.0) / 2)
    # AP0 = (1/1 + 2/3) / 2, AP1 = (1/3) / 1
    assert m.map == pytest.approx(((1 + 2 / 3) / 2 + 1 / 3) / 2)
    d = [1 / math.log2(r + 1) for r in (1, 2, 3)]
    ndcg0 = (d[0] + d[2]) / (d[0] + d[1])
    ndcg1 = d[2] / d[0]
    assert m.ndcg == pytest.approx((ndcg0 + ndcg1) / 2)
    assert m.hit_rate == pytest.approx(1.0)
    assert m.coverage == pytest.approx(5 / 5)
    # popularity of the 9 recommended items: 1,2,3 | 2,1,0 | 4,1,2
    pops = [0.25, 0.125, 0.5, 0.125, 0.25, 0.5, 0.0625, 0.25, 0.125]
    assert m.popularity_bias == pytest.approx(sum(pops) / 9)
    assert m.novelty == pytest.approx(sum(-math.log2(p) for p in pops) / 9)


def test_perfect_and_empty_lists() -> None:
    relevant = np.array([[True, False, False], [False, False, True]])
    perfect = ranking_metrics(np.array([[0, 1], [2, 0]]), relevant, k=2)
    assert (perfect.ndcg, perfect.map, perfect.recall, perfect.hit_rate) == (1.0, 1.0, 1.0, 1.0)
    assert perfect.precision == pytest.approx(0.5)
    empty = ranking_metrics(np.full((2, 2), -1), relevant, k=2)
    assert (empty.ndcg, empty.hit_rate, empty.coverage) == (0.0, 0.0, 0.0)


def test_top_k_excludes_seen_and_breaks_ties_by_index() -> None:
    scores = np.array([[0.5, 0.9, 0.9, 0.1]])
    exclude = np.array([[False, True, False, False]])
    assert top_k(scores, 3, exclude).tolist() == [[2, 0, 3]]
    assert top_k(scores, 4, np.array([[True, True, True, False]])).tolist() == [[3, -1, -1, -1]]
