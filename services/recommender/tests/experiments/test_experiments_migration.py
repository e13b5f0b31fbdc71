"""Migration 0005 adds the experiment tables on top of 0004 and its downgrade removes exactly them,
on SQLite and PostgreSQL (the whole chain is checked against the models in tests/migrations)."""

from __future__ import annotations

from pathlib import Path

import pytest
from qianmian_core.migrations import current_revision
from qianmian_core.testing import SQLITE_AND_POSTGRES, empty_database_url, table_names
from recommender.database import downgrade, migrate

EXPERIMENT_TABLES = {
    "experiments",
    "experiment_arms",
    "experiment_history",
    "experiment_assignments",
    "experiment_exposures",
    "experiment_conversions",
}


@pytest.mark.parametrize("dialect", SQLITE_AND_POSTGRES)
def test_0005_upgrades_from_0004_and_downgrades_back(dialect: str, tmp_path: Path) -> None:
    with empty_database_url(dialect, tmp_path, "recommender_exp_migration") as url:
        migrate(url, "0004")
        before = table_names(url)
        assert not before & EXPERIMENT_TABLES
        migrate(url, "0005")
        assert current_revision(url) == "0005"
        assert table_names(url) == before | EXPERIMENT_TABLES
        downgrade(url, "0004")
        assert current_revision(url) == "0004"
        assert table_names(url) == before
