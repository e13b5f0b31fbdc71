"""Rights-hub settings, read from ``RIGHTS_HUB_*`` environment variables."""

from __future__ import annotations

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict
from qianmian_core.settings import ServiceSettings


class RightsHubSettings(ServiceSettings):
    """Settings of the rights hub. Fails fast on anything missing or insecure."""

    model_config = SettingsConfigDict(env_prefix="RIGHTS_HUB_", extra="ignore", frozen=True)

    service_name: str = "rights-hub"
    port: int = Field(default=8003, ge=1, le=65535)
    database_url: str = Field(
        default="sqlite:///var/rights-hub.db",
        description="SQLAlchemy URL; SQLite file by default, PostgreSQL in production",
    )
    default_hold_seconds: int = Field(
        default=900, ge=1, le=86_400, description="How long a reservation holds budget unless asked otherwise"
    )
    max_hold_seconds: int = Field(
        default=86_400, ge=1, le=7 * 86_400, description="The longest hold a caller may ask for"
    )
    worker_threads: int = Field(
        default=16,
        ge=1,
        le=256,
        description=(
            "Threads serving requests (each holds at most one database connection). More threads than "
            "connections only adds lock and GIL contention"
        ),
    )
    expire_batch_size: int = Field(
        default=500, ge=1, le=10_000, description="Holds or grants expired per transaction by `expire`"
    )

    @model_validator(mode="after")
    def _check_holds(self) -> RightsHubSettings:
        if self.default_hold_seconds > self.max_hold_seconds:
            raise ValueError("default_hold_seconds must not exceed max_hold_seconds")
        return self
