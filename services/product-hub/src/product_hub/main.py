"""The product hub's FastAPI application.

Run with ``product-hub serve`` or ``uvicorn product_hub.main:create_app --factory --port 8001``.
"""

from __future__ import annotations

from fastapi import FastAPI
from qianmian_core.app import create_service_app
from qianmian_core.auth import TokenRegistry
from qianmian_core.db import Database
from qianmian_core.health import ReadinessCheck
from qianmian_core.settings import load_settings

import product_hub
from product_hub.api import ROUTERS
from product_hub.facts import CustomerFactsProvider, ProfileFactsClient
from product_hub.service import ProductService
from product_hub.settings import ProductHubSettings

DESCRIPTION = (
    "Product hub (产品中心): the catalogue of products with risk ratings, eligibility rules as data, "
    "channels, sale windows and quotas; a maker-checker approval workflow; and the list of products a "
    "customer may be offered."
)


def create_app(
    settings: ProductHubSettings | None = None, *, facts_provider: CustomerFactsProvider | None = None
) -> FastAPI:
    """Build the app. ``facts_provider`` replaces the HTTP client of the profile service (tests)."""
    settings = settings or load_settings(ProductHubSettings)
    try:
        tokens = TokenRegistry.from_file(settings.auth_tokens_file)
    except ValueError as exc:
        raise SystemExit(f"product-hub: {exc}") from None
    database = Database(settings.database_url)
    http_client: ProfileFactsClient | None = None
    if facts_provider is None:
        assert settings.profile_token is not None  # resolved by the settings validator
        http_client = ProfileFactsClient(
            settings.profile_url,
            settings.profile_token.get_secret_value(),
            timeout_s=settings.profile_timeout_s,
        )
        facts_provider = http_client
    service = ProductService(database, facts_provider)

    return create_service_app(
        service=settings.service_name,
        title="Qianmian product hub",
        version=product_hub.__version__,
        description=DESCRIPTION,
        tokens=tokens,
        routers=ROUTERS,
        readiness_checks=[ReadinessCheck("database", database.ping)],
        on_shutdown=database.dispose,
        state={"settings": settings, "database": database, "product_service": service},
        async_cleanups=[http_client.aclose] if http_client is not None else [],
    )
