"""Which Feast environment to open, read from the environment, validated, fail fast."""

from __future__ import annotations

import os
import re
from enum import StrEnum
from pathlib import Path
from urllib.parse import unquote, urlsplit

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class FeatureConfigError(RuntimeError):
    """The feature store cannot be opened with the given configuration."""


class FeastEnvironment(StrEnum):
    """One ``feature_store.yaml`` per environment (see feature_repo/README.md)."""

    LOCAL = "local"  # SQLite online store, file registry, parquet offline store
    REDIS = "redis"  # Redis online store, file registry, parquet offline store
    PRODUCTION = "production"  # Redis online store, SQL registry in PostgreSQL


_YAML_BY_ENV: dict[FeastEnvironment, Path] = {
    FeastEnvironment.LOCAL: Path("feature_store.yaml"),
    FeastEnvironment.REDIS: Path("environments/redis/feature_store.yaml"),
    FeastEnvironment.PRODUCTION: Path("environments/production/feature_store.yaml"),
}

_SOURCE_TREE_REPO = Path(__file__).resolve().parents[4] / "feature_repo"
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _default_feature_repo() -> Path:
    # An installed wheel has no source tree beside it: then the repo must sit in the
    # working directory (as in the container image) or be named by QIANMIAN_FEATURE_REPO.
    for candidate in (_SOURCE_TREE_REPO, Path.cwd() / "feature_repo"):
        if (candidate / "feature_store.yaml").is_file():
            return candidate
    return _SOURCE_TREE_REPO


class FeatureSettings(BaseSettings):
    """Settings of the feature store, from ``QIANMIAN_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="QIANMIAN_", extra="ignore", frozen=True)

    feast_env: FeastEnvironment = Field(
        default=FeastEnvironment.LOCAL, description="QIANMIAN_FEAST_ENV: local, redis or production"
    )
    feature_repo: Path = Field(
        default_factory=_default_feature_repo, description="QIANMIAN_FEATURE_REPO: the Feast repository"
    )
    data_dir: str = Field(
        default="",
        description="QIANMIAN_DATA_DIR: bankgen --out directory or object-store URL; "
        "default <feature_repo>/../data/bank",
    )
    feast_project: str | None = Field(
        default=None, description="QIANMIAN_FEAST_PROJECT: overrides the yaml's project (tests, tenants)"
    )
    redis_url: str | None = Field(
        default=None,
        description="QIANMIAN_REDIS_URL: redis://[:password@]host:port/db; when set, it "
        "replaces REDIS_CONNECTION_STRING (Feast's host:port,db=N form)",
    )

    @field_validator("feature_repo")
    @classmethod
    def _repo_exists(cls, value: Path) -> Path:
        value = value.expanduser().resolve()
        if not (value / "feature_store.yaml").is_file():
            raise ValueError(f"{value} is not a Feast repository (no feature_store.yaml)")
        return value

    @property
    def yaml_path(self) -> Path:
        """The ``feature_store.yaml`` of the chosen environment."""
        return self.feature_repo / _YAML_BY_ENV[self.feast_env]

    @property
    def resolved_data_dir(self) -> str:
        """Absolute data directory (or URL), as the repo's ``sources.py`` will read it."""
        if not self.data_dir:
            return str((self.feature_repo.parent / "data" / "bank").resolve())
        if "://" in self.data_dir:
            return self.data_dir.rstrip("/")
        return str(Path(self.data_dir).expanduser().resolve())

    def yaml_variables(self, environ: dict[str, str] | None = None) -> dict[str, str]:
        """Values for the ``${VARS}`` of the yaml: the process environment plus derived ones."""
        variables = dict(os.environ if environ is None else environ)
        if self.redis_url:  # our own setting wins over Feast's variable
            variables["REDIS_CONNECTION_STRING"] = redis_url_to_feast(self.redis_url)
        return variables

    def render_yaml(self, environ: dict[str, str] | None = None) -> str:
        """The environment's yaml with every ``${VAR}`` substituted; unset ones are an error.

        Feast itself uses ``os.path.expandvars``, which leaves an unset ``${VAR}`` in place
        and fails later with an obscure connection error; this names the variable instead.
        """
        # comment lines are dropped: they may mention variables the config does not use
        lines = self.yaml_path.read_text(encoding="utf-8").splitlines()
        text = "\n".join(line for line in lines if not line.lstrip().startswith("#"))
        variables = self.yaml_variables(environ)
        missing = sorted({name for name in _ENV_REF.findall(text) if not variables.get(name)})
        if missing:
            raise FeatureConfigError(
                f"{self.yaml_path} ({self.feast_env.value}) needs environment variables: {', '.join(missing)}"
            )
        return _ENV_REF.sub(lambda match: variables[match.group(1)], text) + "\n"


def redis_url_to_feast(url: str) -> str:
    """Turn ``redis://[user:password@]host:port/db`` into Feast's ``host:port,db=N,...`` form."""
    parts = urlsplit(url)
    if parts.scheme not in {"redis", "rediss"} or not parts.hostname:
        raise FeatureConfigError(f"not a redis:// URL: {url!r}")
    options = [f"{parts.hostname}:{parts.port or 6379}"]
    db = parts.path.strip("/")
    if db:
        if not db.isdigit():
            raise FeatureConfigError(f"redis database must be a number in {url!r}")
        options.append(f"db={db}")
    if parts.username:
        options.append(f"username={unquote(parts.username)}")
    if parts.password:
        options.append(f"password={unquote(parts.password)}")
    if parts.scheme == "rediss":
        options.append("ssl=true")
    return ",".join(options)
