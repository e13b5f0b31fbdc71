"""Granting a converted bundle's right through rights-hub (``POST /v1/rights/{right_id}/grants``).

rights-hub's ledger is the only truth about budgets (DESIGN.md section 6), so the grant is asked for
at conversion time and its answer is taken as it is:

- ``201`` (also a replay of an earlier grant under the same key) → ``granted`` with the grant id;
- ``404``/``409``/``422`` → ``refused`` with rights-hub's error code (``right_exhausted``,
  ``customer_limit_reached``, ``right_not_available``, ``right_not_found`` …). rights-hub stores a
  refusal under its key too, so asking again would get the same answer;
- anything else (unreachable, timeout, 5xx, a rejected token, an unreadable answer) →
  ``pending_retry``: the grant may or may not have happened.

The Idempotency-Key is a function of (decision, product, right) only (:func:`grant_key`), so every
retry, from any pod, for any feedback request on the same bundle, asks rights-hub for the same grant
and gets the one it made: a right is never granted twice for one converted bundle.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Final, Literal, Protocol

import httpx
import orjson
from qianmian_core.clients import path_of
from qianmian_core.logging import get_logger

log = get_logger(__name__)

GrantStatus = Literal["granted", "pending_retry", "refused"]

#: rights-hub's Idempotency-Key grammar (``rights_hub.api.deps.IDEMPOTENCY_KEY_PATTERN``).
_RIGHTS_HUB_KEY: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
#: rights-hub answers that are final for the request: it refused, and would refuse again.
_REFUSALS: Final[frozenset[int]] = frozenset({404, 409, 422})
UNAVAILABLE: Final = "rights_hub_unavailable"


def grant_key(decision_id: str, product_id: str, right_id: str) -> str:
    """rights-hub's Idempotency-Key for the grant of ``right_id`` on one bundle of one decision.

    Readable (``grant:<decision>:<product>:<right>``) when that fits rights-hub's key grammar, else a
    digest of the same three ids; either way the same bundle always gets the same key.
    """
    readable = f"grant:{decision_id}:{product_id}:{right_id}"
    if _RIGHTS_HUB_KEY.match(readable):
        return readable
    digest = hashlib.sha256(f"{decision_id}\x1f{product_id}\x1f{right_id}".encode()).hexdigest()
    return f"grant:{digest[:48]}"


@dataclass(frozen=True, slots=True)
class GrantRequest:
    """What to grant to whom, and under which rights-hub Idempotency-Key."""

    right_id: str
    customer_id: str
    decision_id: str
    key: str


@dataclass(frozen=True, slots=True)
class GrantResult:
    """One grant attempt's outcome."""

    status: GrantStatus
    grant_id: str | None = None
    error_code: str | None = None


class RightsGranter(Protocol):
    """Grants rights (``RightsGrantClient`` over HTTP; tests may point it at an in-process app)."""

    async def grant(self, request: GrantRequest) -> GrantResult: ...


class RightsGrantClient:
    """rights-hub's grant endpoint with a bearer token holding ``rights:grant``; never raises."""

    service: Final = "rights-hub"

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout_s: float = 2.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            timeout=httpx.Timeout(timeout_s),
            transport=transport,
        )

    async def grant(self, request: GrantRequest) -> GrantResult:
        """Ask rights-hub for the grant; the outcome, never an exception."""
        body = {"customer_id": request.customer_id, "decision_id": request.decision_id}
        try:
            response = await self._client.post(
                path_of("v1", "rights", request.right_id, "grants"),
                content=orjson.dumps(body),
                headers={"Idempotency-Key": request.key, "Content-Type": "application/json"},
            )
        except httpx.HTTPError as exc:
            log.warning("rights_grant_unreachable", right_id=request.right_id, error_type=type(exc).__name__)
            return GrantResult("pending_retry", error_code=UNAVAILABLE)
        payload = _json(response.content)
        if response.status_code in (200, 201):
            grant_id = payload.get("grant_id") if isinstance(payload, dict) else None
            if isinstance(grant_id, str) and grant_id:
                return GrantResult("granted", grant_id=grant_id)
            log.error("rights_grant_contract_violation", right_id=request.right_id)
            return GrantResult("pending_retry", error_code=UNAVAILABLE)
        if response.status_code in _REFUSALS:
            code = _error_code(payload) or f"http_{response.status_code}"
            log.info("rights_grant_refused", right_id=request.right_id, code=code)
            return GrantResult("refused", error_code=code)
        # 5xx, 429, or 400/401/403 (our own misconfiguration): nothing final was said; retry later.
        log.warning(
            "rights_grant_failed",
            right_id=request.right_id,
            status=response.status_code,
            code=_error_code(payload),
        )
        return GrantResult("pending_retry", error_code=UNAVAILABLE)

    async def aclose(self) -> None:
        """Close the pooled connections."""
        await self._client.aclose()


def _json(content: bytes) -> object:
    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError:
        return None


def _error_code(payload: object) -> str | None:
    if isinstance(payload, dict):
        error = payload.get("error")
        if isinstance(error, dict) and isinstance(error.get("code"), str):
            return str(error["code"])
    return None
