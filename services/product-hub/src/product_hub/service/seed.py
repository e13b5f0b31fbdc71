"""Seeding the catalogue from ``qianmian_bankgen.catalogue`` through the real workflow."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from qianmian_bankgen.catalogue import CatalogueProduct

from product_hub.errors import ProductNotFoundError
from product_hub.schemas import ProductCreate, TransitionRequest
from product_hub.service.products import ProductService

SEED_AUTHOR: Final = "catalogue-seed"
SEED_APPROVER: Final = "catalogue-approver"


@dataclass(frozen=True, slots=True)
class SeedReport:
    """What a seed run did."""

    created: int
    activated: int
    unchanged: int


def seed_catalogue(service: ProductService, catalogue: Iterable[CatalogueProduct]) -> SeedReport:
    """Create, approve and activate every catalogue product that is not active yet.

    Idempotent: products already stored are left as they are, and a product left half-way by an
    interrupted run is carried on from its current status. Retired products stay retired.
    """
    created = activated = unchanged = 0
    for item in catalogue:
        try:
            status = service.get(item.product_id).status
        except ProductNotFoundError:
            service.create(_to_create(item), author=SEED_AUTHOR)
            status = "draft"
            created += 1
        if status in {"active", "retired"}:
            unchanged += 1
            continue
        if status == "draft":
            service.transition(
                item.product_id,
                TransitionRequest(to="approved", comment="seed catalogue"),
                actor=SEED_APPROVER,
            )
        service.transition(
            item.product_id, TransitionRequest(to="active", comment="seed catalogue"), actor=SEED_APPROVER
        )
        activated += 1
    return SeedReport(created=created, activated=activated, unchanged=unchanged)


def _to_create(item: CatalogueProduct) -> ProductCreate:
    return ProductCreate.model_validate(
        {
            "product_id": item.product_id,
            "name": item.name,
            "name_en": item.name_en,
            "product_type": item.product_type,
            "risk_rating": item.risk_rating,
            "channels": list(item.channels),
            "margin_rate": item.margin_rate,
            "value": item.value,
            "attributes": {k: list(v) if isinstance(v, tuple) else v for k, v in item.attributes.items()},
            "eligibility": item.eligibility,
        }
    )
