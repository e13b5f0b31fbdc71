"""Dependencies shared by the routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request
from qianmian_core.auth import Principal, require_scope

from rights_hub.errors import IdempotencyKeyRequiredError
from rights_hub.service import CatalogueService, LedgerService

IDEMPOTENCY_KEY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"


def get_catalogue(request: Request) -> CatalogueService:
    """The app's catalogue service (built once in ``create_app``)."""
    service: CatalogueService = request.app.state.catalogue_service
    return service


def get_ledger(request: Request) -> LedgerService:
    """The app's ledger service (built once in ``create_app``)."""
    service: LedgerService = request.app.state.ledger_service
    return service


def idempotency_key(
    key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            pattern=IDEMPOTENCY_KEY_PATTERN,
            description="Unique per intended operation (a UUID); retries reuse it and get the same answer",
        ),
    ] = None,
) -> str:
    """The request's Idempotency-Key; 400 idempotency_key_required if missing."""
    if key is None:
        raise IdempotencyKeyRequiredError(
            "ledger operations need an Idempotency-Key header, reused unchanged on every retry"
        )
    return key


Catalogue = Annotated[CatalogueService, Depends(get_catalogue)]
Ledger = Annotated[LedgerService, Depends(get_ledger)]
IdempotencyKey = Annotated[str, Depends(idempotency_key)]
Reader = Annotated[Principal, Depends(require_scope("rights:read"))]
Writer = Annotated[Principal, Depends(require_scope("rights:write"))]
Granter = Annotated[Principal, Depends(require_scope("rights:grant"))]
Redeemer = Annotated[Principal, Depends(require_scope("rights:redeem"))]
Admin = Annotated[Principal, Depends(require_scope("rights:admin"))]
