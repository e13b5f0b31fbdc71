"""Recommender settings, read from ``RECOMMENDER_*`` environment variables; fail fast."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict
from qianmian_core.settings import ServiceSettings


class RecommenderSettings(ServiceSettings):
    """Settings of the recommender service and its training jobs."""

    model_config = SettingsConfigDict(env_prefix="RECOMMENDER_", extra="ignore", frozen=True)

    service_name: str = "recommender"
    port: int = Field(default=8000, ge=1, le=65535)
    database_url: str = Field(
        default="sqlite:///var/recommender.db",
        description="SQLAlchemy URL; SQLite file by default, PostgreSQL in production",
    )
    registry_dir: str = Field(
        default="var/models",
        description="Model registry: a local directory (object-store URLs are not supported yet)",
    )
    train_threads: int = Field(
        default=2, ge=1, le=256, description="Threads implicit and LightFM may use (BLAS stays at 1)"
    )
    require_model: bool = Field(
        default=False,
        description="Refuse to start without an approved model (production); locally start empty",
    )
    eval_dir: Path = Field(
        default=Path("var/eval"), description="Where `recommender eval` keeps generated data"
    )
