"""The recommender's FastAPI application (models half; the decision API comes with issue 6).

Run with ``recommender serve`` or ``uvicorn recommender.main:create_app --factory --port 8000``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import FastAPI
from qianmian_core.app import create_service_app
from qianmian_core.auth import TokenRegistry
from qianmian_core.db import Database
from qianmian_core.health import ReadinessCheck
from qianmian_core.logging import get_logger
from qianmian_core.settings import load_settings

import recommender
from recommender.api import DIRECT_ROUTES, ROUTERS
from recommender.database import open_database
from recommender.ml.registry import ModelRegistry
from recommender.repository.snapshots import SnapshotRepository
from recommender.service.audit import GroupCommitAuditWriter
from recommender.service.context import (
    ChangeFeedClient,
    ChangeSource,
    CustomerContextSource,
    FeastFeatureReader,
    FeatureReader,
)
from recommender.service.decisions import DecisionService
from recommender.service.experiments import ExperimentService, opt_out_recorder
from recommender.service.feedback import FeedbackService
from recommender.service.grants import RightsGrantClient, RightsGranter
from recommender.service.holder import ModelHolder
from recommender.service.housekeeping import Housekeeping
from recommender.service.hub_cache import ContentHubClient, HubCache, ProductHubClient, RightsHubClient
from recommender.service.outbound import OutboundService
from recommender.service.outbound_sources import (
    ContentRenderClient,
    ContentRenderer,
    CustomerFactsClient,
    CustomerPages,
)
from recommender.service.profile import ProfileClient, ProfileSource
from recommender.service.ranker import FeastRankerStore, RankerStage
from recommender.settings import RecommenderSettings

log = get_logger(__name__)

DESCRIPTION = (
    "Recommender: holds the newest approved model of the registry (ALS, BPR, LightFM hybrid or a "
    "popularity baseline) and reloads it on SIGHUP or POST /v1/models/reload without dropping requests."
)


def current_catalogue() -> list[str]:
    """Product ids of the catalogue the recommender serves (the seed catalogue until product-hub syncs)."""
    from qianmian_bankgen.catalogue import CATALOGUE

    return [p.product_id for p in CATALOGUE]


def _ranker_stage(
    settings: RecommenderSettings, holder: ModelHolder, database: Database
) -> RankerStage | None:
    """The ranker stage when ``RECOMMENDER_RANKER_STORE`` names its feature store; it (re)loads the
    newest approved ranker whenever the holder reloads (start-up, SIGHUP, ``POST /v1/models/reload``)."""
    if settings.ranker_store is None:
        return None
    try:
        store = FeastRankerStore(settings.ranker_store, sdk=settings.feature_reads == "sdk")
    except (OSError, ValueError) as exc:
        raise SystemExit(f"recommender: RECOMMENDER_RANKER_STORE: {exc}") from None

    def save_products(key: str, rows: list[dict[str, Any]]) -> None:
        with database.session() as session:
            SnapshotRepository(session).save(key, rows, datetime.now(UTC))

    stage = RankerStage(
        holder.registry,
        store,
        holder.catalogue,
        save_products=save_products,
        cache_ttl_s=settings.ranker_cache_ttl_s,
    )
    holder.after_reload(stage.reload)
    return stage


def create_app(
    settings: RecommenderSettings | None = None,
    *,
    catalogue: list[str] | None = None,
    install_signal: bool = True,
    hub_cache: HubCache | None = None,
    profile: ProfileSource | None = None,
    audit: GroupCommitAuditWriter | None = None,
    features: FeatureReader | None = None,
    changes: ChangeSource | None = None,
    rights_grants: RightsGranter | None = None,
    customer_pages: CustomerPages | None = None,
    content_renderer: ContentRenderer | None = None,
) -> FastAPI:
    """Build the app; the model is loaded at start-up (``on_startup``), the hub cache and the audit
    writer start at start-up too (``async_startups``). Tests may pass their own hub cache, profile
    source, feature reader, change feed and audit writer (e.g. clients over ``httpx.ASGITransport``).
    Without a ``profile``, the profile service's change feed keeps the context cache honest; with
    one and no ``changes``, cached profile entries live ``profile_cache_ttl_s``."""
    settings = settings or load_settings(RecommenderSettings)
    try:
        tokens = TokenRegistry.from_file(settings.auth_tokens_file)
    except ValueError as exc:
        raise SystemExit(f"recommender: {exc}") from None
    holder = ModelHolder(ModelRegistry(settings.registry_dir), catalogue or current_catalogue())

    def start() -> None:
        result = holder.reload()
        if result.version is None:
            if settings.require_model:
                raise SystemExit("recommender: no approved model in the registry (RECOMMENDER_REQUIRE_MODEL)")
            log.warning("serving_without_model", registry=settings.registry_dir)
        if install_signal:
            holder.install_sighup()

    database = open_database(settings.database_url)
    audit_writer = audit or GroupCommitAuditWriter(
        database,
        max_wait_ms=settings.audit_group_wait_ms,
        process=settings.audit_writer == "process" and database.shareable,
    )
    cleanups: list[Callable[[], Awaitable[None]]] = []
    if hub_cache is None:
        hubs_token = settings.hubs_token.get_secret_value() if settings.hubs_token else ""
        timeout = settings.dependency_timeout_s
        hub_clients = (
            ProductHubClient(settings.product_hub_url, hubs_token, timeout_s=timeout),
            ContentHubClient(settings.content_hub_url, hubs_token, timeout_s=timeout),
            RightsHubClient(settings.rights_hub_url, hubs_token, timeout_s=timeout),
        )
        hub_cache = HubCache(*hub_clients, settings.hub_cache_config())
        cleanups.extend(client.aclose for client in hub_clients)
    if profile is None:
        profile_token = settings.profile_token.get_secret_value() if settings.profile_token else ""
        profile_client = ProfileClient(
            settings.profile_url, profile_token, timeout_s=settings.dependency_timeout_s
        )
        cleanups.append(profile_client.aclose)
        profile = profile_client
        if changes is None:
            feed = ChangeFeedClient(
                settings.profile_url, profile_token, timeout_s=settings.dependency_timeout_s
            )
            cleanups.append(feed.aclose)
            changes = feed
    if features is None and settings.features_enabled:
        features = FeastFeatureReader(sdk=settings.feature_reads == "sdk")
    context = CustomerContextSource(profile, features, changes=changes, config=settings.context_config())
    experiments = ExperimentService(
        database,
        holdout=settings.experiment_holdout(),
        attribution_window=timedelta(days=settings.experiments_attribution_days),
        cache_ttl_s=settings.experiments_cache_ttl_s,
    )
    context.on_consent = opt_out_recorder(profile, experiments)
    ranker = _ranker_stage(settings, holder, database)
    decisions = DecisionService(
        database=database,
        audit=audit_writer,
        hub_cache=hub_cache,
        context=context,
        holder=holder,
        contact_policy=settings.contact_policy,
        arbitration=settings.arbitration,
        moment_window=timedelta(days=settings.moment_window_days),
        experiments=experiments,
        ranker=ranker,
    )

    # --- POST /v1/feedback: converted rights are granted through rights-hub (tests pass rights_grants) ---
    if rights_grants is None:
        grants_client = RightsGrantClient(
            settings.rights_hub_url,
            settings.hubs_token.get_secret_value() if settings.hubs_token else "",
            timeout_s=settings.rights_grant_timeout_s,
        )
        cleanups.append(grants_client.aclose)
        rights_grants = grants_client
    feedback = FeedbackService(
        database=database,
        rights=rights_grants,
        contact_policy=settings.contact_policy,
        on_cooldown=decisions.ledger.forget,
        on_shown=decisions.ledger.shown,
        experiments=experiments,
    )
    housekeeping = Housekeeping(feedback, interval_s=settings.housekeeping_interval_s)
    # --- end of POST /v1/feedback ---

    # --- /v1/outbound/lists: profile's customer pages and content-hub's rendering (tests pass both) ---
    if customer_pages is None:
        pages_client = CustomerFactsClient(
            settings.profile_url,
            settings.profile_token.get_secret_value() if settings.profile_token else "",
            timeout_s=settings.outbound_profile_timeout_s,
        )
        cleanups.append(pages_client.aclose)
        customer_pages = pages_client
    if content_renderer is None:
        render_client = ContentRenderClient(
            settings.content_hub_url,
            settings.hubs_token.get_secret_value() if settings.hubs_token else "",
            timeout_s=settings.dependency_timeout_s * 10,
        )
        cleanups.append(render_client.aclose)
        content_renderer = render_client
    outbound = OutboundService(
        decisions=decisions,
        pages=customer_pages,
        renderer=content_renderer,
        outbound_dir=settings.outbound_dir,
        page_size=settings.outbound_page_size,
        batch_size=settings.outbound_batch_size,
    )
    # --- end of /v1/outbound/lists ---

    def model_ready() -> None:
        if settings.require_model:
            holder.require()

    return create_service_app(
        service=settings.service_name,
        title="Qianmian recommender",
        version=recommender.__version__,
        description=DESCRIPTION,
        tokens=tokens,
        routers=ROUTERS,
        direct_routes=DIRECT_ROUTES,
        readiness_checks=[ReadinessCheck("model", model_ready)],
        on_startup=start,
        on_shutdown=database.dispose,
        state={
            "settings": settings,
            "model_holder": holder,
            "decisions": decisions,
            "hub_cache": hub_cache,
            "feedback": feedback,
            "outbound": outbound,
            "experiments": experiments,
        },
        async_startups=[hub_cache.start, audit_writer.start, context.start, housekeeping.start],
        async_cleanups=[housekeeping.stop, context.stop, audit_writer.stop, hub_cache.stop, *cleanups],
    )
