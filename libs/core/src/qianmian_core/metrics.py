"""Prometheus metrics: request count and latency per route template and status.

Labels use the route *template* (``/v1/profiles/{customer_id}``), never the concrete path, so that
no customer id ever becomes a label value (and cardinality stays bounded).
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUESTS = Counter(
    "qianmian_http_requests_total",
    "HTTP requests handled, by service, method, route template and status",
    ["service", "method", "route", "status"],
)
LATENCY = Histogram(
    "qianmian_http_request_duration_seconds",
    "HTTP request latency, by service, method and route template",
    ["service", "method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)


class MetricsMiddleware:
    """Pure ASGI middleware (cheaper than BaseHTTPMiddleware on the hot path)."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service
        self._series: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            key = (scope.get("method", "GET"), _route_template(scope), status)
            series = self._series.get(key)
            if series is None:
                series = self._bind(*key)
            series[0].inc()
            series[1].observe(time.perf_counter() - start)

    def _bind(self, method: str, route: str, status: int) -> tuple[Any, Any]:
        """The request's counter and histogram children, bound once per method, route and status
        (``labels`` looks its label values up on every call). Route templates and statuses are few."""
        series = (
            REQUESTS.labels(self.service, method, route, str(status)),
            LATENCY.labels(self.service, method, route),
        )
        self._series[(method, route, status)] = series
        return series


def _route_template(scope: Scope) -> str:
    route: Any = scope.get("route")
    path = getattr(route, "path", None)
    # Unmatched paths are bucketed together so that scanners cannot blow up label cardinality.
    return str(path) if path else "unmatched"


def metrics_response() -> Response:
    """The Prometheus exposition of this process's registry."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
