"""implicit's Bayesian personalised ranking (pairwise: a bought/clicked product above a random one)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray

from recommender.ml.data import TrainingData
from recommender.ml.models.base import F32, Arrays, Recommender


class BPRRecommender(Recommender):
    """BPR-MF over pairs with positive confidence at least ``min_weight``.

    Impressions alone are weak positives for a pairwise loss, so by default only pairs with a
    click or a purchase count. Stochastic updates run in parallel (hogwild) when
    ``num_threads > 1``; pass 1 for bit-for-bit reproducible training.
    """

    model_type = "bpr"

    def __init__(
        self,
        factors: int = 32,
        learning_rate: float = 0.05,
        regularization: float = 0.01,
        iterations: int = 60,
        min_weight: float = 3.0,
        random_state: int = 7,
        num_threads: int = 1,
    ) -> None:
        super().__init__()
        self.factors = factors
        self.learning_rate = learning_rate
        self.regularization = regularization
        self.iterations = iterations
        self.min_weight = min_weight
        self.random_state = random_state
        self.num_threads = num_threads
        self.user_factors = np.zeros((0, factors + 1), dtype=np.float32)
        self.item_factors = np.zeros((0, factors + 1), dtype=np.float32)

    @property
    def hyper_parameters(self) -> dict[str, Any]:
        return {
            "factors": self.factors,
            "learning_rate": self.learning_rate,
            "regularization": self.regularization,
            "iterations": self.iterations,
            "min_weight": self.min_weight,
            "random_state": self.random_state,
        }

    def _fit(self, data: TrainingData) -> None:
        from implicit.cpu.bpr import BayesianPersonalizedRanking

        positives = data.interactions.copy()
        positives.data = (positives.data >= self.min_weight).astype(np.float32)
        positives.eliminate_zeros()
        model = BayesianPersonalizedRanking(
            factors=self.factors,
            learning_rate=self.learning_rate,
            regularization=self.regularization,
            iterations=self.iterations,
            random_state=self.random_state,
            num_threads=self.num_threads,
        )
        model.fit(positives.tocsr(), show_progress=False)
        self.user_factors = np.ascontiguousarray(model.user_factors, dtype=np.float32)
        self.item_factors = np.ascontiguousarray(model.item_factors, dtype=np.float32)

    def _score_warm(self, rows: NDArray[np.int64]) -> F32:
        return np.asarray(self.user_factors[rows] @ self.item_factors.T, dtype=np.float32)

    def _arrays(self) -> Arrays:
        return {"user_factors": self.user_factors, "item_factors": self.item_factors}

    def _restore(self, arrays: Mapping[str, NDArray[Any]], state: Mapping[str, Any]) -> None:
        self.user_factors = np.asarray(arrays["user_factors"], dtype=np.float32)
        self.item_factors = np.asarray(arrays["item_factors"], dtype=np.float32)
