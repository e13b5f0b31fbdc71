"""The rights hub's FastAPI application.

Run with ``rights-hub serve`` or ``uvicorn rights_hub.main:create_app --factory --port 8003``.
"""

from __future__ import annotations

import anyio.to_thread
from fastapi import FastAPI
from qianmian_core.app import create_service_app
from qianmian_core.auth import TokenRegistry
from qianmian_core.health import ReadinessCheck
from qianmian_core.settings import load_settings

import rights_hub
from rights_hub.api import ROUTERS
from rights_hub.database import open_database
from rights_hub.service import CatalogueService, LedgerService
from rights_hub.service.budget_metrics import bind as bind_budget_metrics
from rights_hub.settings import RightsHubSettings

DESCRIPTION = (
    "Rights hub (权益中心): the catalogue of rights (coupons, cashback, points multipliers, fee waivers, "
    "rate boosts, partner perks) with budgets in count and money, per-customer limits, validity windows "
    "and eligibility; an idempotent ledger of holds, grants, redemptions, expiries and reversals that "
    "never grants beyond budget; and the list of rights still affordable now."
)


def create_app(settings: RightsHubSettings | None = None) -> FastAPI:
    """Build the app."""
    settings = settings or load_settings(RightsHubSettings)
    try:
        tokens = TokenRegistry.from_file(settings.auth_tokens_file)
    except ValueError as exc:
        raise SystemExit(f"rights-hub: {exc}") from None
    database = open_database(settings.database_url)
    bind_budget_metrics(database)  # qianmian_rights_budget_remaining_ratio, read at scrape time
    catalogue = CatalogueService(database)
    ledger = LedgerService(
        database,
        default_hold_seconds=settings.default_hold_seconds,
        max_hold_seconds=settings.max_hold_seconds,
    )

    def on_startup() -> None:
        # Runs inside the event loop (lifespan): size the thread pool that serves the sync routes.
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.worker_threads

    return create_service_app(
        service=settings.service_name,
        title="Qianmian rights hub",
        version=rights_hub.__version__,
        description=DESCRIPTION,
        tokens=tokens,
        routers=ROUTERS,
        readiness_checks=[ReadinessCheck("database", database.ping)],
        on_startup=on_startup,
        on_shutdown=database.dispose,
        state={
            "settings": settings,
            "database": database,
            "catalogue_service": catalogue,
            "ledger_service": ledger,
        },
    )
