"""HTTP routes of the content hub: parse, authorise, call the service layer."""

from content_hub.api.content import router as content_router

ROUTERS = (content_router,)

__all__ = ["ROUTERS"]
