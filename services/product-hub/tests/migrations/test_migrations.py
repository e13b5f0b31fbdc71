"""Migrations apply from empty and revert on SQLite and PostgreSQL, and match the models exactly."""

from __future__ import annotations

from pathlib import Path

import pytest
from product_hub.database import MIGRATIONS_DIR
from product_hub.models import Base
from qianmian_core.testing import SQLITE_AND_POSTGRES, assert_migrations_round_trip, empty_database_url

TABLES = {"products", "product_status_changes"}


@pytest.mark.parametrize("dialect", SQLITE_AND_POSTGRES)
def test_upgrade_matches_the_models_and_downgrade_leaves_nothing(dialect: str, tmp_path: Path) -> None:
    with empty_database_url(dialect, tmp_path, "product_hub_migrations") as url:
        assert_migrations_round_trip(MIGRATIONS_DIR, url, Base.metadata, TABLES)
