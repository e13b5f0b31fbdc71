"""A small JSON client for calling another Qianmian service over its HTTP contract.

Every service that reads another one (product-hub and content-hub read profile, for example) needs
the same few things: a base URL, a bearer token, a short timeout, and a fixed mapping of what can go
wrong onto the typed error hierarchy:

- ``404``                            -> the caller's ``NotFoundError`` (e.g. ``customer_not_found``);
- connection errors, timeouts, any
  other non-2xx answer (a rejected
  token is our misconfiguration, not
  the caller's fault)                -> ``DependencyUnavailableError`` (503);
- a 2xx body that is not valid JSON
  or not the documented shape        -> ``DependencyUnavailableError`` (a contract break).

Tests pass ``transport=httpx.ASGITransport(app=...)`` to talk to a stand-in app in memory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, TypeVar
from urllib.parse import quote

import httpx
import orjson
import yaml
from pydantic import BaseModel, ValidationError

from qianmian_core.errors import DependencyUnavailableError, NotFoundError
from qianmian_core.logging import get_logger

log = get_logger(__name__)

M = TypeVar("M", bound=BaseModel)


def path_of(*segments: str) -> str:
    """``/a/b/c`` with every segment percent-escaped, so ids can never walk the path (``../``)."""
    return "/" + "/".join(quote(segment, safe="") for segment in segments)


class JsonServiceClient:
    """GETs JSON from one service with a bearer token and a short timeout; errors are typed."""

    def __init__(
        self,
        service: str,
        base_url: str,
        token: str,
        *,
        timeout_s: float = 1.0,
        transport: httpx.AsyncBaseTransport | None = None,
        unavailable_error: type[DependencyUnavailableError] = DependencyUnavailableError,
    ) -> None:
        """``service`` names the dependency in messages and logs (``profile``);
        ``unavailable_error`` lets a caller raise its own subclass of DependencyUnavailableError."""
        self.service = service
        self._unavailable = unavailable_error
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            timeout=httpx.Timeout(timeout_s),
            transport=transport,
        )

    async def get_json(self, path: str, *, not_found: NotFoundError | None = None) -> Any:
        """The decoded JSON body of ``GET path``; raise ``not_found`` (or a NotFoundError) on 404."""
        response = await self._get(path, not_found)
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise self._contract_break() from None

    async def get_model(self, path: str, model: type[M], *, not_found: NotFoundError | None = None) -> M:
        """``GET path`` validated as ``model``; a body of another shape is a broken dependency."""
        response = await self._get(path, not_found)
        try:
            return model.model_validate_json(response.content)
        except ValidationError:
            raise self._contract_break() from None

    async def post_model(
        self, path: str, body: Any, model: type[M], *, not_found: NotFoundError | None = None
    ) -> M:
        """``POST path`` with ``body`` as JSON, the answer validated as ``model`` (for reads that name
        many things at once; a 4xx other than 404 is a broken contract, not the caller's fault)."""
        response = await self._get(path, not_found, body=orjson.dumps(body))
        try:
            return model.model_validate_json(response.content)
        except ValidationError:
            raise self._contract_break() from None

    async def aclose(self) -> None:
        """Close the pooled connections."""
        await self._client.aclose()

    async def _get(
        self, path: str, not_found: NotFoundError | None, *, body: bytes | None = None
    ) -> httpx.Response:
        try:
            if body is None:
                response = await self._client.get(path)
            else:
                response = await self._client.post(
                    path, content=body, headers={"Content-Type": "application/json"}
                )
        except httpx.HTTPError as exc:
            log.warning("dependency_unreachable", dependency=self.service, error_type=type(exc).__name__)
            raise self._unavailable(f"the {self.service} service is unreachable") from None
        if response.status_code == 404:
            raise not_found or NotFoundError(f"the {self.service} service has no {path}")
        if not response.is_success:
            log.warning("dependency_error", dependency=self.service, status=response.status_code)
            raise self._unavailable(
                f"the {self.service} service failed", details={"upstream_status": response.status_code}
            )
        return response

    def _contract_break(self) -> DependencyUnavailableError:
        # Not the caller's fault: the other service broke its contract, so report a broken dependency.
        log.error("dependency_contract_violation", dependency=self.service)
        return self._unavailable(f"the {self.service} service answered in an unexpected shape")


class ServiceClient:
    """Base of a typed client of one other service: subclasses name it and add their calls.

    Subclasses set ``service`` (``profile``), optionally ``unavailable_error`` and
    ``default_timeout_s``, and read through ``self._client`` (a :class:`JsonServiceClient`).
    """

    service: ClassVar[str]
    unavailable_error: ClassVar[type[DependencyUnavailableError]] = DependencyUnavailableError
    default_timeout_s: ClassVar[float] = 1.0

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout_s: float | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._client = JsonServiceClient(
            self.service,
            base_url,
            token,
            timeout_s=self.default_timeout_s if timeout_s is None else timeout_s,
            transport=transport,
            unavailable_error=self.unavailable_error,
        )

    async def aclose(self) -> None:
        """Close the pooled connections."""
        await self._client.aclose()


def dev_client_token(path: Path, client: str, purpose: str) -> str:
    """Local/test only: the bearer token of dev client ``client`` from the dev token file.

    Raises ValueError with a clear message (settings validators turn it into a fail-fast error).
    """
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise ValueError(f"cannot read token file {path}: {exc.strerror}") from None
    spec = (data.get("clients") or {}).get(client)
    if not isinstance(spec, dict) or not spec.get("token"):
        raise ValueError(f"token file {path} has no client {client!r} to call {purpose} with")
    return str(spec["token"])
