"""Can this product be offered to this customer, here and now? One answer, with every reason why not.

Eligibility and suitability come from ``qianmian_rules`` (the one rule engine, shared with the
recommender); the product hub adds what only it knows: status, channel, sale window and quota.
"""

from __future__ import annotations

from datetime import datetime

from qianmian_rules import CustomerFacts, RuleFailure, check_eligibility, check_suitability

from product_hub.schemas import ProductOut


def commercial_failures(product: ProductOut, *, channel: str | None, at: datetime) -> list[RuleFailure]:
    """Why the product cannot be sold at all at ``at`` in ``channel``, whoever the customer is."""
    failures: list[RuleFailure] = []
    if product.status != "active":
        failures.append(RuleFailure(code="not_active", message=f"product is {product.status}"))
    if channel is not None and channel not in product.channels:
        failures.append(RuleFailure(code="channel_not_allowed", message=f"not sold in channel {channel}"))
    if not in_sale_window(product, at):
        failures.append(RuleFailure(code="outside_sale_window", message="outside the sale window"))
    if product.quota is not None and product.sold >= product.quota:
        failures.append(RuleFailure(code="quota_exhausted", message="sale quota exhausted"))
    return failures


def in_sale_window(product: ProductOut, at: datetime) -> bool:
    """True when ``at`` lies in [sale_start, sale_end); an open end is unbounded."""
    if product.sale_start is not None and at < product.sale_start:
        return False
    return product.sale_end is None or at < product.sale_end


def product_failures(
    product: ProductOut, facts: CustomerFacts, *, channel: str | None, at: datetime
) -> list[RuleFailure]:
    """Every reason the customer may not be offered the product; empty means offerable."""
    return [
        *commercial_failures(product, channel=channel, at=at),
        *check_eligibility(product.eligibility, facts),
        *check_suitability(product.risk_rating, facts, at),
    ]
