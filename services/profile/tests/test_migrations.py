"""Migrations apply from empty and downgrade on SQLite and PostgreSQL; the models match them exactly."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from profile_service.cli import MIGRATIONS
from profile_service.models import Base
from qianmian_core import migrations
from qianmian_core.db import make_engine
from qianmian_core.testing import temporary_postgres_database
from sqlalchemy import inspect

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
}


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/migrate.db"
    else:
        with temporary_postgres_database("profile_migrations") as url:
            yield url


def test_upgrade_diff_downgrade(empty_url: str) -> None:
    migrations.upgrade(MIGRATIONS, empty_url)
    assert migrations.current_revision(empty_url) == migrations.head_revision(MIGRATIONS)
    engine = make_engine(empty_url)
    try:
        assert set(inspect(engine).get_table_names()) >= TABLES
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
    finally:
        engine.dispose()
    migrations.downgrade(MIGRATIONS, empty_url)
    engine = make_engine(empty_url)
    try:
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    finally:
        engine.dispose()
    migrations.upgrade(MIGRATIONS, empty_url)  # and back up again
    assert migrations.current_revision(empty_url) == migrations.head_revision(MIGRATIONS)
