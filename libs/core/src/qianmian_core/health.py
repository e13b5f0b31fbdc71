"""Liveness (/healthz: the process answers) and readiness (/readyz: its dependencies answer)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from qianmian_core.errors import error_response


@dataclass(frozen=True, slots=True)
class ReadinessCheck:
    """A named, synchronous probe that raises when its dependency is unusable."""

    name: str
    probe: Callable[[], None]
    timeout_s: float = 2.0


def health_router() -> APIRouter:
    """Routes for the probes; readiness checks come from ``app.state.readiness_checks``."""
    router = APIRouter(tags=["health"])

    @router.get("/healthz", operation_id="healthz", summary="Liveness: the process is up")
    async def healthz() -> Response:
        return Response(b'{"status":"ok"}', media_type="application/json")

    @router.get("/readyz", operation_id="readyz", summary="Readiness: database and dependencies reachable")
    async def readyz(request: Request) -> Response:
        checks: list[ReadinessCheck] = getattr(request.app.state, "readiness_checks", [])
        results: dict[str, str] = {}
        for check in checks:
            try:
                await asyncio.wait_for(asyncio.to_thread(check.probe), timeout=check.timeout_s)
                results[check.name] = "ok"
            except Exception as exc:
                results[check.name] = f"failed: {type(exc).__name__}"
        if all(v == "ok" for v in results.values()):
            return Response(
                orjson.dumps({"status": "ready", "checks": results}), media_type="application/json"
            )
        return error_response(503, "not_ready", "a dependency is unreachable", results)

    return router
