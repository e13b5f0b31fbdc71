"""Registry: exact round trips, approval, and refusal of a model trained on another catalogue."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from recommender.ml.data import TrainingData
from recommender.ml.models import (
    ALSRecommender,
    BPRRecommender,
    LightFMHybrid,
    PopularityRecommender,
    SegmentPopularityRecommender,
)
from recommender.ml.registry import CatalogueMismatchError, ModelRegistry, RegistryError

MODELS = {
    "als": lambda: ALSRecommender(factors=8, iterations=3, num_threads=1),
    "bpr": lambda: BPRRecommender(factors=8, iterations=5, num_threads=1),
    "lightfm": lambda: LightFMHybrid(no_components=8, epochs=2, num_threads=1),
    "popularity": PopularityRecommender,
    "segment_popularity": SegmentPopularityRecommender,
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_registry_round_trips_a_model_exactly(name: str, data: TrainingData, tmp_path: Path) -> None:
    model = MODELS[name]().fit(data)
    registry = ModelRegistry(tmp_path)
    manifest = registry.register(
        model, data_window={"start": data.window[0], "end": data.window[1]}, metrics={"ndcg@10": 0.5}
    )
    loaded = registry.load(manifest.version, catalogue=list(data.products.ids))
    ids = [*data.customers.ids[:300], "C999999999"]
    tokens = [["segment=payroll"]] * len(ids)
    np.testing.assert_array_equal(model.score(ids, tokens), loaded.model.score(ids, tokens))
    assert model.recommend(ids[:50], 5) == loaded.model.recommend(ids[:50], 5)
    saved = json.loads((tmp_path / manifest.version / "manifest.json").read_text(encoding="utf-8"))
    assert saved["model_type"] == name
    assert saved["status"] == "candidate"
    assert saved["catalogue"]["product_ids"] == list(data.products.ids)
    assert {"git_revision", "created_at", "hyper_parameters", "data_window", "metrics", "id_maps"} <= set(
        saved
    )
    assert not list((tmp_path / manifest.version).glob("*.pkl"))


def test_model_from_another_catalogue_is_rejected_clearly(data: TrainingData, tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    manifest = registry.register(PopularityRecommender().fit(data), data_window={})
    current = [*data.products.ids[1:], "NEW-PRODUCT-01"]
    with pytest.raises(
        CatalogueMismatchError, match=r"1 new in the catalogue \['NEW-PRODUCT-01'\], 1 no longer in it"
    ) as err:
        registry.load(manifest.version, catalogue=current)
    assert "retrain" in str(err.value)


def test_approve_and_newest_approved(data: TrainingData, tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path)
    first = registry.register(PopularityRecommender().fit(data), data_window={})
    second = registry.register(PopularityRecommender().fit(data), data_window={})
    assert registry.newest_approved() is None
    registry.approve(first.version)
    assert registry.newest_approved().version == first.version  # type: ignore[union-attr]
    registry.approve(second.version)
    assert registry.newest_approved().version == second.version  # type: ignore[union-attr]
    with pytest.raises(RegistryError, match="not in registry"):
        registry.approve("nope")
    with pytest.raises(RegistryError, match="object-store URLs are not supported yet"):
        ModelRegistry("s3://bucket/models")
