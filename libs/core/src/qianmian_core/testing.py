"""Test helpers: real PostgreSQL and Redis when reachable; under CI=true they must be there.

Without CI a missing server skips the test with a visible reason; with ``CI=true`` a missing server
fails the test, so CI can never go green by skipping the database tests.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlparse

import pytest
from sqlalchemy import create_engine, text

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
