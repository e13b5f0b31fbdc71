"""Product-hub settings, read from ``PRODUCT_HUB_*`` environment variables."""

from __future__ import annotations

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict
from qianmian_core.clients import dev_client_token
from qianmian_core.settings import Environment, ServiceSettings


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
        if self.profile_token is not None:
            return self
        if self.environment is Environment.PRODUCTION:
            raise ValueError("production needs PRODUCT_HUB_PROFILE_TOKEN: the token for calling profile")
        token = dev_client_token(self.auth_tokens_file, self.profile_token_client, "profile")
        # The model is frozen; this runs once, while the instance is being built.
        object.__setattr__(self, "profile_token", SecretStr(token))
        return self
