"""The one way to build a service's FastAPI application, so every service behaves the same."""

from __future__ import annotations

import gc
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from starlette.responses import Response

from qianmian_core.auth import TokenRegistry
from qianmian_core.direct import DirectRoutes
from qianmian_core.errors import install_error_handlers
from qianmian_core.health import ReadinessCheck, health_router
from qianmian_core.logging import get_logger
from qianmian_core.metrics import MetricsMiddleware, metrics_response

log = get_logger(__name__)


#: The cyclic garbage collector's thresholds once a service has started (generation 0 allocations,
#: then collections of the younger generation per older one). CPython's defaults (700, 10, 10) made
#: the recommender rescan its warm caches (customers' features, CF top-k, ranker scores: millions
#: of objects created after start-up, so not frozen) every few dozen decisions: 30 % of a decision's
#: CPU in the decision benchmark. Reference counting still frees acyclic garbage at once; only
#: cycles wait longer. ``QIANMIAN_GC_THRESHOLDS="700,10,10"`` restores the defaults.
GC_THRESHOLDS: tuple[int, int, int] = (50_000, 20, 100)


def gc_thresholds() -> tuple[int, int, int]:
    """:data:`GC_THRESHOLDS`, or ``QIANMIAN_GC_THRESHOLDS`` (three positive integers) when set."""
    raw = os.environ.get("QIANMIAN_GC_THRESHOLDS", "").strip()
    if not raw:
        return GC_THRESHOLDS
    try:
        first, second, third = (int(part) for part in raw.split(","))
    except ValueError:
        raise ValueError(
            f"QIANMIAN_GC_THRESHOLDS must be three integers, e.g. 50000,20,100: {raw!r}"
        ) from None
    if min(first, second, third) < 1:
        raise ValueError(f"QIANMIAN_GC_THRESHOLDS must be positive: {raw!r}")
    return first, second, third


def create_service_app(
    *,
    service: str,
    title: str,
    version: str,
    description: str,
    tokens: TokenRegistry,
    routers: Sequence[APIRouter],
    readiness_checks: Sequence[ReadinessCheck] = (),
    on_startup: Callable[[], None] | None = None,
    on_shutdown: Callable[[], None] | None = None,
    state: dict[str, Any] | None = None,
    async_cleanups: Sequence[Callable[[], Awaitable[None]]] = (),
    async_startups: Sequence[Callable[[], Awaitable[None]]] = (),
    direct_routes: Sequence[APIRoute] = (),
) -> FastAPI:
    """A FastAPI app with error mapping, metrics, probes and auth wired in.

    ``direct_routes``: hot routes of ``routers`` answered without walking the router
    (:class:`~qianmian_core.direct.DirectRoutes`; each must take its inputs itself).

    ``async_cleanups`` run at shutdown before ``on_shutdown`` (e.g. closing an ``httpx.AsyncClient``);
    ``async_startups`` run at start-up after ``on_startup`` (e.g. starting a background task).
    """

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if on_startup is not None:
            on_startup()
        for startup in async_startups:
            await startup()
        # Objects created at start-up (models, catalogues, pandas) live for the whole process:
        # freezing them keeps the cyclic GC from rescanning them, which cuts p99 latency; the caches
        # filled later are rescanned less often (see GC_THRESHOLDS).
        gc.collect()
        gc.freeze()
        defaults = gc.get_threshold()
        gc.set_threshold(*gc_thresholds())
        log.info("service_started", version=version)
        yield
        for cleanup in async_cleanups:
            await cleanup()
        if on_shutdown is not None:
            on_shutdown()
        gc.set_threshold(*defaults)
        log.info("service_stopped")

    app = FastAPI(title=title, version=version, description=description, lifespan=lifespan)
    app.state.tokens = tokens
    app.state.readiness_checks = list(readiness_checks)
    for key, value in (state or {}).items():
        setattr(app.state, key, value)
    install_error_handlers(app)
    if direct_routes:  # added first: inside the metrics middleware, which labels and times them too
        app.add_middleware(DirectRoutes, routes=list(direct_routes))
    app.add_middleware(MetricsMiddleware, service=service)
    app.include_router(health_router())

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return metrics_response()

    for router in routers:
        app.include_router(router)
    return app
