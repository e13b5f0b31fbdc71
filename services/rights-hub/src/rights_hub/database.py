"""Where the rights hub's migrations live, and how its database is opened.

On SQLite every transaction starts with ``BEGIN IMMEDIATE``: it takes the database's write lock up
front, so two grant transactions can never interleave read and write (SQLite's deferred default
would let both read the same budget and then fail or, worse, race). PostgreSQL relies on
conditional updates and row locks instead (see ``rights_hub.repository``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

from qianmian_core import migrations
from qianmian_core.db import Database
from sqlalchemy import Connection, event

#: ``services/rights-hub/migrations``: next to ``src/``, as in every service of the repository.
MIGRATIONS_DIR: Final[Path] = Path(__file__).resolve().parents[2] / "migrations"


def migrate(database_url: str, revision: str = "head") -> None:
    """Bring the database schema up to ``revision``."""
    migrations.upgrade(MIGRATIONS_DIR, database_url, revision)


def downgrade(database_url: str, revision: str = "base") -> None:
    """Take the database schema down to ``revision`` (``base`` drops every table)."""
    migrations.downgrade(MIGRATIONS_DIR, database_url, revision)


def _driver_autocommit(dbapi_connection: Any, _record: Any) -> None:
    # Stop pysqlite from issuing its own (deferred) BEGIN; SQLAlchemy's begin event issues ours.
    dbapi_connection.isolation_level = None


def _begin_immediate(connection: Connection) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def open_database(url: str) -> Database:
    """The service's database; on SQLite with serialised (``BEGIN IMMEDIATE``) transactions."""
    database = Database(url)
    if database.dialect == "sqlite":
        event.listen(database.engine, "connect", _driver_autocommit)
        event.listen(database.engine, "begin", _begin_immediate)
    return database
