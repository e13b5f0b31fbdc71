"""Alembic helpers: every service keeps its migrations in ``<service>/migrations``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, inspect

from qianmian_core.db import make_engine


def alembic_config(script_location: Path, database_url: str) -> Config:
    """An Alembic config pointing at a service's migrations and a database URL (no ini file needed)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(script_location))
    # ConfigParser interpolation treats % specially; URL-encoded passwords contain it.
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    cfg.attributes["database_url"] = database_url
    return cfg


def upgrade(script_location: Path, database_url: str, revision: str = "head") -> None:
    """Apply migrations up to ``revision``."""
    command.upgrade(alembic_config(script_location, database_url), revision)


def downgrade(script_location: Path, database_url: str, revision: str = "base") -> None:
    """Revert migrations down to ``revision``."""
    command.downgrade(alembic_config(script_location, database_url), revision)


def head_revision(script_location: Path) -> str | None:
    """The newest revision in the service's migration scripts."""
    script = ScriptDirectory.from_config(alembic_config(script_location, "sqlite://"))
    return script.get_current_head()


@dataclass(frozen=True, slots=True)
class ServiceMigrations:
    """A service's Alembic scripts and the calls that apply them to a database URL."""

    script_location: Path

    @classmethod
    def beside(cls, module_file: str) -> ServiceMigrations:
        """``<service>/migrations`` for a module at ``<service>/src/<package>/<module>.py``."""
        return cls(Path(module_file).resolve().parents[2] / "migrations")

    def migrate(self, database_url: str, revision: str = "head") -> None:
        """Bring the database schema up to ``revision``."""
        upgrade(self.script_location, database_url, revision)

    def downgrade(self, database_url: str, revision: str = "base") -> None:
        """Take the database schema down to ``revision`` (``base`` drops every table)."""
        downgrade(self.script_location, database_url, revision)


def current_revision(database_url: str) -> str | None:
    """The revision the database is at, or None before the first migration."""
    engine = make_engine(database_url)
    try:
        if not inspect(engine).has_table("alembic_version"):
            return None
        with engine.connect() as conn:
            row = conn.exec_driver_sql("SELECT version_num FROM alembic_version").first()
            return None if row is None else str(row[0])
    finally:
        engine.dispose()


def run_env(target_metadata: MetaData, version_table: str = "alembic_version") -> None:
    """The body of every service's ``migrations/env.py``: online migrations on the configured URL.

    SQLite cannot ALTER most things, so batch mode (copy-and-move) is used there; PostgreSQL runs
    each migration in a transaction.
    """
    from alembic import context

    config = context.config
    url = config.attributes.get("database_url") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no database URL given to Alembic")
    engine = make_engine(str(url))
    try:
        with engine.begin() as connection:
            context.configure(
                connection=connection,
                target_metadata=target_metadata,
                render_as_batch=connection.dialect.name == "sqlite",
                version_table=version_table,
                compare_type=True,
            )
            context.run_migrations()
    finally:
        engine.dispose()
