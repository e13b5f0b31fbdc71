"""Product-hub settings, read from ``PRODUCT_HUB_*`` environment variables."""

from __future__ import annotations

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict
from qianmian_core.settings import ServiceSettings


class ProductHubSettings(ServiceSettings):
    """Settings of the product hub. Fails fast on anything missing or insecure."""

    model_config = SettingsConfigDict(env_prefix="PRODUCT_HUB_", extra="ignore", frozen=True)

    service_name: str = "product-hub"
    port: int = Field(default=8001, ge=1, le=65535)
    database_url: str = Field(
        default="sqlite:///var/product-hub.db",
        description="SQLAlchemy URL; SQLite file by default, PostgreSQL in production",
    )
    profile_url: str = Field(
        default="http://127.0.0.1:8004", description="Base URL of the profile service (eligibility facts)"
    )
    profile_timeout_s: float = Field(default=1.0, gt=0, le=30, description="Timeout of one call to profile")
    profile_token: SecretStr | None = Field(
        default=None,
        description=(
            "Bearer token product-hub presents to the profile service. Required in production; "
            "locally it defaults to the token of the dev client named by profile_token_client"
        ),
    )
    profile_token_client: str = Field(
        default="recommender",
        description="Local/test only: the client in the dev token file whose token is used for profile",
    )

    @model_validator(mode="after")
    def _resolve_profile_token(self) -> ProductHubSettings:
        if not self.profile_url.startswith(("http://", "https://")):
            raise ValueError("profile_url must be an http:// or https:// URL")
        self.resolve_client_token("profile_token", dev_client=self.profile_token_client, service="profile")
        return self
