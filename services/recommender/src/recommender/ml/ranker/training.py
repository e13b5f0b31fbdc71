"""Training examples from a panel, point in time through Feast, and the LightGBM fit.

An example is (customer, month ``t``, candidate product): the customer was present at the cut-off
``t - 1`` and at ``t``, did not hold the product at the cut-off, and the label says whether they
added it during month ``t``. Its features are Feast's historical features of the customer and the
product with ``event_timestamp`` = the cut-off snapshot, and the candidate's scores from CF models
fitted on what was known at that cut-off (``cf.py``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from recommender.ml.ranker.cf import SCORE_FEATURES, FittedModels, cutoff_data, fit_models
from recommender.ml.ranker.features import (
    ViewSpec,
    historical,
    open_ranker_store,
    view_specs,
    write_sources,
)
from recommender.ml.ranker.model import RankerConfig, RankerModel
from recommender.ml.ranker.panel import SnapshotPanel
from recommender.ml.ranker.rows import (
    CustomerBlock,
    FeatureLayout,
    customer_block,
    feature_rows,
    product_block,
)

F32 = NDArray[np.float32]
I64 = NDArray[np.int64]
Log = Callable[[str], None]


class PanelFeatures:
    """A panel's feature sources written as parquet, applied as a Feast repo, read point in time."""

    def __init__(self, panel: SnapshotPanel, folder: Path, log: Log = print) -> None:
        started = time.perf_counter()
        self.panel = panel
        self.specs: list[ViewSpec] = view_specs(panel)
        self.paths = write_sources(panel, self.specs, folder / "sources")
        self.store = open_ranker_store(folder / "repo", self.specs, self.paths)
        self.seconds = {"sources + feast apply": time.perf_counter() - started, "feast retrieval": 0.0}
        log(f"  feature sources and Feast repo in {folder} ({self.seconds['sources + feast apply']:.1f}s)")

    def entity_df(self, rows: I64, cutoffs: I64) -> pd.DataFrame:
        """Customer ids and the cut-off snapshots as Feast event timestamps."""
        days = np.asarray([np.datetime64(d, "ns") for d in self.panel.dates])
        return pd.DataFrame(
            {
                "customer_id": np.asarray(self.panel.customers.ids, dtype=object)[rows],
                "event_timestamp": pd.to_datetime(days[cutoffs], utc=True),
            }
        )

    def customers(self, rows: I64, cutoffs: I64) -> pd.DataFrame:
        """Every customer view, point in time at each row's cut-off; columns ``view__feature``."""
        started = time.perf_counter()
        request = self.entity_df(rows, cutoffs)
        parts = [historical(self.store, spec, request) for spec in self.specs if spec.entity == "customer"]
        self.seconds["feast retrieval"] += time.perf_counter() - started
        return pd.concat(parts, axis=1)

    def products(self, cutoffs: Sequence[int]) -> pd.DataFrame:
        """The product view at each cut-off: ``len(cutoffs) × P`` rows, cut-off major."""
        started = time.perf_counter()
        spec = next(s for s in self.specs if s.entity == "product")
        ids = list(self.panel.products.ids)
        days = [self.panel.timestamp(t) for t in cutoffs]
        request = pd.DataFrame(
            {
                "product_id": ids * len(cutoffs),
                "event_timestamp": pd.to_datetime(
                    np.repeat(np.asarray(days, dtype=object), len(ids)), utc=True
                ),
            }
        )
        answer = historical(self.store, spec, request)
        self.seconds["feast retrieval"] += time.perf_counter() - started
        return answer


def product_types(panel: SnapshotPanel) -> list[str]:
    """The type of each product of the panel's axis (its own name where the source has no types)."""
    info = panel.product_info.set_index("product_id").reindex(list(panel.products.ids))
    types = info["product_type"].astype(object)
    return [str(t) if isinstance(t, str) and t else p for p, t in zip(panel.products.ids, types, strict=True)]


def month_of_year(panel: SnapshotPanel, cutoffs: I64) -> F32:
    """The calendar month being predicted: the one after each cut-off snapshot's month."""
    months = np.asarray([d.month for d in panel.dates], dtype=np.int64)[cutoffs]
    return (months % 12 + 1).astype(np.float32)


@dataclass
class ExampleSet:
    """Feature rows with labels and weights, and where they came from."""

    matrix: F32
    labels: NDArray[np.int8]
    weights: F32
    customer: I64  # panel customer index of each row
    month: I64  # label month of each row
    product: I64
    customer_months: int
    adders: int
    cf_seconds: dict[str, float] = field(default_factory=dict)


def sample_customer_months(
    panel: SnapshotPanel, months: Sequence[int], negative_rate: float, seed: int
) -> tuple[I64, I64, F32]:
    """Customer-months of ``months``: every one with an addition, a seeded share of the others
    (weight ``1 / negative_rate``). Returns panel customer index, label month and weight."""
    rows: list[I64] = []
    month_of: list[I64] = []
    weights: list[F32] = []
    for t in months:
        eligible = panel.continuing(t)
        adders = eligible & panel.added(t).any(axis=1)
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(t,)))
        keep_negative = eligible & ~adders & (rng.random(eligible.shape[0]) < negative_rate)
        chosen = np.flatnonzero(adders | keep_negative)
        rows.append(chosen.astype(np.int64))
        month_of.append(np.full(chosen.shape[0], t, dtype=np.int64))
        weights.append(np.where(adders[chosen], 1.0, 1.0 / negative_rate).astype(np.float32))
    return np.concatenate(rows), np.concatenate(month_of), np.concatenate(weights)


def cf_score_block(
    panel: SnapshotPanel, fitted: FittedModels | None, rows: I64, cutoff: int, names: Sequence[str]
) -> F32 | None:
    """``[n × K × P]`` CF scores of panel customers ``rows`` at ``cutoff`` (None without models)."""
    if fitted is None or not names:
        return None
    out = np.empty((rows.shape[0], len(names), len(panel.products)), dtype=np.float32)
    for k, name in enumerate(names):
        out[:, k, :] = fitted.scores(name, panel, rows, cutoff)
    return out


def examples_for(
    features: PanelFeatures,
    layout: FeatureLayout,
    frame: pd.DataFrame,
    rows: I64,
    months: I64,
    products_by_cutoff: dict[int, F32],
    fitted: dict[int, FittedModels],
    emit: Callable[[NDArray[np.bool_], I64, int], NDArray[np.bool_]] | None = None,
) -> tuple[F32, I64, I64, CustomerBlock]:
    """Feature rows of the customer-months ``(rows, months)`` whose Feast answer is ``frame``.

    ``fitted`` maps a cut-off to the CF models whose scores the rows of that cut-off get: the
    newest fit at or before it. ``emit(candidates, panel rows, month)`` picks the candidates to
    build rows for (default all).
    """
    panel = features.panel
    block = customer_block(layout, frame, month_of_year(panel, months - 1))
    candidates = ~block.lags[:, 0, :]
    matrices: list[F32] = []
    row_index: list[I64] = []
    product_index: list[I64] = []
    for t in np.unique(months):
        sel = np.flatnonzero(months == t)
        sub = CustomerBlock(block.values[sel], block.lags[sel], block.observed[sel], block.month_of_year[sel])
        cutoff = int(t) - 1
        cf = cf_score_block(panel, _newest_fit(fitted, cutoff), rows[sel], cutoff, layout.cf_models)
        chosen = emit(candidates[sel], rows[sel], int(t)) if emit is not None else None
        matrix, r, p = feature_rows(
            layout, sub, products_by_cutoff[int(t) - 1], candidates[sel], cf, emit=chosen
        )
        matrices.append(matrix)
        row_index.append(sel[r])
        product_index.append(p)
    if not matrices:
        width = len(layout.names())
        return np.zeros((0, width), np.float32), np.zeros(0, np.int64), np.zeros(0, np.int64), block
    return np.concatenate(matrices), np.concatenate(row_index), np.concatenate(product_index), block


def _newest_fit(fitted: dict[int, FittedModels], cutoff: int) -> FittedModels | None:
    usable = [c for c in fitted if c <= cutoff]
    return fitted[max(usable)] if usable else None


def cf_cutoffs(cutoffs: Sequence[int], every: int) -> list[int]:
    """The cut-offs CF is refitted at: the first and then every ``every`` (each label month uses the
    newest fit at or before its own cut-off, so no CF model ever saw the month it scores)."""
    ordered = sorted(cutoffs)
    return ordered[:: max(every, 1)]


def training_months(panel: SnapshotPanel, test_month: int, train_months: int) -> list[int]:
    """Label months before ``test_month``: the last ``train_months`` of them (at least month 1)."""
    return list(range(max(1, test_month - train_months), test_month))


@dataclass
class TrainedRanker:
    """A fitted ranker, its layout, its training examples' sizes and timings."""

    model: RankerModel
    config: RankerConfig
    months: list[int]
    examples: ExampleSet
    seconds: dict[str, float]
    fitted: dict[int, FittedModels]


def train_ranker(
    features: PanelFeatures,
    *,
    months: Sequence[int],
    config: RankerConfig,
    threads: int,
    seed: int,
    cf_models: Sequence[str] = SCORE_FEATURES,
    fitted: dict[int, FittedModels] | None = None,
    log: Log = print,
) -> TrainedRanker:
    """Build the examples of label ``months`` and fit LightGBM on them.

    ``fitted``: CF models already fitted per cut-off (fitted here for the cut-offs that lack them,
    and added to the dict so an evaluation can reuse them).
    """
    import lightgbm

    panel = features.panel
    seconds: dict[str, float] = {}
    fitted = {} if fitted is None else fitted
    started = time.perf_counter()
    rows, label_months, weights = sample_customer_months(panel, months, config.negative_rate, seed)
    cutoffs = sorted({int(t) - 1 for t in months})
    retrieval_before = features.seconds["feast retrieval"]
    frame = features.customers(rows, label_months - 1)
    product_frame = features.products(cutoffs)
    seconds["feast retrieval"] = features.seconds["feast retrieval"] - retrieval_before
    layout = FeatureLayout.build(
        features.specs, panel.products.ids, product_types(panel), frame, product_frame, cf_models
    )
    by_cutoff = _products_by_cutoff(layout, product_frame, cutoffs, len(panel.products))

    cf_started = time.perf_counter()
    for c in cf_cutoffs(cutoffs, config.cf_every):
        if c not in fitted and cf_models:
            fitted[c] = fit_models(
                cutoff_data(panel, c),
                cf_models,
                threads=threads,
                seed=seed,
                deterministic=config.deterministic_cf,
                log=log,
            )
    seconds["cf models"] = time.perf_counter() - cf_started

    rows_started = time.perf_counter()

    def emit(candidates: NDArray[np.bool_], who: I64, month: int) -> NDArray[np.bool_]:
        # Negative rows are ~99 % of all rows and each says little: keep a seeded share and weight
        # it back (negative down-sampling with weight correction keeps probabilities calibrated).
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(month, 1)))
        added = panel.added(month)[who]
        return np.asarray(added | (rng.random(candidates.shape) < config.negative_row_rate), dtype=np.bool_)

    matrix, row_index, product_index, _ = examples_for(
        features,
        layout,
        frame,
        rows,
        label_months,
        by_cutoff,
        fitted,
        emit if config.negative_row_rate < 1.0 else None,
    )
    customer_of = rows[row_index]
    month_of = label_months[row_index]
    labels = np.zeros(row_index.shape[0], dtype=np.int8)
    for t in np.unique(month_of):
        sel = month_of == t
        labels[sel] = panel.added(int(t))[customer_of[sel], product_index[sel]]
    row_weights = weights[row_index]
    if config.negative_row_rate < 1.0:
        row_weights = np.where(labels == 1, row_weights, row_weights / config.negative_row_rate)
    examples = ExampleSet(
        matrix=matrix,
        labels=labels,
        weights=row_weights.astype(np.float32),
        customer=customer_of,
        month=month_of,
        product=product_index,
        customer_months=int(rows.shape[0]),
        adders=int((weights == 1.0).sum()),
    )
    seconds["feature rows"] = time.perf_counter() - rows_started
    log(
        f"  examples: {matrix.shape[0]:,} rows × {matrix.shape[1]} features from "
        f"{examples.customer_months:,} customer-months of months {list(months)} "
        f"({examples.adders:,} with an addition, {int(labels.sum()):,} additions)"
    )

    fit_started = time.perf_counter()
    names = layout.names()
    dataset = lightgbm.Dataset(
        matrix,
        label=labels,
        weight=examples.weights,
        feature_name=names,
        categorical_feature=layout.categorical(),
        free_raw_data=True,
        params={"max_bin": config.max_bin, "verbosity": -1},
    )
    booster = lightgbm.train(
        config.lightgbm_params(threads=threads, seed=seed), dataset, num_boost_round=config.num_boost_round
    )
    seconds["lightgbm"] = time.perf_counter() - fit_started
    seconds["total"] = time.perf_counter() - started
    log(f"  LightGBM: {config.num_boost_round} rounds in {seconds['lightgbm']:.1f}s on {threads} threads")
    return TrainedRanker(
        model=RankerModel(booster, layout),
        config=config,
        months=list(months),
        examples=examples,
        seconds=seconds,
        fitted=fitted,
    )


def _products_by_cutoff(
    layout: FeatureLayout, product_frame: pd.DataFrame, cutoffs: Sequence[int], products: int
) -> dict[int, F32]:
    block = product_block(layout, product_frame)
    return {c: block[k * products : (k + 1) * products] for k, c in enumerate(cutoffs)}


def score_customers(
    features: PanelFeatures,
    ranker: RankerModel,
    rows: I64,
    month: int,
    fitted: FittedModels | None,
    *,
    threads: int,
) -> F32:
    """``[len(rows) × P]`` ranker propensities for month ``month`` (``-inf`` for held products)."""
    panel = features.panel
    cutoff = month - 1
    frame = features.customers(rows, np.full(rows.shape[0], cutoff, dtype=np.int64))
    product_frame = features.products([cutoff])
    by_cutoff = _products_by_cutoff(ranker.layout, product_frame, [cutoff], len(panel.products))
    months = np.full(rows.shape[0], month, dtype=np.int64)
    fitted_map = {cutoff: fitted} if fitted is not None else {}
    matrix, row_index, product_index, _ = examples_for(
        features, ranker.layout, frame, rows, months, by_cutoff, fitted_map
    )
    out = np.full((rows.shape[0], len(panel.products)), -np.inf, dtype=np.float32)
    out[row_index, product_index] = ranker.score(matrix, threads=threads).astype(np.float32)
    return out
