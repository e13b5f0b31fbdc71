"""Fixtures for the Feast tests: a generated bank, and stores applied into temporary copies.

Each store works on a copy of ``feature_repo/`` in a temporary directory, so the real
``feature_repo/data`` and ``data/`` are never written. Redis stores use their own project
name (Redis keys end with it) in a test database and delete their keys afterwards.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
import redis
from feast import FeatureStore
from qianmian_features import FeastEnvironment, FeatureSettings, apply, materialize, open_store
from qianmian_features.testing import BankData

REPO_ROOT = Path(__file__).resolve().parents[2]
CUSTOMERS = 1_500
SEED = 20_240_601
AS_OF = date(2025, 6, 30)
POSTGRES_URL = os.environ.get("QIANMIAN_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("QIANMIAN_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def require_service(name: str, reachable: bool, detail: str) -> None:
    """Skip a test whose backing service is down, visibly; in CI (``CI=true``) fail instead.

    A skipped Redis test on a CI runner would let a broken Redis path pass unnoticed,
    while on a laptop without Redis the rest of the suite should still run.
    """
    if reachable:
        return
    message = f"{name} unreachable: {detail}"
    if os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}:
        pytest.fail(f"{message} (CI=true: services are required, not skipped)", pytrace=False)
    pytest.skip(message)


def redis_reachable(url: str) -> tuple[bool, str]:
    """Whether Redis at ``url`` answers PING within a second, and why not."""
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
        try:
            return bool(client.ping()), url
        finally:
            client.close()
    except redis.RedisError as exc:
        return False, f"{url}: {exc}"


@pytest.fixture(scope="session")
def bank(tmp_path_factory: pytest.TempPathFactory) -> BankData:
    """``CUSTOMERS`` customers from the real generator, written once per session."""
    from qianmian_bankgen.generator import generate

    out = tmp_path_factory.mktemp("bank")
    generate(customers=CUSTOMERS, seed=SEED, as_of=AS_OF, out=out)
    return BankData(out=out, as_of=datetime.combine(AS_OF + timedelta(days=1), time(), UTC))


def copy_feature_repo(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    """A copy of feature_repo/ without its local state (registry, SQLite files)."""
    target = tmp_path_factory.mktemp(name) / "feature_repo"
    shutil.copytree(REPO_ROOT / "feature_repo", target, ignore=shutil.ignore_patterns("data", "__pycache__"))
    return target


def _applied_store(settings: FeatureSettings, bank: BankData) -> FeatureStore:
    store = open_store(settings)
    apply(store)
    materialize(store, end=bank.as_of)
    return store


@pytest.fixture(scope="session")
def sqlite_store(tmp_path_factory: pytest.TempPathFactory, bank: BankData) -> FeatureStore:
    """The local environment (SQLite online store), applied and materialised up to as-of."""
    settings = FeatureSettings(
        feast_env=FeastEnvironment.LOCAL,
        feature_repo=copy_feature_repo(tmp_path_factory, "sqlite"),
        data_dir=str(bank.out),
    )
    return _applied_store(settings, bank)


@pytest.fixture(scope="session")
def redis_test_url() -> str:
    """``QIANMIAN_TEST_REDIS_URL`` (default database 15), or skip (fail under CI) without Redis."""
    reachable, detail = redis_reachable(REDIS_URL)
    require_service("Redis", reachable, detail)
    return REDIS_URL


@pytest.fixture
def repo_copy(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """Make a fresh copy of feature_repo/ (see ``copy_feature_repo``)."""
    return lambda name: copy_feature_repo(tmp_path_factory, name)


@pytest.fixture(scope="session")
def redis_store(
    tmp_path_factory: pytest.TempPathFactory, bank: BankData, redis_test_url: str
) -> Iterator[FeatureStore]:
    """The redis environment, in its own project (keys end with it); keys deleted afterwards."""
    project = f"qianmian_test_{uuid.uuid4().hex[:12]}"
    settings = FeatureSettings(
        feast_env=FeastEnvironment.REDIS,
        feature_repo=copy_feature_repo(tmp_path_factory, "redis"),
        data_dir=str(bank.out),
        feast_project=project,
        redis_url=redis_test_url,
    )
    store = _applied_store(settings, bank)
    try:
        yield store
    finally:
        delete_project_keys(redis_test_url, project)


def delete_project_keys(url: str, project: str) -> None:
    """Delete a test project's Redis keys: Feast's keys end with the project name."""
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"*{project}", count=1_000))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start : start + 500])
    finally:
        client.close()


@pytest.fixture(params=["sqlite", "redis"])
def online_store(request: pytest.FixtureRequest) -> FeatureStore:
    """Each online store in turn; the Redis one skips (or fails in CI) without Redis."""
    store: FeatureStore = request.getfixturevalue(f"{request.param}_store")
    return store


@pytest.fixture
def postgres_database() -> Iterator[dict[str, str]]:
    """A fresh PostgreSQL database, as the production yaml's POSTGRES_* variables name it."""
    url = POSTGRES_URL.replace("+psycopg", "")
    try:
        admin = psycopg.connect(url, autocommit=True, connect_timeout=2)
    except psycopg.OperationalError as exc:
        require_service("PostgreSQL", False, f"{url}: {exc}")
        raise
    name = f"qianmian_feast_{uuid.uuid4().hex[:10]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(url)
    try:
        yield {
            "POSTGRES_HOST": parts.hostname or "127.0.0.1",
            "POSTGRES_PORT": str(parts.port or 5432),
            "POSTGRES_DB": name,
            "POSTGRES_USER": parts.username or "postgres",
            "POSTGRES_PASSWORD": parts.password or "unused",  # trust auth locally
        }
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
