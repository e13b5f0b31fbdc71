"""Migrations apply from empty and revert on SQLite and PostgreSQL, and match the models exactly."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from qianmian_core.db import make_engine
from qianmian_core.migrations import current_revision, head_revision
from qianmian_core.testing import temporary_postgres_database
from rights_hub.database import MIGRATIONS_DIR, downgrade, migrate
from rights_hub.models import Base
from sqlalchemy import inspect

TABLES = {"rights", "customer_right_usage", "reservations", "grants", "ledger_entries", "idempotency_keys"}


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'migrations.db'}"
    else:
        with temporary_postgres_database("rights_hub_migrations") as url:
            yield url


def tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_from_empty_then_downgrade_to_empty(empty_database: str) -> None:
    migrate(empty_database)
    assert current_revision(empty_database) == head_revision(MIGRATIONS_DIR)
    assert tables(empty_database) >= TABLES
    downgrade(empty_database)
    assert current_revision(empty_database) is None
    assert tables(empty_database) <= {"alembic_version"}
    migrate(empty_database)
    assert current_revision(empty_database) == head_revision(MIGRATIONS_DIR)


def test_migrated_schema_matches_the_models(empty_database: str) -> None:
    migrate(empty_database)
    engine = make_engine(empty_database)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
    finally:
        engine.dispose()
