"""Baselines: global popularity and popularity within the customer's segments.

Both are fitted on the same :class:`TrainingData` as the CF models: products the customer bought or
holds are seen (never recommended), and a customer with holdings is warm. What they *count* is the
rate the test measures: purchases (the flow over the log window). ``holding_share`` adds the
products held without a logged purchase at that weight (1 = a holding counts as a purchase). The
default 0 is the stronger baseline on the synthetic bank (``reports/evaluation.md`` measures both):
positions opened years ago estimate the stock, not what is bought next month.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray

from recommender.ml.data import TrainingData
from recommender.ml.models.base import F32, Arrays, Recommender, acquisition_shares

SEGMENT_PREFIX = "segment="


class PopularityRecommender(Recommender):
    """Everyone gets the products bought most often in the training data (see the module doc)."""

    model_type = "popularity"

    def __init__(self, holding_share: float = 0.0) -> None:
        super().__init__()
        self.holding_share = holding_share

    @property
    def hyper_parameters(self) -> dict[str, Any]:
        return {"holding_share": self.holding_share}

    def _fit(self, data: TrainingData) -> None:
        self.popularity = acquisition_shares(data, self.holding_share)

    def _score_warm(self, rows: NDArray[np.int64]) -> F32:
        return np.tile(self.popularity, (rows.shape[0], 1))


class SegmentPopularityRecommender(Recommender):
    """Purchase rate of each product among members of each segment (客群), plus ``holding_share`` ×
    the rate of holding it without a purchase row (see the module doc).

    Segments overlap: a customer's score is the mean of the rates of the segments they belong to;
    a customer in no segment gets global popularity. Works the same for warm and cold customers
    because it only needs the segment tokens (``segment=payroll`` …).
    """

    model_type = "segment_popularity"

    def __init__(self, holding_share: float = 0.0) -> None:
        super().__init__()
        self.holding_share = holding_share
        self.segments: list[str] = []
        self.rates = np.zeros((0, 0), dtype=np.float32)
        self._member_rows = np.zeros((0, 0), dtype=np.float32)

    def _membership(self, tokens: list[list[str]]) -> F32:
        member = np.zeros((len(tokens), len(self.segments)), dtype=np.float32)
        index = {s: i for i, s in enumerate(self.segments)}
        for row, customer_tokens in enumerate(tokens):
            for token in customer_tokens:
                col = index.get(token)
                if col is not None:
                    member[row, col] = 1.0
        return member

    def _fit(self, data: TrainingData) -> None:
        self.segments = sorted({t for ts in data.customer_tokens for t in ts if t.startswith(SEGMENT_PREFIX)})
        member = self._membership(data.customer_tokens)
        acquired = data.purchased + self.holding_share * data.held if self.holding_share else data.purchased
        bought = np.asarray(acquired.T @ member, dtype=np.float32).T  # [segments × products]
        sizes = np.maximum(member.sum(axis=0), 1.0)[:, None]
        self.rates = (bought / sizes).astype(np.float32)
        self._member_rows = member

    def _scores(self, member: F32) -> F32:
        counts = member.sum(axis=1, keepdims=True)
        mean = np.divide(
            member @ self.rates,
            counts,
            out=np.zeros((member.shape[0], len(self.products)), dtype=np.float32),
            where=counts > 0,
        )
        # A tiny share of global popularity breaks ties and serves customers in no segment.
        out = np.where(counts > 0, mean, 0.0) + 1e-6 * self.popularity[None, :]
        return np.where(counts > 0, out, self.popularity[None, :]).astype(np.float32)

    def _score_warm(self, rows: NDArray[np.int64]) -> F32:
        return self._scores(self._member_rows[rows])

    def _score_cold(self, tokens: list[list[str]] | None, count: int) -> F32:
        if tokens is None:
            return super()._score_cold(tokens, count)
        return self._scores(self._membership(tokens))

    def _arrays(self) -> Arrays:
        return {"rates": self.rates, "membership": self._member_rows}

    def _state(self) -> dict[str, Any]:
        return {"hyper_parameters": self.hyper_parameters, "segments": self.segments}

    @property
    def hyper_parameters(self) -> dict[str, Any]:
        return {"holding_share": self.holding_share}

    def _restore(self, arrays: Mapping[str, NDArray[Any]], state: Mapping[str, Any]) -> None:
        self.segments = list(state["segments"])
        self.rates = np.asarray(arrays["rates"], dtype=np.float32)
        self._member_rows = np.asarray(arrays["membership"], dtype=np.float32)
