"""What implicit's matrix-factorisation models (ALS, BPR) share: two factor matrices and a dot product."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray

from recommender.ml.models.base import F32, Arrays, Recommender


class FactorRecommender(Recommender):
    """Base of a model whose warm score is ``user_factors[customer] · item_factors[product]``.

    Subclasses train an implicit model in ``_fit`` and hand it to :meth:`_keep_factors`; saving,
    loading and warm scoring are the same for all of them.
    """

    def __init__(self, *, factors: int, width: int, random_state: int, num_threads: int) -> None:
        """``width`` is the stored factor count (implicit's BPR adds an item-bias column to ``factors``)."""
        super().__init__()
        self.factors = factors
        self.random_state = random_state
        self.num_threads = num_threads
        self.user_factors = np.zeros((0, width), dtype=np.float32)
        self.item_factors = np.zeros((0, width), dtype=np.float32)

    def _keep_factors(self, model: Any) -> None:
        """Take the factor matrices of a fitted implicit model as contiguous float32 arrays."""
        self.user_factors = np.ascontiguousarray(model.user_factors, dtype=np.float32)
        self.item_factors = np.ascontiguousarray(model.item_factors, dtype=np.float32)

    def _score_warm(self, rows: NDArray[np.int64]) -> F32:
        return np.asarray(self.user_factors[rows] @ self.item_factors.T, dtype=np.float32)

    def _arrays(self) -> Arrays:
        return {"user_factors": self.user_factors, "item_factors": self.item_factors}

    def _restore(self, arrays: Mapping[str, NDArray[Any]], state: Mapping[str, Any]) -> None:
        self.user_factors = np.asarray(arrays["user_factors"], dtype=np.float32)
        self.item_factors = np.asarray(arrays["item_factors"], dtype=np.float32)
