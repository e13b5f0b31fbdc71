"""Where the recommender's migrations live, and how its database is opened.

On SQLite every transaction starts with ``BEGIN IMMEDIATE`` (``qianmian_core.db``'s
``sqlite_immediate``), so a contact-cap reservation holds the write lock from its first read to its
commit. PostgreSQL locks the customer's ``contact_locks`` row instead (see
``recommender.repository.contacts``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from qianmian_core.db import Database
from qianmian_core.migrations import ServiceMigrations

#: ``services/recommender/migrations``: next to ``src/``, as in every service of the repository.
MIGRATIONS: Final[ServiceMigrations] = ServiceMigrations.beside(__file__)
MIGRATIONS_DIR: Final[Path] = MIGRATIONS.script_location
migrate = MIGRATIONS.migrate
downgrade = MIGRATIONS.downgrade


def open_database(url: str) -> Database:
    """The service's database; on SQLite with serialised (``BEGIN IMMEDIATE``) transactions."""
    return Database(url, sqlite_immediate=True)
