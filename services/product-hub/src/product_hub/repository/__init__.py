"""The only place that issues queries against the product hub's tables."""

from product_hub.repository.products import ProductRepository

__all__ = ["ProductRepository"]
