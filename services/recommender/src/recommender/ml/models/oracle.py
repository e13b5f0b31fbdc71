"""The evaluation ceiling: scores are the planted purchase propensity of the synthetic bank."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from recommender.ml.data import TrainingData
from recommender.ml.idmap import IdMap
from recommender.ml.models.base import F32, Recommender


class OracleRecommender(Recommender):
    """Knows ``truth/preferences.npz``; never registered or served, only evaluated."""

    model_type = "oracle"

    def __init__(self, affinity: NDArray[np.float32], customers: IdMap, products: IdMap) -> None:
        super().__init__()
        self._affinity = affinity
        self._oracle_customers = customers
        self._oracle_products = products

    def _fit(self, data: TrainingData) -> None:
        # Re-order the oracle's columns to the training product axis once.
        self._columns = self._oracle_products.indices(list(data.products.ids))
        if (self._columns < 0).any():
            raise ValueError("the oracle does not cover every product of the catalogue")

    def score(
        self, customer_ids: Sequence[str], customer_tokens: Sequence[Sequence[str]] | None = None
    ) -> F32:
        """The planted affinity of each customer (warm or cold alike: the oracle knows everyone)."""
        rows = self._oracle_customers.indices(customer_ids)
        if (rows < 0).any():
            raise KeyError("the oracle does not know some of these customers")
        return np.asarray(self._affinity[rows][:, self._columns], dtype=np.float32)

    def _score_warm(self, rows: NDArray[np.int64]) -> F32:
        return self.score([self.customers.ids[i] for i in rows])
