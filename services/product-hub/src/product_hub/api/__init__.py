"""HTTP routes of the product hub: parse, authorise, call the service layer."""

from product_hub.api.eligibility import router as eligibility_router
from product_hub.api.products import router as products_router

ROUTERS = (products_router, eligibility_router)

__all__ = ["ROUTERS"]
