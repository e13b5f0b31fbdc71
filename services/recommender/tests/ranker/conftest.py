"""Fixtures: one small synthetic panel, its Feast repo and a quickly trained ranker per session."""

from __future__ import annotations

from pathlib import Path

import pytest
from recommender.ml.ranker.model import RankerConfig
from recommender.ml.ranker.panel import SnapshotPanel, simulate
from recommender.ml.ranker.training import PanelFeatures, TrainedRanker, train_ranker, training_months

CUSTOMERS = 1_000
MONTHS = 7
SEED = 5
#: Small and quick: a few seconds on two cores.
CONFIG = RankerConfig(train_months=3, cf_every=2, num_boost_round=25, min_data_in_leaf=20, num_leaves=15)


@pytest.fixture(scope="session")
def panel() -> SnapshotPanel:
    return simulate(CUSTOMERS, MONTHS, SEED)


@pytest.fixture(scope="session")
def features(panel: SnapshotPanel, tmp_path_factory: pytest.TempPathFactory) -> PanelFeatures:
    return PanelFeatures(panel, Path(tmp_path_factory.mktemp("ranker-features")), log=lambda _m: None)


@pytest.fixture(scope="session")
def trained(features: PanelFeatures) -> TrainedRanker:
    months = training_months(features.panel, features.panel.months - 1, CONFIG.train_months)
    return train_ranker(features, months=months, config=CONFIG, threads=2, seed=SEED, log=lambda _m: None)
