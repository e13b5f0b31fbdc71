"""HTTP routes of the recommender: parse, authorise, call the service layer."""

from recommender.api.models import router as models_router

ROUTERS = (models_router,)

__all__ = ["ROUTERS"]
