"""Where the rights hub's migrations live, and how its database is opened.

On SQLite every transaction starts with ``BEGIN IMMEDIATE`` (``qianmian_core.db``'s
``sqlite_immediate``): it takes the database's write lock up front, so two grant transactions can
never interleave read and write (SQLite's deferred default would let both read the same budget and
then fail or, worse, race). PostgreSQL relies on conditional updates and row locks instead (see
``rights_hub.repository``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from qianmian_core.db import Database
from qianmian_core.migrations import ServiceMigrations

#: ``services/rights-hub/migrations``: next to ``src/``, as in every service of the repository.
MIGRATIONS: Final[ServiceMigrations] = ServiceMigrations.beside(__file__)
MIGRATIONS_DIR: Final[Path] = MIGRATIONS.script_location
migrate = MIGRATIONS.migrate
downgrade = MIGRATIONS.downgrade


def open_database(url: str) -> Database:
    """The service's database; on SQLite with serialised (``BEGIN IMMEDIATE``) transactions."""
    return Database(url, sqlite_immediate=True)
