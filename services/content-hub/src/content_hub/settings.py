"""Content-hub settings, read from ``CONTENT_HUB_*`` environment variables.

List settings (forbidden claims, disclosures) are JSON arrays in the environment, e.g.
``CONTENT_HUB_FORBIDDEN_CLAIMS='["保本", "稳赚"]'``.
"""

from __future__ import annotations

from typing import Final

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict
from qianmian_core.settings import ServiceSettings

#: Claims that financial marketing may never make (CBIRC/NFRA and advertising-law practice). They are
#: matched after normalisation, so spaced, full-width or punctuated variants are caught too.
DEFAULT_FORBIDDEN_CLAIMS: Final[tuple[str, ...]] = (
    "保本",
    "保收益",
    "保证收益",
    "稳赚",
    "稳赚不赔",
    "无风险",
    "零风险",
    "最高收益",
    "收益率最高",
    "100%安全",
    "绝对安全",
    "刚性兑付",
    # Traditional-script forms seen in cross-border copy.
    "穩賺",
    "無風險",
    "零風險",
)

#: Phrases that contain a forbidden claim only to deny it (the mandatory "非保本浮动收益" wording).
DEFAULT_CLAIM_EXCEPTIONS: Final[tuple[str, ...]] = (
    "非保本",
    "不保本",
    "不承诺保本",
    "不保证收益",
    "不承诺收益",
    "并非无风险",
)

#: Risk disclosures accepted on content about an R2-R5 product (any one of them, after normalisation).
DEFAULT_RISK_DISCLOSURES: Final[tuple[str, ...]] = ("理财非存款、产品有风险、投资须谨慎",)


class ContentHubSettings(ServiceSettings):
    """Settings of the content hub. Fails fast on anything missing or insecure."""

    model_config = SettingsConfigDict(env_prefix="CONTENT_HUB_", extra="ignore", frozen=True)

    service_name: str = "content-hub"
    port: int = Field(default=8002, ge=1, le=65535)
    database_url: str = Field(
        default="sqlite:///var/content-hub.db",
        description="SQLAlchemy URL; SQLite file by default, PostgreSQL in production",
    )
    profile_url: str = Field(
        default="http://127.0.0.1:8004", description="Base URL of the profile service (placeholder facts)"
    )
    profile_timeout_s: float = Field(
        default=0.5, gt=0, le=30, description="Timeout of one call to profile; past it, render degrades"
    )
    profile_token: SecretStr | None = Field(
        default=None,
        description=(
            "Bearer token content-hub presents to the profile service. Required in production; "
            "locally it defaults to the token of the dev client named by profile_token_client"
        ),
    )
    profile_token_client: str = Field(
        default="content-hub",
        description="Local/test only: the client in the dev token file whose token is used for profile",
    )
    forbidden_claims: tuple[str, ...] = Field(
        default=DEFAULT_FORBIDDEN_CLAIMS, min_length=1, description="Claims screening refuses"
    )
    claim_exceptions: tuple[str, ...] = Field(
        default=DEFAULT_CLAIM_EXCEPTIONS, description="Negating phrases a forbidden claim may appear in"
    )
    risk_disclosures: tuple[str, ...] = Field(
        default=DEFAULT_RISK_DISCLOSURES,
        min_length=1,
        description="Accepted risk disclosure texts for R2-R5 products (any one of them)",
    )
    sms_signature: str = Field(
        default="【千面银行】", min_length=3, max_length=12, description="Signature put before every SMS"
    )
    sms_opt_out: str = Field(
        default="拒收请回复R", max_length=12, description="Opt-out instruction put after every marketing SMS"
    )

    @model_validator(mode="after")
    def _resolve_profile_token(self) -> ContentHubSettings:
        if not self.profile_url.startswith(("http://", "https://")):
            raise ValueError("profile_url must be an http:// or https:// URL")
        if any(not claim.strip() for claim in self.forbidden_claims):
            raise ValueError("forbidden_claims must not contain empty entries")
        self.resolve_client_token("profile_token", dev_client=self.profile_token_client, service="profile")
        return self
