"""What content-hub knows about products: risk rating and the facts placeholders may show.

Read from the seed catalogue (``qianmian_bankgen.catalogue``), which product-hub seeds from too, behind
a one-method protocol so that a product-hub client can replace it without touching the rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from qianmian_bankgen.catalogue import by_id
from qianmian_rules.placeholders import product_values


@dataclass(frozen=True, slots=True)
class ProductFacts:
    """The product facts content may mention. ``risk_rating`` is R1..R5 as 1..5, None when unrated."""

    product_id: str
    name: str
    risk_rating: int | None
    values: dict[str, str]


class ProductDirectory(Protocol):
    """Looks products up by id."""

    def get(self, product_id: str) -> ProductFacts | None:
        """The product's facts, or None when the product is unknown."""
        ...


class CatalogueDirectory:
    """Products of the seed catalogue."""

    def get(self, product_id: str) -> ProductFacts | None:
        """The catalogue product's name, risk rating, and its rate and term formatted for customers."""
        product = by_id().get(product_id)
        if product is None:
            return None
        values = product_values(product.name, product.attributes)
        return ProductFacts(product.product_id, product.name, product.risk_rating, values)
