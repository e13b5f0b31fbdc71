"""Migrations apply from empty and revert on SQLite and PostgreSQL, and match the models exactly."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from qianmian_core.testing import SQLITE_AND_POSTGRES, assert_migrations_round_trip, empty_database_url
from recommender.database import MIGRATIONS_DIR
from recommender.models import Base

TABLES = {
    "decisions",
    "contact_events",
    "contact_locks",
    "cooldowns",
    "catalogue_snapshots",
    "feedback_events",
    "idempotency_keys",
    "outbound_lists",
}


@pytest.mark.parametrize("dialect", SQLITE_AND_POSTGRES)
def test_upgrade_matches_the_models_and_downgrade_leaves_nothing(dialect: str, tmp_path: Path) -> None:
    with empty_database_url(dialect, tmp_path, "recommender_migrations") as url:
        assert_migrations_round_trip(MIGRATIONS_DIR, url, Base.metadata, TABLES)


def test_cli_migrate_and_downgrade(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from qianmian_core.migrations import current_revision
    from qianmian_core.testing import logging_restored
    from recommender.cli import main

    url = f"sqlite:///{tmp_path / 'recommender.db'}"
    monkeypatch.setenv("RECOMMENDER_DATABASE_URL", url)
    monkeypatch.setenv("RECOMMENDER_LOG_LEVEL", "WARNING")
    with logging_restored():
        assert main(["migrate"]) == 0
        head = ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
        assert head is not None
        assert current_revision(url) == head
        assert main(["downgrade"]) == 0
        assert current_revision(url) is None
