"""Dependencies shared by the routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from qianmian_core.auth import Principal, require_scope

from product_hub.service import ProductService


async def get_service(request: Request) -> ProductService:
    """The app's product service (built once in ``create_app``)."""
    service: ProductService = request.app.state.product_service
    return service


Service = Annotated[ProductService, Depends(get_service)]
Reader = Annotated[Principal, Depends(require_scope("products:read"))]
Writer = Annotated[Principal, Depends(require_scope("products:write"))]
