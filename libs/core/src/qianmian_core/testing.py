"""Test helpers: real PostgreSQL and Redis when reachable; under CI=true they must be there.

Without CI a missing server skips the test with a visible reason; with ``CI=true`` a missing server
fails the test, so CI can never go green by skipping the database tests.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlparse

import pytest
from sqlalchemy import MetaData, create_engine, inspect, text

from qianmian_core import migrations
from qianmian_core.db import Database, make_engine

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def in_ci() -> bool:
    """True when running under CI (CI=true)."""
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def _require(kind: str, url: str, default_port: int) -> str:
    parsed = urlparse(url.replace("+psycopg", ""))
    host, port = parsed.hostname or "127.0.0.1", parsed.port or default_port
    if _reachable(host, port):
        return url
    message = f"{kind} not reachable at {host}:{port}"
    if in_ci():
        pytest.fail(f"{message} (CI=true: {kind} tests must run, not skip)")
    pytest.skip(f"{message}; set up {kind} or QIANMIAN_TEST_{kind.upper()}_URL to run this test")


def postgres_url() -> str:
    """URL of the PostgreSQL admin database for tests, or skip/fail (see module doc)."""
    return _require("postgres", os.environ.get("QIANMIAN_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL), 5432)


def redis_url() -> str:
    """URL of the Redis server for tests, or skip/fail (see module doc)."""
    return _require("redis", os.environ.get("QIANMIAN_TEST_REDIS_URL", DEFAULT_REDIS_URL), 6379)


@contextmanager
def temporary_postgres_database(prefix: str = "qianmian_test") -> Iterator[str]:
    """Create an empty PostgreSQL database for one test module and drop it afterwards."""
    admin_url = postgres_url()
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        base = admin_url.rsplit("/", 1)[0]
        yield f"{base}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def dev_token(client: str, tokens_file: str = "config/dev-tokens.yaml") -> str:
    """The dev bearer token of ``client`` from the documented dev token file."""
    import yaml

    data = yaml.safe_load(open(tokens_file, encoding="utf-8"))  # noqa: SIM115 - tiny file
    return str(data["clients"][client]["token"])


def auth_headers(client: str, tokens_file: str = "config/dev-tokens.yaml") -> dict[str, str]:
    """``Authorization`` header for a dev client, for API tests."""
    return {"Authorization": f"Bearer {dev_token(client, tokens_file)}"}


#: ``params=`` of a fixture (or ``parametrize`` values) that runs a test on each dialect we ship;
#: the PostgreSQL case carries the ``postgres`` mark and skips or fails as :func:`postgres_url` says.
SQLITE_AND_POSTGRES: Final[list[Any]] = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@contextmanager
def empty_database_url(dialect: str, directory: Path, name: str) -> Iterator[str]:
    """URL of an empty database: a SQLite file ``name.db`` in ``directory``, or a temporary PostgreSQL one.

    ``dialect`` is one of :data:`SQLITE_AND_POSTGRES`; ``name`` prefixes the PostgreSQL database.
    """
    if dialect == "sqlite":
        yield f"sqlite:///{directory / f'{name}.db'}"
    else:
        with temporary_postgres_database(name) as url:
            yield url


@contextmanager
def migrated_database(
    dialect: str, directory: Path, name: str, migrate: Callable[[str], None]
) -> Iterator[Database]:
    """A :class:`Database` on an empty database (see :func:`empty_database_url`) migrated to head."""
    with empty_database_url(dialect, directory, name) as url:
        migrate(url)
        database = Database(url)
        try:
            yield database
        finally:
            database.dispose()


def migrated_sqlite_template(directory: Path, filename: str, migrate: Callable[[str], None]) -> Path:
    """A SQLite file migrated to head once per session, for :func:`copy_of_sqlite` to copy per test.

    Copying a file is much faster than migrating a fresh database for every test.
    """
    path = directory / filename
    migrate(f"sqlite:///{path}")
    return path


def copy_of_sqlite(template: Path, directory: Path) -> str:
    """URL of a private copy of the SQLite file ``template`` in ``directory``."""
    target = directory / template.name
    shutil.copyfile(template, target)
    return f"sqlite:///{target}"


def table_names(database_url: str) -> set[str]:
    """The names of the tables the database holds."""
    engine = make_engine(database_url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def assert_schema_matches(database_url: str, metadata: MetaData) -> None:
    """Autogenerate finds no difference between the database's schema and the models' ``metadata``."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, metadata) == []
    finally:
        engine.dispose()


def assert_migrations_round_trip(
    script_location: Path, database_url: str, metadata: MetaData, tables: set[str]
) -> None:
    """On an empty database: upgrade to head creates ``tables`` exactly as the models describe them,
    downgrade to base leaves nothing behind, and upgrade works again afterwards."""
    head = migrations.head_revision(script_location)
    migrations.upgrade(script_location, database_url)
    assert migrations.current_revision(database_url) == head
    assert tables <= table_names(database_url)
    assert_schema_matches(database_url, metadata)
    migrations.downgrade(script_location, database_url)
    assert migrations.current_revision(database_url) is None
    assert table_names(database_url) <= {"alembic_version"}
    migrations.upgrade(script_location, database_url)  # and back up again: downgrade left nothing behind
    assert migrations.current_revision(database_url) == head


def assert_error(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    """The response has ``status`` and the one error shape (and ``code`` when given); its ``error``."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    if code is not None:
        assert body["error"]["code"] == code, body
    error: dict[str, Any] = body["error"]
    return error


@contextmanager
def logging_restored() -> Iterator[None]:
    """Put structlog's configuration and the root logger back as they were (e.g. around a CLI call,
    which configures logging onto the current stdout: pytest's capture)."""
    import structlog

    config = structlog.get_config()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield
    finally:
        structlog.configure(**config)
        root.handlers, root.level = handlers, level
        structlog.contextvars.clear_contextvars()


def cli_environment(
    monkeypatch: pytest.MonkeyPatch, prefix: str, database_url: str, tokens_file: Path
) -> str:
    """Point a service's CLI (settings read from ``{prefix}*`` variables) at a database; its URL."""
    monkeypatch.setenv(f"{prefix}DATABASE_URL", database_url)
    monkeypatch.setenv(f"{prefix}AUTH_TOKENS_FILE", str(tokens_file))
    monkeypatch.setenv(f"{prefix}LOG_LEVEL", "WARNING")
    return database_url
