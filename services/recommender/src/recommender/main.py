"""The recommender's FastAPI application (models half; the decision API comes with issue 6).

Run with ``recommender serve`` or ``uvicorn recommender.main:create_app --factory --port 8000``.
"""

from __future__ import annotations

from fastapi import FastAPI
from qianmian_core.app import create_service_app
from qianmian_core.auth import TokenRegistry
from qianmian_core.health import ReadinessCheck
from qianmian_core.logging import get_logger
from qianmian_core.settings import load_settings

import recommender
from recommender.api import ROUTERS
from recommender.ml.registry import ModelRegistry
from recommender.service.holder import ModelHolder
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


def create_app(
    settings: RecommenderSettings | None = None,
    *,
    catalogue: list[str] | None = None,
    install_signal: bool = True,
) -> FastAPI:
    """Build the app; the model is loaded at start-up (``on_startup``)."""
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
        readiness_checks=[ReadinessCheck("model", model_ready)],
        on_startup=start,
        state={"settings": settings, "model_holder": holder},
    )
