"""Where the content hub's migrations live, and the calls that apply them."""

from __future__ import annotations

from pathlib import Path
from typing import Final

from qianmian_core import migrations

#: ``services/content-hub/migrations``: next to ``src/``, as in every service of the repository.
MIGRATIONS_DIR: Final[Path] = Path(__file__).resolve().parents[2] / "migrations"


def migrate(database_url: str, revision: str = "head") -> None:
    """Bring the database schema up to ``revision``."""
    migrations.upgrade(MIGRATIONS_DIR, database_url, revision)


def downgrade(database_url: str, revision: str = "base") -> None:
    """Take the database schema down to ``revision`` (``base`` drops every table)."""
    migrations.downgrade(MIGRATIONS_DIR, database_url, revision)
