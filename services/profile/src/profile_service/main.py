"""The profile service's FastAPI application.

Run with ``uvicorn profile_service.main:create_app --factory --port 8004`` or ``profile-service serve``.
"""

from __future__ import annotations

from fastapi import FastAPI
from qianmian_core.app import create_service_app
from qianmian_core.auth import TokenRegistry
from qianmian_core.db import Database
from qianmian_core.health import ReadinessCheck

from profile_service import __version__
from profile_service.api import changes, consents, contacts, customers, events, risk
from profile_service.feast_pusher import FeastPusher
from profile_service.service.activity import FeaturePusher, NullPusher
from profile_service.settings import ProfileSettings


def default_pusher(settings: ProfileSettings) -> FeaturePusher:
    """Feast when pushing is enabled, otherwise a pusher that discards."""
    return FeastPusher() if settings.feast_push_enabled else NullPusher()


def create_app(settings: ProfileSettings | None = None, *, pusher: FeaturePusher | None = None) -> FastAPI:
    """Build the app; ``pusher`` replaces the Feast pusher (tests)."""
    from qianmian_core.logging import configure_logging
    from qianmian_core.settings import load_settings

    settings = settings or load_settings(ProfileSettings)
    configure_logging(settings.service_name, settings.log_level)
    database = Database(settings.database_url)
    return create_service_app(
        service=settings.service_name,
        title="Qianmian profile",
        version=__version__,
        description="Customer 360 (masked), moments, consent, risk assessment, contact history, value.",
        tokens=TokenRegistry.from_file(settings.auth_tokens_file),
        routers=[
            customers.router,
            events.router,
            consents.router,
            risk.router,
            contacts.router,
            changes.router,
        ],
        readiness_checks=[ReadinessCheck("database", database.ping)],
        on_shutdown=database.dispose,
        state={"db": database, "settings": settings, "pusher": pusher or default_pusher(settings)},
    )
