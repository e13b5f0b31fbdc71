"""Migrations apply from empty and revert on SQLite and PostgreSQL, and match the models exactly."""

from __future__ import annotations

from pathlib import Path

import pytest
from content_hub.database import MIGRATIONS_DIR
from content_hub.models import Base
from qianmian_core.testing import SQLITE_AND_POSTGRES, assert_migrations_round_trip, empty_database_url

TABLES = {"content_items", "content_versions", "content_transitions"}


@pytest.mark.parametrize("dialect", SQLITE_AND_POSTGRES)
def test_upgrade_matches_the_models_and_downgrade_leaves_nothing(dialect: str, tmp_path: Path) -> None:
    with empty_database_url(dialect, tmp_path, "content_hub_migrations") as url:
        assert_migrations_round_trip(MIGRATIONS_DIR, url, Base.metadata, TABLES)
