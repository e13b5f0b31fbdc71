"""Collaborative filtering and popularity on a panel, as of one cut-off snapshot.

The candidate models of issue 5 (``recommender.ml.models``), fitted on what was known at the
cut-off: the holdings at that snapshot and the additions of every month up to it. Their scores are
baselines of the next-product evaluation and, for the ranker, features of each candidate (every
cut-off gets its own fit, so a training example never sees a CF model that knew its month).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import pandas as pd
import scipy.sparse as sp
from numpy.typing import NDArray

from recommender.ml.data import (
    InteractionWeights,
    TrainingData,
    customer_feature_tokens,
    product_feature_tokens,
)
from recommender.ml.evaluate import default_models
from recommender.ml.idmap import IdMap
from recommender.ml.models import Recommender
from recommender.ml.ranker.panel import SnapshotPanel

F32 = NDArray[np.float32]
#: The pure CF models (the issue-5 candidates the ranker must beat).
CF_MODELS: Final = ("als", "bpr", "lightfm")
#: Baselines scored on the same cut-off data.
BASELINES: Final = ("popularity", "segment_popularity")
#: Models whose scores are ranker features, in feature order: the CF models and the popularity of
#: additions within the customer's segments (global popularity is the product view's add rate).
SCORE_FEATURES: Final = (*CF_MODELS, "segment_popularity")
#: A holding at the cut-off is a positive as strong as a purchase: on a snapshot panel the holdings
#: are most of what is known (the interaction log of the bank does not exist here).
PANEL_WEIGHTS: Final = InteractionWeights(impression=0.0, click=0.0, purchase=30.0, holding=30.0)
_AGE_EDGES: Final = (26, 36, 46, 56, 66)
_AGE_BANDS: Final = ("18-25", "26-35", "36-45", "46-55", "56-65", "66+")


def _binary(matrix: NDArray[np.bool_]) -> sp.csr_matrix:
    out = sp.csr_matrix(matrix.astype(np.float32))
    out.eliminate_zeros()
    return out


def customer_tokens(panel: SnapshotPanel, cutoff: int, rows: NDArray[np.int64]) -> list[list[str]]:
    """LightFM / segment-popularity tokens of customers ``rows`` at snapshot ``cutoff``.

    The synthetic bank's monthly state gives the bank's own tokens (segments, lifecycle, AUM band,
    risk level); a Santander file gives its segment (``segmento``), age band, sex and activity.
    """
    profile = panel.profile[panel.profile["t"] == cutoff].set_index("i").reindex(rows)
    state = None
    if panel.states is not None:
        state = panel.states[panel.states["t"] == cutoff].set_index("i").reindex(rows)
    return tokens_of(profile.reset_index(drop=True), None if state is None else state.reset_index(drop=True))


def tokens_of(profile: pd.DataFrame, state: pd.DataFrame | None) -> list[list[str]]:
    """Tokens from aligned rows of the profile columns (``age``, ``segmento``, ``sexo``,
    ``ind_actividad_cliente``) and, where the source has them, the state columns (``seg_*``,
    ``lifecycle_stage``, ``aum``, ``risk_level``): training reads them from the panel, serving from
    the ``ranker_profile`` and ``ranker_state`` views, through this one function."""
    frame = pd.DataFrame(index=profile.index)
    if "age" in profile:
        age = pd.to_numeric(profile["age"], errors="coerce").fillna(0).to_numpy()
        frame["age_band"] = np.asarray(_AGE_BANDS, dtype=object)[np.digitize(age, _AGE_EDGES)]
    if state is not None:
        for column in state.columns:
            if column.startswith("seg_") or column in ("lifecycle_stage", "aum", "risk_level"):
                frame[column] = state[column].to_numpy()
        for column in (c for c in frame.columns if c.startswith("seg_")):
            frame[column] = pd.to_numeric(frame[column], errors="coerce").fillna(0).astype(bool)
    extra = []
    for column, name in (("segmento", "segment"), ("sexo", "gender"), ("ind_actividad_cliente", "active")):
        if column in profile and state is None:
            values = profile[column].astype(str).to_numpy()
            extra.append([f"{name}={v}" for v in values])
    if extra:
        frame["feature_tokens"] = [",".join(parts) for parts in zip(*extra, strict=True)]
    return customer_feature_tokens(frame.reset_index(drop=True))


@dataclass(frozen=True)
class CutoffData:
    """The training data of one cut-off and the panel rows of its customers."""

    cutoff: int
    rows: NDArray[np.int64]  # panel customer index of each TrainingData customer
    data: TrainingData


def cutoff_data(panel: SnapshotPanel, cutoff: int, weights: InteractionWeights = PANEL_WEIGHTS) -> CutoffData:
    """What is known at snapshot ``cutoff``: holdings then (seen, and positives at ``weights.holding``)
    and every addition of months ``1..cutoff`` (purchases)."""
    rows = np.flatnonzero(panel.present[cutoff]).astype(np.int64)
    held = panel.held[cutoff][rows]
    purchased = np.zeros_like(held)
    for t in range(1, cutoff + 1):
        purchased |= panel.added(t)[rows]
    confidence = weights.purchase * purchased + weights.holding * (held & ~purchased)
    interactions = sp.csr_matrix(confidence.astype(np.float32))
    interactions.eliminate_zeros()
    products = panel.products
    info = panel.product_info.set_index("product_id").reindex(list(products.ids)).reset_index()
    data = TrainingData(
        customers=IdMap(panel.customers.ids[i] for i in rows),
        products=products,
        interactions=interactions,
        seen=_binary(held),
        purchased=_binary(purchased),
        held=_binary(held & ~purchased),
        customer_tokens=customer_tokens(panel, cutoff, rows),
        product_tokens=product_feature_tokens(info),
        weights=weights,
        window=(str(panel.dates[0]), str(panel.dates[cutoff])),
    )
    return CutoffData(cutoff=cutoff, rows=rows, data=data)


@dataclass
class FittedModels:
    """Models fitted at one cut-off, with fit times."""

    cutoff: CutoffData
    models: dict[str, Recommender]
    seconds: dict[str, float]

    def scores(
        self, name: str, panel: SnapshotPanel, rows: NDArray[np.int64], cutoff: int | None = None
    ) -> F32:
        """``[len(rows) × P]`` scores of panel customers ``rows``.

        Customers the models were fitted on get their learnt representation; the others (arrived
        after the fit's cut-off, when a fit serves later months) are cold and scored from their
        tokens at ``cutoff`` (default the fit's), as any model scores a new customer.
        """
        ids = [panel.customers.ids[i] for i in rows]
        if cutoff is None or cutoff == self.cutoff.cutoff:
            index = np.searchsorted(self.cutoff.rows, rows)
            index = np.minimum(index, max(self.cutoff.rows.shape[0] - 1, 0))
            known = self.cutoff.rows[index] == rows if self.cutoff.rows.shape[0] else np.zeros(0, bool)
            if known.all():
                tokens = [self.cutoff.data.customer_tokens[k] for k in index]
                return self.models[name].score(ids, tokens)
        return self.models[name].score(ids, customer_tokens(panel, cutoff or self.cutoff.cutoff, rows))


#: Models whose training is hogwild (lock-free parallel SGD) with more than one thread, so only
#: single-threaded runs are reproducible; ALS solves each row exactly and may use every thread.
HOGWILD: Final = frozenset({"bpr", "lightfm"})


def fit_models(
    data: CutoffData,
    names: Sequence[str],
    *,
    threads: int,
    seed: int,
    deterministic: bool = True,
    log: Callable[[str], None] = print,
) -> FittedModels:
    """Fit the named models of :func:`recommender.ml.evaluate.default_models` on one cut-off.

    ``deterministic`` fits BPR and LightFM on one thread (see :data:`HOGWILD`), so that the CF
    features, hence the ranker, are the same for a seed whatever ``threads``.
    """
    factories: Mapping[str, Callable[[], Recommender]] = default_models(threads, seed)
    single: Mapping[str, Callable[[], Recommender]] = default_models(1, seed)
    models: dict[str, Recommender] = {}
    seconds: dict[str, float] = {}
    for name in names:
        started = time.perf_counter()
        factory = single[name] if deterministic and name in HOGWILD else factories[name]
        models[name] = factory().fit(data.data)
        seconds[name] = time.perf_counter() - started
    log(
        f"  cut-off {data.cutoff}: fitted "
        + ", ".join(f"{n} {s:.1f}s" for n, s in seconds.items())
        + f" on {len(data.data.customers):,} customers"
    )
    return FittedModels(cutoff=data, models=models, seconds=seconds)
