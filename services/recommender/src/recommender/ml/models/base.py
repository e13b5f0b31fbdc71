"""The one small model interface: fit, score, recommend; warm and cold customers by name.

A *warm* customer is in the model's customer id map (it had interactions in the training
window); a *cold* one is not, and is scored from its feature tokens (LightFM, segment
popularity) or by the global-popularity fallback every model carries.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from recommender.ml.data import TrainingData
from recommender.ml.idmap import IdMap

F32 = NDArray[np.float32]
Arrays = dict[str, NDArray[Any]]


def acquisition_shares(data: TrainingData, holding_share: float = 0.0) -> F32:
    """Each product's share of the training acquisitions: purchases, plus ``holding_share`` × the
    products held without a purchase row (falls back to all seen items when nothing was purchased)."""
    acquired = data.purchased + holding_share * data.held if holding_share else data.purchased
    if acquired.nnz == 0:
        acquired = data.seen
    counts = np.asarray(acquired.sum(axis=0), dtype=np.float32).ravel()
    return counts / max(float(counts.sum()), 1.0)


class Recommender(ABC):
    """Base of every model. Subclasses implement ``_fit``, ``_score_warm`` and persistence hooks."""

    model_type: ClassVar[str]

    def __init__(self) -> None:
        self.customers = IdMap(())
        self.products = IdMap(())
        self.seen = sp.csr_matrix((0, 0), dtype=np.float32)
        self.popularity = np.zeros(0, dtype=np.float32)

    # -- the interface ---------------------------------------------------------------------------

    def fit(self, data: TrainingData) -> Recommender:
        """Train on ``data``; returns self. ``popularity`` (the cold fallback) is purchase popularity."""
        self.customers = data.customers
        self.products = data.products
        self.seen = data.seen.astype(np.float32).tocsr()
        self.popularity = acquisition_shares(data)
        self._fit(data)
        return self

    @property
    def hyper_parameters(self) -> dict[str, Any]:
        """The hyper-parameters, as written to the registry manifest."""
        return {}

    def score(
        self, customer_ids: Sequence[str], customer_tokens: Sequence[Sequence[str]] | None = None
    ) -> F32:
        """``[len(customer_ids) × products]`` scores (higher is better).

        Warm customers use the learned representation; cold ones use ``customer_tokens`` when the
        model can (``_score_cold``), otherwise global popularity.
        """
        rows = self.customers.indices(customer_ids)
        out = np.empty((len(customer_ids), len(self.products)), dtype=np.float32)
        warm = np.flatnonzero(rows >= 0)
        cold = np.flatnonzero(rows < 0)
        if warm.size:
            out[warm] = self._score_warm(rows[warm])
        if cold.size:
            tokens = [list(customer_tokens[int(i)]) for i in cold] if customer_tokens is not None else None
            out[cold] = self._score_cold(tokens, cold.size)
        return out

    def recommend(
        self,
        customer_ids: Sequence[str],
        k: int,
        *,
        exclude_seen: bool = True,
        customer_tokens: Sequence[Sequence[str]] | None = None,
    ) -> list[list[tuple[str, float]]]:
        """The top ``k`` (product id, score) per customer; products already bought are left out."""
        scores = self.score(customer_ids, customer_tokens)
        if exclude_seen:
            rows = self.customers.indices(customer_ids)
            warm = np.flatnonzero(rows >= 0)
            if warm.size:
                mask = self.seen[rows[warm]].toarray() > 0
                block = scores[warm]
                block[mask] = -np.inf
                scores[warm] = block
        k = min(k, scores.shape[1])
        top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        ids = self.products.ids
        # Whole arrays to Python lists at once: indexing a numpy scalar per element cost more than
        # scoring a batch (an outbound list's top-k for 100,000 customers).
        picked = np.take_along_axis(scores, top, axis=1)
        return [
            [(ids[j], s) for j, s, ok in zip(columns, values, finite, strict=True) if ok]
            for columns, values, finite in zip(
                top.tolist(), picked.tolist(), np.isfinite(picked).tolist(), strict=True
            )
        ]

    # -- persistence: plain arrays and JSON, never pickles -----------------------------------------

    def to_arrays(self) -> Arrays:
        """Every array needed to score, including the seen-items matrix and popularity fallback."""
        arrays: Arrays = {
            "seen_indptr": self.seen.indptr.astype(np.int64),
            "seen_indices": self.seen.indices.astype(np.int64),
            "popularity": self.popularity,
        }
        for name, value in self._arrays().items():
            arrays[f"model__{name}"] = value
        return arrays

    def state(self) -> dict[str, Any]:
        """JSON-ready state that is not an array (feature vocabularies, settings)."""
        return self._state()

    @classmethod
    def restore(
        cls, customers: IdMap, products: IdMap, arrays: Mapping[str, NDArray[Any]], state: Mapping[str, Any]
    ) -> Recommender:
        """Rebuild a fitted model from what ``to_arrays`` and ``state`` produced."""
        model = cls.from_hyper_parameters(dict(state.get("hyper_parameters", {})))
        model.customers = customers
        model.products = products
        indices = np.asarray(arrays["seen_indices"], dtype=np.int64)
        model.seen = sp.csr_matrix(
            (np.ones(indices.shape[0], dtype=np.float32), indices, np.asarray(arrays["seen_indptr"])),
            shape=(len(customers), len(products)),
        )
        model.popularity = np.asarray(arrays["popularity"], dtype=np.float32)
        own = {k.removeprefix("model__"): v for k, v in arrays.items() if k.startswith("model__")}
        model._restore(own, state)
        return model

    @classmethod
    def from_hyper_parameters(cls, params: Mapping[str, Any]) -> Recommender:
        """A fresh, unfitted model with these hyper-parameters."""
        return cls(**params)

    # -- hooks -----------------------------------------------------------------------------------

    @abstractmethod
    def _fit(self, data: TrainingData) -> None: ...

    @abstractmethod
    def _score_warm(self, rows: NDArray[np.int64]) -> F32: ...

    def _score_cold(self, tokens: list[list[str]] | None, count: int) -> F32:
        """Global popularity: the fallback of every model without feature-based scoring."""
        return np.tile(self.popularity, (count, 1))

    def _arrays(self) -> Arrays:
        return {}

    def _state(self) -> dict[str, Any]:
        return {"hyper_parameters": self.hyper_parameters}

    def _restore(self, arrays: Mapping[str, NDArray[Any]], state: Mapping[str, Any]) -> None:
        return None
