"""Settings shared by every service: read from the environment, validated, fail fast."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from qianmian_core.clients import dev_client_token


class Environment(StrEnum):
    """Where a service runs. Only ``local`` and ``test`` may use dev tokens and SQLite."""

    LOCAL = "local"
    TEST = "test"
    PRODUCTION = "production"


class ServiceSettings(BaseSettings):
    """Base settings; each service subclasses it with its own ``env_prefix`` (e.g. ``PRODUCT_HUB_``).

    Values shared by all services (environment, token file) may also be given with the common
    ``QIANMIAN_`` prefix through the service prefix, e.g. ``PRODUCT_HUB_ENVIRONMENT``.
    """

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    service_name: str
    environment: Environment = Environment.LOCAL
    database_url: str = Field(description="SQLAlchemy URL; SQLite file by default, PostgreSQL in production")
    auth_tokens_file: Path = Field(
        default=Path("config/dev-tokens.yaml"),
        description="YAML file mapping bearer tokens to clients and scopes",
    )
    log_level: str = "INFO"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)

    @model_validator(mode="after")
    def _refuse_insecure_production(self) -> ServiceSettings:
        if self.environment is Environment.PRODUCTION:
            if self.database_url.startswith("sqlite"):
                raise ValueError("production refuses SQLite: set DATABASE_URL to PostgreSQL")
            if self.auth_tokens_file.name.startswith("dev-"):
                raise ValueError("production refuses the dev token file: mount real tokens")
        if self.log_level.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError(f"log_level must be DEBUG, INFO, WARNING or ERROR, not {self.log_level!r}")
        return self

    def resolve_client_token(self, token_field: str, *, dev_client: str, service: str) -> None:
        """Fill the ``SecretStr | None`` field ``token_field``, our bearer token for calling ``service``.

        A configured token is kept. Otherwise production stops with a message naming the variable to
        set, and local/test use the token of ``dev_client`` from the dev token file (``auth_tokens_file``).
        Call it from a subclass's ``mode="after"`` validator; raises ValueError (a fail-fast settings error).
        """
        if getattr(self, token_field) is not None:
            return
        if self.environment is Environment.PRODUCTION:
            variable = f"{self.model_config.get('env_prefix', '')}{token_field}".upper()
            raise ValueError(f"production needs {variable}: the token for calling {service}")
        token = dev_client_token(self.auth_tokens_file, dev_client, service)
        # The model is frozen; this runs once, while the instance is being built.
        object.__setattr__(self, token_field, SecretStr(token))


S = TypeVar("S", bound=BaseSettings)


def load_settings(cls: type[S], **overrides: Any) -> S:
    """Build settings or stop the process with a message naming every bad or missing value."""
    try:
        return cls(**overrides)
    except ValidationError as exc:
        prefix = str(cls.model_config.get("env_prefix", ""))
        lines = [f"invalid configuration for {cls.__name__}:"]
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"]) or "(settings)"
            env_name = f"{prefix}{field}".upper() if err["loc"] else prefix + "*"
            lines.append(f"  {env_name}: {err['msg']}")
        print("\n".join(lines), file=sys.stderr)
        raise SystemExit(2) from None
