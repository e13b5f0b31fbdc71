"""Where the content hub's migrations live, and the calls that apply them."""

from __future__ import annotations

from pathlib import Path
from typing import Final

from qianmian_core.migrations import ServiceMigrations

#: ``services/content-hub/migrations``: next to ``src/``, as in every service of the repository.
MIGRATIONS: Final[ServiceMigrations] = ServiceMigrations.beside(__file__)
MIGRATIONS_DIR: Final[Path] = MIGRATIONS.script_location
migrate = MIGRATIONS.migrate
downgrade = MIGRATIONS.downgrade
