"""implicit's Bayesian personalised ranking (pairwise: a bought/clicked product above a random one)."""

from __future__ import annotations

from typing import Any

import numpy as np

from recommender.ml.data import TrainingData
from recommender.ml.models.factors import FactorRecommender


class BPRRecommender(FactorRecommender):
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
        super().__init__(
            factors=factors, width=factors + 1, random_state=random_state, num_threads=num_threads
        )
        self.learning_rate = learning_rate
        self.regularization = regularization
        self.iterations = iterations
        self.min_weight = min_weight

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
        self._keep_factors(model)
