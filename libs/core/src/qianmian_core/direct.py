"""Hot routes answered without walking the router.

FastAPI 0.165's router matches a request by walking every included router and route (path regexes,
effective route contexts) and then wraps the endpoint in two exception layers and two exit stacks:
measured in the recommender, about a quarter of a millisecond per ``POST /v1/decisions``, a third of
what the whole decision cost. :class:`DirectRoutes` answers a few chosen routes itself, as the
router would, and passes everything else on:

- a chosen route is an :class:`~fastapi.routing.APIRoute` without path parameters whose
  ``get_route_handler()`` is the whole of its work (a handler ``Request -> Response`` that takes its
  inputs itself, as ``recommender.api.decisions.DecisionRoute`` does): no dependency solving happens
  here, so a route that needs it must not be chosen;
- a request is taken only on an exact method and path match; anything else (another method, a
  trailing slash) goes to the router, which answers as it always does (405, redirect, 404);
- the route is recorded in the scope (``route``, ``endpoint``, ``path_params``) as the router records
  it, so the metrics middleware labels it with its template;
- an exception from the handler is answered by the app's own exception handlers (the most specific
  one for its class, as Starlette picks it), so errors keep the one error shape.

The middleware sits inside the metrics middleware and FastAPI's body-size limit, outside the router.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

Handler = Callable[[Request], Awaitable[Response]]


def _route_path(scope: Scope) -> str:
    """The path the router matches: the request's path without the app's root path."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        return path[len(root) :] or "/"
    return path


class DirectRoutes:
    """Pure ASGI middleware answering ``routes`` (exact method and path) without the router."""

    def __init__(self, app: ASGIApp, routes: Sequence[APIRoute]) -> None:
        self.app = app
        self._routes: dict[tuple[str, str], tuple[APIRoute, Handler]] = {}
        for route in routes:
            if route.param_convertors:
                raise ValueError(f"a direct route has no path parameters: {route.path}")
            handler = route.get_route_handler()
            for method in route.methods or ():
                self._routes[(method, route.path)] = (route, handler)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            chosen = self._routes.get((scope["method"], _route_path(scope)))
            if chosen is not None:
                await self._answer(chosen[0], chosen[1], scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _answer(
        self, route: APIRoute, handler: Handler, scope: Scope, receive: Receive, send: Send
    ) -> None:
        scope["route"] = route
        scope["endpoint"] = route.endpoint
        scope["path_params"] = {}
        request = Request(scope, receive, send)
        try:
            response = await handler(request)
        except Exception as exc:
            response = await _handled(request, exc)
        await response(scope, receive, send)


async def _handled(request: Request, exc: Exception) -> Response:
    """The app's answer to ``exc``: its exception handler for the nearest class in the MRO."""
    handlers: dict[Any, Callable[..., Any]] = request.app.exception_handlers
    for cls in type(exc).__mro__:
        handler = handlers.get(cls)
        if handler is not None:
            answer = handler(request, exc)
            if inspect.isawaitable(answer):
                answer = await answer
            assert isinstance(answer, Response)
            return answer
    raise exc


__all__ = ["DirectRoutes"]
