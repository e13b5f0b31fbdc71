"""The ranker: deterministic for a seed, an exact registry round trip, the same rows online."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from recommender.ml.models import PopularityRecommender
from recommender.ml.ranker.cf import SCORE_FEATURES
from recommender.ml.ranker.model import MODEL_FILE, MODEL_TYPE, load_ranker
from recommender.ml.ranker.training import (
    PanelFeatures,
    TrainedRanker,
    cf_score_block,
    month_of_year,
    train_ranker,
    training_months,
)
from recommender.ml.registry import CatalogueMismatchError, ModelRegistry, RegistryError

from .conftest import CONFIG, SEED


def _train(features: PanelFeatures, seed: int) -> TrainedRanker:
    config = dataclasses.replace(CONFIG, train_months=2)
    months = training_months(features.panel, features.panel.months - 1, config.train_months)
    return train_ranker(features, months=months, config=config, threads=2, seed=seed, log=lambda _m: None)


def test_training_is_deterministic_for_a_seed(
    features: PanelFeatures, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # A fresh Feast repo, fresh CF fits, the same seed and threads: the same model, byte for byte.
    first = _train(features, SEED)
    fresh = PanelFeatures(features.panel, Path(tmp_path_factory.mktemp("again")), log=lambda _m: None)
    again = _train(fresh, SEED)
    np.testing.assert_array_equal(first.examples.matrix, again.examples.matrix)
    assert first.model.model_text() == again.model.model_text()
    assert _train(fresh, SEED + 1).model.model_text() != first.model.model_text()


def test_registry_round_trip_scores_equal(trained: TrainedRanker, tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    window = {"label_months": [str(m) for m in trained.months]}
    manifest = trained.model.register(
        registry, config=trained.config, data_window=window, metrics={"map@7": 0.01}
    )
    folder = tmp_path / manifest.version
    assert sorted(p.name for p in folder.iterdir()) == ["manifest.json", MODEL_FILE]
    saved = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    assert saved["model_type"] == MODEL_TYPE
    assert saved["data_window"] == window
    assert saved["metrics"] == {"map@7": 0.01}
    assert saved["catalogue"]["product_ids"] == list(trained.model.layout.products)
    features = saved["state"]["features"]
    assert {"feature": "ranker_holdings:adds_3m", "view": "ranker_holdings", "version": 1} in features
    assert saved["state"]["feature_service"] == "ranker_v1"
    assert saved["state"]["columns"] == trained.model.feature_names

    loaded = load_ranker(registry, manifest.version, catalogue=list(trained.model.layout.products))
    rows = trained.examples.matrix[:5_000]
    np.testing.assert_array_equal(trained.model.score(rows), loaded.score(rows))
    assert loaded.version == manifest.version

    # Approving a ranker never makes it the candidate model the service loads, and the other way round.
    assert registry.newest_approved() is None
    with pytest.raises(RegistryError, match="no approved"):
        load_ranker(registry)
    registry.approve(manifest.version)
    assert registry.newest_approved() is None
    assert load_ranker(registry).version == manifest.version
    with pytest.raises(RegistryError, match="artifact"):
        registry.load(manifest.version)
    with pytest.raises(CatalogueMismatchError):
        load_ranker(registry, manifest.version, catalogue=list(trained.model.layout.products)[1:])
    candidate = registry.register(
        PopularityRecommender().fit(trained.fitted[min(trained.fitted)].cutoff.data), data_window={}
    )
    with pytest.raises(RegistryError, match="not a lightgbm_ranker"):
        load_ranker(registry, candidate.version)


def test_online_rows_equal_the_training_rows(trained: TrainedRanker, features: PanelFeatures) -> None:
    """Serving builds a customer's rows from plain feature values with the same code: no skew."""
    panel = features.panel
    ex = trained.examples
    month = int(ex.month[-1])
    cutoff = month - 1
    customers = np.unique(ex.customer[ex.month == month])[:20]
    frame = features.customers(customers, np.full(customers.shape[0], cutoff, dtype=np.int64))
    product_frame = features.products([cutoff]).set_index(np.asarray(panel.products.ids))
    values = [
        {column.replace("__", ":", 1): value for column, value in frame.iloc[k].items()}
        for k in range(len(customers))
    ]
    products = {
        pid: {column.replace("__", ":", 1): value for column, value in row.items()}
        for pid, row in product_frame.iterrows()
    }
    fit = trained.fitted[max(c for c in trained.fitted if c <= cutoff)]
    cf = cf_score_block(panel, fit, customers, cutoff, SCORE_FEATURES)
    assert cf is not None
    cf_scores = [{m: cf[k, j] for j, m in enumerate(SCORE_FEATURES)} for k in range(len(customers))]
    candidates = [list(panel.products.ids)] * len(customers)

    online, keys = trained.model.rows_for_customers(
        values, candidates, products=products, snapshot=panel.dates[cutoff], cf_scores=cf_scores
    )

    assert month_of_year(panel, np.array([cutoff]))[0] == panel.dates[cutoff].month % 12 + 1
    position = {int(c): k for k, c in enumerate(customers)}
    offline_index = {
        (position[int(c)], panel.products.ids[int(p)]): r
        for r, (c, p, m) in enumerate(zip(ex.customer, ex.product, ex.month, strict=True))
        if m == month and int(c) in position
    }
    compared = 0
    for r, key in enumerate(keys):
        if key in offline_index:
            # CF scores of a 20-customer batch may round differently in the last float32 bit.
            np.testing.assert_allclose(online[r], ex.matrix[offline_index[key]], rtol=1e-5, atol=1e-6)
            compared += 1
    assert compared > 50
    held = {
        (k, p) for k, c in enumerate(customers) for p in np.asarray(panel.products.ids)[panel.held[cutoff, c]]
    }
    assert not held & set(keys), "a held product got a row"
    scores = trained.model.score_customers(
        values[:3], candidates[:3], products=products, snapshot=panel.dates[cutoff], cf_scores=cf_scores[:3]
    )
    assert all(0.0 < v < 1.0 for s in scores for v in s.values())


def test_value_blocks_equal_the_pandas_blocks(trained: TrainedRanker) -> None:
    """Serving's per-value blocks equal training's pandas blocks, edge values included: masks above
    2**53 (exact, never through a float), missing values, numbers as strings, unknown categories."""
    import pandas as pd
    from recommender.ml.ranker.rows import (
        column_name,
        customer_block,
        customer_block_from_values,
        product_block,
        product_block_from_values,
    )

    layout = trained.model.layout
    big = (1 << 62) | (1 << 56) | 0b1011  # high and low bits at once
    numeric = list(layout.customer_numeric)
    categorical = [r for r, _ in layout.customer_categorical]
    rows = [
        {"ranker_holdings:held_lag1_w0": big, "ranker_holdings:snapshots_observed": 5},
        dict.fromkeys([*numeric, *categorical]),
        {
            **dict.fromkeys(numeric[:3], "7"),
            **{ref: vocab[0] for ref, vocab in layout.customer_categorical if vocab},
            categorical[0]: "never-seen-category",
            "ranker_holdings:held_lag2_w0": 3,
        },
    ]
    # object columns, as a Feast answer with a missing row can be (a float column would already
    # have rounded the 63-bit mask words before any code saw them)
    frame = pd.DataFrame([{column_name(k): v for k, v in r.items()} for r in rows], dtype=object)
    month = np.array([3, 4, 5])
    fast, slow = customer_block_from_values(layout, rows, month), customer_block(layout, frame, month)
    np.testing.assert_array_equal(fast.values, slow.values)
    np.testing.assert_array_equal(fast.observed, slow.observed)
    np.testing.assert_array_equal(fast.lags, slow.lags)
    held = np.flatnonzero(fast.lags[0, 0])
    assert held.tolist() == [j for j in (0, 1, 3, 56, 62) if j < len(layout.products)]
    products = [
        {"ranker_product:add_rate_1m": 0.25, "ranker_product:product_type": "deposit"},
        {"ranker_product:risk_rating": None, "ranker_product:product_type": "nothing-like-it"},
    ]
    product_frame = pd.DataFrame([{column_name(k): v for k, v in p.items()} for p in products])
    np.testing.assert_array_equal(
        product_block_from_values(layout, products), product_block(layout, product_frame)
    )
