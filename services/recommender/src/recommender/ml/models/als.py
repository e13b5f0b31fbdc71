"""implicit's alternating least squares on the confidence-weighted interaction matrix."""

from __future__ import annotations

from typing import Any

import numpy as np

from recommender.ml.data import TrainingData
from recommender.ml.models.factors import FactorRecommender


class ALSRecommender(FactorRecommender):
    """Hu, Koren & Volinsky implicit-feedback ALS (``implicit.cpu.als``).

    Confidence is ``1 + alpha × weight`` where weight is the sum of the interaction weights of the
    pair (purchase ≫ click ≫ impression). Each customer's least-squares solve is independent, so the
    result is the same whatever ``num_threads``.
    """

    model_type = "als"

    def __init__(
        self,
        factors: int = 32,
        regularization: float = 0.1,
        alpha: float = 5.0,
        iterations: int = 15,
        random_state: int = 7,
        num_threads: int = 1,
    ) -> None:
        super().__init__(factors=factors, width=factors, random_state=random_state, num_threads=num_threads)
        self.regularization = regularization
        self.alpha = alpha
        self.iterations = iterations

    @property
    def hyper_parameters(self) -> dict[str, Any]:
        return {
            "factors": self.factors,
            "regularization": self.regularization,
            "alpha": self.alpha,
            "iterations": self.iterations,
            "random_state": self.random_state,
        }

    def _fit(self, data: TrainingData) -> None:
        from implicit.cpu.als import AlternatingLeastSquares

        model = AlternatingLeastSquares(
            factors=self.factors,
            regularization=self.regularization,
            alpha=self.alpha,
            iterations=self.iterations,
            random_state=self.random_state,
            num_threads=self.num_threads,
        )
        model.fit(data.interactions.astype(np.float32).tocsr(), show_progress=False)
        self._keep_factors(model)
