"""Fixtures of the experiment tests: a migrated SQLite file copied per test (migrating once per session)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from qianmian_core.db import Database
from qianmian_core.testing import copy_of_sqlite, migrated_sqlite_template
from recommender.database import migrate, open_database


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return migrated_sqlite_template(tmp_path_factory.mktemp("experiments"), "recommender.db", migrate)


@pytest.fixture
def sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:
    """URL of a private copy of the migrated SQLite database."""
    return copy_of_sqlite(sqlite_template, tmp_path)


@pytest.fixture
def sqlite_database(sqlite_url: str) -> Iterator[Database]:
    """A migrated SQLite database, for behaviour that does not depend on the dialect."""
    database = open_database(sqlite_url)
    try:
        yield database
    finally:
        database.dispose()
