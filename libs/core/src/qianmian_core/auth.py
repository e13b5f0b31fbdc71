"""Service-to-service bearer-token auth with scopes.

Tokens live in one YAML file (``config/dev-tokens.yaml`` locally; a mounted secret in production)::

    clients:
      recommender:
        token: "..."
        scopes: [products:read, profile:read]

Only SHA-256 digests of the tokens are kept in memory, and comparison is constant-time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from fastapi import Request

from qianmian_core.errors import ForbiddenError, UnauthorizedError

MIN_TOKEN_LENGTH = 24


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller: a client (service or console user) and its scopes."""

    client: str
    scopes: frozenset[str]

    def has(self, scope: str) -> bool:
        """True when the principal holds ``scope`` or the wildcard of its resource (``products:*``)."""
        resource = scope.split(":", 1)[0]
        return scope in self.scopes or f"{resource}:*" in self.scopes


class TokenRegistry:
    """Known tokens, by digest."""

    def __init__(self, principals_by_digest: dict[bytes, Principal]) -> None:
        self._by_digest = principals_by_digest

    @classmethod
    def from_file(cls, path: Path) -> TokenRegistry:
        """Load and validate a token file; raise ValueError with a clear message if it is unusable."""
        if not path.is_file():
            raise ValueError(f"token file {path} does not exist")
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        clients = data.get("clients")
        if not isinstance(clients, dict) or not clients:
            raise ValueError(f"token file {path} has no 'clients' mapping")
        by_digest: dict[bytes, Principal] = {}
        for name, spec in clients.items():
            token = str((spec or {}).get("token", ""))
            scopes = (spec or {}).get("scopes") or []
            if len(token) < MIN_TOKEN_LENGTH:
                raise ValueError(f"token of client {name!r} is shorter than {MIN_TOKEN_LENGTH} characters")
            digest = hashlib.sha256(token.encode()).digest()
            if digest in by_digest:
                raise ValueError(f"client {name!r} reuses another client's token")
            by_digest[digest] = Principal(client=str(name), scopes=frozenset(str(s) for s in scopes))
        return cls(by_digest)

    def authenticate(self, token: str) -> Principal | None:
        """The principal for ``token``, or None.

        Looked up by the presented token's SHA-256 digest, never by the token: how long a lookup
        takes depends on the digest only, which a caller cannot steer towards a known one.
        """
        return self._by_digest.get(hashlib.sha256(token.encode()).digest())


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise UnauthorizedError("missing bearer token")
    return token.strip()


def require_scope(scope: str) -> Callable[[Request], Coroutine[Any, Any, Principal]]:
    """FastAPI dependency: authenticate the bearer token and demand ``scope``.

    The app must have ``app.state.tokens`` set to a :class:`TokenRegistry`.
    """

    async def dependency(request: Request) -> Principal:
        registry: TokenRegistry = request.app.state.tokens
        principal = registry.authenticate(_bearer(request))
        if principal is None:
            raise UnauthorizedError("unknown bearer token")
        if not principal.has(scope):
            raise ForbiddenError(
                f"scope {scope!r} required", code="insufficient_scope", details={"scope": scope}
            )
        return principal

    dependency.__name__ = f"require_{scope.replace(':', '_').replace('*', 'any')}"
    return dependency
