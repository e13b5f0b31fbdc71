"""Settings pick one yaml per environment and name every unset variable it needs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from qianmian_features import FeastEnvironment, FeatureConfigError, FeatureSettings, redis_url_to_feast

PRODUCTION_VARS = {
    "POSTGRES_HOST": "db.internal",
    "POSTGRES_PORT": "5432",
    "POSTGRES_DB": "feast",
    "POSTGRES_USER": "feast",
    "POSTGRES_PASSWORD": "s3cret",
    "REDIS_CONNECTION_STRING": "redis.internal:6379,db=0",
}


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "QIANMIAN_FEAST_ENV",
        "QIANMIAN_FEATURE_REPO",
        "QIANMIAN_DATA_DIR",
        "QIANMIAN_FEAST_PROJECT",
        "QIANMIAN_REDIS_URL",
    ):
        monkeypatch.delenv(name, raising=False)


def test_production_names_every_missing_variable() -> None:
    settings = FeatureSettings(feast_env=FeastEnvironment.PRODUCTION)
    with pytest.raises(FeatureConfigError) as caught:
        settings.render_yaml(environ={"POSTGRES_HOST": "db.internal"})
    message = str(caught.value)
    for name in (
        "POSTGRES_PORT",
        "POSTGRES_DB",
        "POSTGRES_USER",
        "POSTGRES_PASSWORD",
        "REDIS_CONNECTION_STRING",
    ):
        assert name in message
    assert "POSTGRES_HOST" not in message


def test_production_renders_sql_registry_and_redis() -> None:
    config = yaml.safe_load(
        FeatureSettings(feast_env=FeastEnvironment.PRODUCTION).render_yaml(PRODUCTION_VARS)
    )
    assert config["registry"]["registry_type"] == "sql"
    assert config["registry"]["path"] == "postgresql+psycopg://feast:s3cret@db.internal:5432/feast"
    assert config["online_store"] == {"type": "redis", "connection_string": "redis.internal:6379,db=0"}


def test_local_needs_no_variables_and_uses_sqlite() -> None:
    config = yaml.safe_load(FeatureSettings().render_yaml(environ={}))
    assert config["online_store"]["type"] == "sqlite"
    assert config["project"] == "qianmian"


def test_redis_url_setting_wins_over_the_feast_variable() -> None:
    settings = FeatureSettings(feast_env=FeastEnvironment.REDIS, redis_url="redis://:pw@cache:6380/3")
    config = yaml.safe_load(settings.render_yaml(environ={"REDIS_CONNECTION_STRING": "elsewhere:6379"}))
    assert config["online_store"]["connection_string"] == "cache:6380,db=3,password=pw"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://127.0.0.1:6379/15", "127.0.0.1:6379,db=15"),
        ("redis://cache", "cache:6379"),
        ("rediss://user:p%40ss@cache:6380/0", "cache:6380,db=0,username=user,password=p@ss,ssl=true"),
    ],
)
def test_redis_urls_become_feast_connection_strings(url: str, expected: str) -> None:
    assert redis_url_to_feast(url) == expected


def test_a_directory_without_feature_store_yaml_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a Feast repository"):
        FeatureSettings(feature_repo=tmp_path)


def test_relative_data_dir_is_made_absolute_and_urls_are_kept() -> None:
    assert Path(FeatureSettings(data_dir="data/x").resolved_data_dir).is_absolute()
    assert FeatureSettings(data_dir="s3://bank/features/").resolved_data_dir == "s3://bank/features"
    default = FeatureSettings().resolved_data_dir
    assert default.endswith("/data/bank")
