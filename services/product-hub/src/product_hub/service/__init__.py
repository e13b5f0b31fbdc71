"""Business rules of the product hub: the approval workflow, editing, offerability. No SQL, no HTTP."""

from product_hub.service.offerability import product_failures
from product_hub.service.products import ProductFilter, ProductService
from product_hub.service.workflow import ALLOWED_TRANSITIONS

__all__ = ["ALLOWED_TRANSITIONS", "ProductFilter", "ProductService", "product_failures"]
