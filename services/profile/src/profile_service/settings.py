"""Profile service settings: ``PROFILE_*`` environment variables, validated at start-up."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict
from qianmian_core.settings import ServiceSettings


class ProfileSettings(ServiceSettings):
    """Settings of the profile service (env prefix ``PROFILE_``)."""

    model_config = SettingsConfigDict(env_prefix="PROFILE_", extra="ignore", frozen=True)

    service_name: str = "profile"
    port: int = Field(default=8004, ge=1, le=65535)
    database_url: str = Field(
        default="sqlite:///var/profile.db",
        description="SQLAlchemy URL; SQLite file by default, PostgreSQL in production",
    )
    feast_push_enabled: bool = Field(
        default=True,
        description="Push derived activity features to Feast's customer_activity_push after each change "
        "(the store itself is chosen by qianmian_features: QIANMIAN_FEAST_ENV, QIANMIAN_FEATURE_REPO)",
    )
    outbox_batch_size: int = Field(default=500, ge=1, le=100_000, description="Feature pushes per flush")
    recent_moments: int = Field(default=20, ge=1, le=500, description="Moments shown in the 360 view")
    changes_settle_seconds: float = Field(
        default=2.0,
        ge=0,
        le=60,
        description="GET /v1/changes holds back rows after a gap in seq until the row after the gap is "
        "this old (PostgreSQL can commit sequence numbers out of order; see service/changes.py)",
    )
