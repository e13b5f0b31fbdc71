"""The content hub's FastAPI application.

Run with ``content-hub serve`` or ``uvicorn content_hub.main:create_app --factory --port 8002``.
"""

from __future__ import annotations

from fastapi import FastAPI
from qianmian_core.app import create_service_app
from qianmian_core.auth import TokenRegistry
from qianmian_core.db import Database
from qianmian_core.health import ReadinessCheck
from qianmian_core.settings import load_settings

import content_hub
from content_hub.api import ROUTERS
from content_hub.profile import CustomerTraitsProvider, ProfileTraitsClient
from content_hub.service import CatalogueDirectory, ContentService, ProductDirectory, Screener, ScreeningRules
from content_hub.settings import ContentHubSettings

DESCRIPTION = (
    "Content hub (内容中心): content items linked to products and rights with per-channel variants "
    "(app banner, mini-program card, push, SMS, agent call script), a maker-checker review workflow "
    "with compliance screening, every version archived, and rendering for one customer and channel."
)


def build_service(
    settings: ContentHubSettings,
    database: Database,
    profiles: CustomerTraitsProvider,
    products: ProductDirectory | None = None,
) -> ContentService:
    """The content service wired from settings (also used by the CLI's seed command)."""
    products = products or CatalogueDirectory()
    rules = ScreeningRules(
        forbidden_claims=settings.forbidden_claims,
        claim_exceptions=settings.claim_exceptions,
        risk_disclosures=settings.risk_disclosures,
        sms_signature=settings.sms_signature,
        sms_opt_out=settings.sms_opt_out,
    )
    return ContentService(database, Screener(rules, products), products, profiles)


def create_app(
    settings: ContentHubSettings | None = None, *, profiles: CustomerTraitsProvider | None = None
) -> FastAPI:
    """Build the app. ``profiles`` replaces the HTTP client of the profile service (tests)."""
    settings = settings or load_settings(ContentHubSettings)
    try:
        tokens = TokenRegistry.from_file(settings.auth_tokens_file)
    except ValueError as exc:
        raise SystemExit(f"content-hub: {exc}") from None
    database = Database(settings.database_url)
    http_client: ProfileTraitsClient | None = None
    if profiles is None:
        assert settings.profile_token is not None  # resolved by the settings validator
        http_client = ProfileTraitsClient(
            settings.profile_url,
            settings.profile_token.get_secret_value(),
            timeout_s=settings.profile_timeout_s,
        )
        profiles = http_client
    service = build_service(settings, database, profiles)

    return create_service_app(
        service=settings.service_name,
        title="Qianmian content hub",
        version=content_hub.__version__,
        description=DESCRIPTION,
        tokens=tokens,
        routers=ROUTERS,
        readiness_checks=[ReadinessCheck("database", database.ping)],
        on_shutdown=database.dispose,
        state={"settings": settings, "database": database, "content_service": service},
        async_cleanups=[http_client.aclose] if http_client is not None else [],
    )
