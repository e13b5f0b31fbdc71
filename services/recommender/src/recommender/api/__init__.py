"""HTTP routes of the recommender: parse, authorise, call the service layer."""

from recommender.api.decisions import DECISION_ROUTE
from recommender.api.decisions import router as decisions_router
from recommender.api.experiments import router as experiments_router
from recommender.api.feedback import router as feedback_router
from recommender.api.models import router as models_router
from recommender.api.outbound import router as outbound_router

ROUTERS = (models_router, decisions_router, feedback_router, outbound_router, experiments_router)
#: The hot routes answered without walking the router (see ``qianmian_core.direct``).
DIRECT_ROUTES = (DECISION_ROUTE,)

__all__ = ["DIRECT_ROUTES", "ROUTERS"]
