"""Fixtures: one small synthetic bank (3,000 customers) per session and its training data."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from qianmian_bankgen.catalogue import CATALOGUE
from qianmian_bankgen.generator import generate
from qianmian_core.db import Database
from qianmian_core.testing import empty_database_url
from recommender.database import migrate, open_database
from recommender.ml.data import Bank, InteractionWeights, TrainingData, load_bank, training_data
from recommender.ml.idmap import IdMap
from recommender.ml.threads import pin_blas_threads

pin_blas_threads()

REPO_ROOT = Path(__file__).resolve().parents[3]
DEV_TOKENS = REPO_ROOT / "config" / "dev-tokens.yaml"
SMALL = 5_000
SEED = 11


@pytest.fixture(scope="session")
def bank_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bank") / f"bank-{SMALL}-{SEED}"
    generate(SMALL, SEED, date(2025, 6, 30), out)
    return out


@pytest.fixture(scope="session")
def bank(bank_dir: Path) -> Bank:
    return load_bank(bank_dir)


@pytest.fixture(scope="session")
def catalogue() -> IdMap:
    return IdMap(p.product_id for p in CATALOGUE)


@pytest.fixture(scope="session")
def data(bank: Bank, catalogue: IdMap) -> TrainingData:
    return training_data(bank, products=catalogue, weights=InteractionWeights())


@pytest.fixture(params=[pytest.param("postgresql", marks=pytest.mark.postgres), "sqlite"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A migrated recommender database on each dialect we ship (SQLite with BEGIN IMMEDIATE)."""
    with empty_database_url(request.param, tmp_path, "recommender_test") as url:
        migrate(url)
        db = open_database(url)
        try:
            yield db
        finally:
            db.dispose()
