"""Dependencies shared by the routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from qianmian_core.auth import Principal, require_scope

from content_hub.service import ContentService


async def get_service(request: Request) -> ContentService:
    """The app's content service (built once in ``create_app``)."""
    service: ContentService = request.app.state.content_service
    return service


Service = Annotated[ContentService, Depends(get_service)]
Reader = Annotated[Principal, Depends(require_scope("content:read"))]
Writer = Annotated[Principal, Depends(require_scope("content:write"))]
