"""Dependencies shared by the routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from qianmian_core.auth import Principal, require_scope
from qianmian_core.idempotency import idempotency_key_dependency

from rights_hub.service import CatalogueService, LedgerService


async def get_catalogue(request: Request) -> CatalogueService:
    """The app's catalogue service (built once in ``create_app``)."""
    service: CatalogueService = request.app.state.catalogue_service
    return service


async def get_ledger(request: Request) -> LedgerService:
    """The app's ledger service (built once in ``create_app``)."""
    service: LedgerService = request.app.state.ledger_service
    return service


idempotency_key = idempotency_key_dependency(
    "ledger operations", "Unique per intended operation (a UUID); retries reuse it and get the same answer"
)


Catalogue = Annotated[CatalogueService, Depends(get_catalogue)]
Ledger = Annotated[LedgerService, Depends(get_ledger)]
IdempotencyKey = Annotated[str, Depends(idempotency_key)]
Reader = Annotated[Principal, Depends(require_scope("rights:read"))]
Writer = Annotated[Principal, Depends(require_scope("rights:write"))]
Granter = Annotated[Principal, Depends(require_scope("rights:grant"))]
Redeemer = Annotated[Principal, Depends(require_scope("rights:redeem"))]
Admin = Annotated[Principal, Depends(require_scope("rights:admin"))]
