"""Migrations apply from empty and downgrade on SQLite and PostgreSQL; the models match them exactly."""

from __future__ import annotations

from pathlib import Path

import pytest
from profile_service.cli import MIGRATIONS
from profile_service.models import Base
from qianmian_core.testing import SQLITE_AND_POSTGRES, assert_migrations_round_trip, empty_database_url

TABLES = {
    "customers",
    "customer_pii",
    "holdings",
    "risk_assessments",
    "consents",
    "consent_changes",
    "events",
    "contact_history",
    "feature_outbox",
    "customer_changes",
}


@pytest.mark.parametrize("dialect", SQLITE_AND_POSTGRES)
def test_upgrade_diff_downgrade(dialect: str, tmp_path: Path) -> None:
    with empty_database_url(dialect, tmp_path, "profile_migrations") as url:
        assert_migrations_round_trip(MIGRATIONS, url, Base.metadata, TABLES)
