"""implicit's alternating least squares on the confidence-weighted interaction matrix."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray

from recommender.ml.data import TrainingData
from recommender.ml.models.base import F32, Arrays, Recommender


class ALSRecommender(Recommender):
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
        super().__init__()
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.iterations = iterations
        self.random_state = random_state
        self.num_threads = num_threads
        self.user_factors = np.zeros((0, factors), dtype=np.float32)
        self.item_factors = np.zeros((0, factors), dtype=np.float32)

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
        self.user_factors = np.ascontiguousarray(model.user_factors, dtype=np.float32)
        self.item_factors = np.ascontiguousarray(model.item_factors, dtype=np.float32)

    def _score_warm(self, rows: NDArray[np.int64]) -> F32:
        return np.asarray(self.user_factors[rows] @ self.item_factors.T, dtype=np.float32)

    def _arrays(self) -> Arrays:
        return {"user_factors": self.user_factors, "item_factors": self.item_factors}

    def _restore(self, arrays: Mapping[str, NDArray[Any]], state: Mapping[str, Any]) -> None:
        self.user_factors = np.asarray(arrays["user_factors"], dtype=np.float32)
        self.item_factors = np.asarray(arrays["item_factors"], dtype=np.float32)
