"""Recommender settings, read from ``RECOMMENDER_*`` environment variables; fail fast."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict
from qianmian_core.settings import ServiceSettings

from recommender.experiments.assignment import DEFAULT_HOLDOUT_SALT, Holdout
from recommender.service.arbitration import ArbitrationConfig
from recommender.service.context import ContextConfig
from recommender.service.hub_cache import MAX_TTL_S, HubCacheConfig
from recommender.service.policies import ContactPolicy


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
    ranker_store: Path | None = Field(
        default=None,
        description="The LightGBM ranker's Feast repo (`recommender train-ranker --workdir DIR` leaves it "
        "in DIR/repo, its online store loaded with the newest snapshot). Set: personalised decisions are "
        "ranked by the newest approved ranker's P(add); unset: by the candidates' base scores",
    )
    ranker_cache_ttl_s: float = Field(
        default=300.0,
        ge=0,
        le=3600,
        description="How long a customer's ranker features (and the product view) are held in memory",
    )
    require_model: bool = Field(
        default=False,
        description="Refuse to start without an approved model (production); locally start empty",
    )
    eval_dir: Path = Field(
        default=Path("var/eval"), description="Where `recommender eval` keeps generated data"
    )
    hub_cache_ttl_s: float = Field(
        default=15.0,
        gt=0,
        le=MAX_TTL_S,
        description="Refresh interval of the product, content and rights snapshots (≤ 30 s)",
    )
    hub_cache_max_staleness_s: float = Field(
        default=MAX_TTL_S,
        gt=0,
        le=MAX_TTL_S,
        description="Beyond this age content and rights are unavailable and the catalogue degraded (≤ 30 s)",
    )
    arbitration: ArbitrationConfig = Field(
        default_factory=ArbitrationConfig,
        description="Moment weights, business levers (per product, type, campaign), no-repeat window; JSON",
    )

    contact_policy: ContactPolicy = Field(
        default_factory=ContactPolicy,
        description="Contact caps, cool-down and quiet hours of the decision API; JSON",
    )
    features_enabled: bool = Field(
        default=True,
        description="Read customer features from the Feast online store (QIANMIAN_FEAST_ENV picks it); "
        "off: every decision takes the fallback path (features_unavailable)",
    )
    audit_group_wait_ms: float = Field(
        default=2.0,
        ge=0,
        le=50,
        description="The most the audit writer waits, once it has a record, for more to share the "
        "commit: it commits as soon as the event loop has no request left to finish (records that "
        "queue while a commit runs join the next one anyway); 0 commits at once",
    )
    audit_writer: Literal["process", "thread"] = Field(
        default="process",
        description="Where the audit writer's database work runs: `process` in a process of its own "
        "(slots, identifier checks, inserts and commits on another core; the decision is still answered "
        "only after its commit), `thread` in a thread of the serving process. An in-memory SQLite "
        "database always uses the thread (another process cannot open it)",
    )
    feature_reads: Literal["direct", "sdk"] = Field(
        default="direct",
        description="How online features (the ranker's too) are read: `direct` asks Feast's online store "
        "for the rows with the feature views resolved once a minute (qianmian_features.online; the same "
        "values, about a tenth of the SDK's work for a batch); `sdk` calls the Feast SDK's "
        "get_online_features every time",
    )
    feature_cache_ttl_s: float = Field(
        default=300.0,
        ge=0,
        le=3600,
        description="How long a customer's Feast features are held in memory before the online store is "
        "read again; 0 reads Feast per request. Freshness is checked from the event timestamps on every "
        "use either way, and profile's change feed (consents, risk, moments) evicts an entry at once; "
        "keep it below the materialisation interval",
    )
    profile_cache_ttl_s: float = Field(
        default=300.0,
        ge=0,
        le=86_400,
        description="Upper bound on a cached profile entry (evicted earlier by profile's change feed)",
    )
    change_poll_s: float = Field(default=1.0, gt=0, le=60, description="Profile change-feed poll interval")
    max_feed_lag_s: float = Field(
        default=5.0,
        gt=0,
        le=300,
        description="When the change feed was last read longer ago than this, profile is read per request",
    )
    moment_window_days: int = Field(
        default=7, ge=0, le=90, description="A moment from the activity features triggers rules this long"
    )
    profile_url: str = Field(default="http://127.0.0.1:8004", description="Base URL of the profile service")
    product_hub_url: str = Field(default="http://127.0.0.1:8001", description="Base URL of product-hub")
    content_hub_url: str = Field(default="http://127.0.0.1:8002", description="Base URL of content-hub")
    rights_hub_url: str = Field(default="http://127.0.0.1:8003", description="Base URL of rights-hub")
    dependency_timeout_s: float = Field(
        default=0.5, gt=0, le=30, description="Timeout of one call to profile or a hub"
    )
    rights_grant_timeout_s: float = Field(
        default=2.0,
        gt=0,
        le=30,
        description="Timeout of one grant call to rights-hub (POST /v1/feedback, convert); on timeout "
        "the grant is pending_retry and retried under the same Idempotency-Key",
    )
    profile_token: SecretStr | None = Field(
        default=None, description="Bearer token for the profile service (required in production)"
    )
    hubs_token: SecretStr | None = Field(
        default=None,
        description="Bearer token for product-hub, content-hub and rights-hub (required in production)",
    )
    outbound_dir: Path = Field(
        default=Path("var/outbound"), description="Where outbound lists' CSV files are written"
    )
    outbound_page_size: int = Field(
        default=2000, ge=1, le=5000, description="Customers per page of an outbound list's profile scan"
    )
    outbound_batch_size: int = Field(
        default=500, ge=1, le=10_000, description="Rows per transaction (contact slots + audit records)"
    )
    outbound_profile_timeout_s: float = Field(
        default=30.0, gt=0, le=300, description="Timeout of one page of profile's customer scan"
    )
    housekeeping_interval_s: float = Field(
        default=60.0,
        ge=0,
        le=3600,
        description="Seconds between retries of pending rights grants and purges of old feedback keys "
        "(0: never, e.g. when a separate job does it)",
    )
    experiments_attribution_days: int = Field(
        default=7, ge=1, le=90, description="A conversion counts for an experiment arm exposed this recently"
    )
    experiments_holdout_share: float = Field(
        default=0.0,
        ge=0,
        le=0.5,
        description="Share of customers in the global holdout (no personalised marketing, no experiment)",
    )
    experiments_holdout_salt: str = Field(
        default=DEFAULT_HOLDOUT_SALT,
        min_length=1,
        max_length=64,
        description="Hash salt of the global holdout; fixed for good (changing it reshuffles the holdout)",
    )
    experiments_cache_ttl_s: float = Field(
        default=30.0, ge=0, le=3600, description="How long the running experiments are cached per process"
    )
    peer_token_client: str = Field(
        default="recommender",
        description="Local/test only: the dev client whose token is used for profile and the hubs",
    )

    @model_validator(mode="after")
    def _hub_cache_consistent(self) -> RecommenderSettings:
        self.hub_cache_config()  # fail at start-up when the bound is shorter than one refresh
        for name in ("profile_url", "product_hub_url", "content_hub_url", "rights_hub_url"):
            if not str(getattr(self, name)).startswith(("http://", "https://")):
                raise ValueError(f"{name} must be an http:// or https:// URL")
        self.resolve_client_token("profile_token", dev_client=self.peer_token_client, service="profile")
        self.resolve_client_token("hubs_token", dev_client=self.peer_token_client, service="the hubs")
        return self

    def context_config(self) -> ContextConfig:
        """The customer-context cache's bounds."""
        return ContextConfig(
            profile_ttl_s=self.profile_cache_ttl_s,
            feature_ttl_s=self.feature_cache_ttl_s,
            change_poll_s=self.change_poll_s,
            max_feed_lag_s=self.max_feed_lag_s,
        )

    def experiment_holdout(self) -> Holdout:
        """The global holdout of experiments."""
        return Holdout(salt=self.experiments_holdout_salt, share=self.experiments_holdout_share)

    def hub_cache_config(self) -> HubCacheConfig:
        """The hub cache's refresh interval and staleness bound."""
        return HubCacheConfig(ttl_s=self.hub_cache_ttl_s, max_staleness_s=self.hub_cache_max_staleness_s)
