"""Migration 0006 adds decision_parts on top of 0005; its downgrade removes it, and refuses while
decisions of audit schema 3 refer to stored parts."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from qianmian_core.migrations import current_revision
from qianmian_core.testing import SQLITE_AND_POSTGRES, empty_database_url, table_names
from recommender.database import downgrade, migrate, open_database
from recommender.repository.audit import AuditRecord, AuditRepository, SharedPart


@pytest.mark.parametrize("dialect", SQLITE_AND_POSTGRES)
def test_0006_upgrades_from_0005_and_downgrades_back(dialect: str, tmp_path: Path) -> None:
    with empty_database_url(dialect, tmp_path, "recommender_parts_migration") as url:
        migrate(url, "0005")
        before = table_names(url)
        migrate(url, "0006")
        assert current_revision(url) == "0006"
        assert table_names(url) == before | {"decision_parts"}
        downgrade(url, "0005")
        assert table_names(url) == before

        migrate(url, "0006")
        database = open_database(url)
        try:
            with database.session() as session:
                AuditRepository(session).append_many(
                    [
                        AuditRecord(
                            decision_id="dec-1",
                            created_at=datetime(2026, 11, 24, tzinfo=UTC),
                            customer_id="C000000001",
                            channel="app",
                            placement="home_banner",
                            mode="personalised",
                            model_version=None,
                            experiment_id=None,
                            experiment_arm=None,
                            request={},
                            features={},
                            candidates=SharedPart(b"[]"),
                            response={},
                        )
                    ]
                )
        finally:
            database.dispose()
        with pytest.raises(RuntimeError, match="audit schema 3"):
            downgrade(url, "0005")
        assert current_revision(url) == "0006"
