"""Property: the ``eligible_for`` listing is exactly the brute-force filter of the one rule engine."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from product_hub.database import migrate
from product_hub.schemas import ProductCreate, TransitionRequest
from product_hub.service import ProductFilter, ProductService
from product_hub.service.seed import seed_catalogue
from qianmian_bankgen.catalogue import CATALOGUE
from qianmian_core.db import Database
from qianmian_rules import (
    LIFECYCLE_STAGES,
    PRODUCT_TYPES,
    SEGMENTS,
    CustomerFacts,
    check_eligibility,
    check_suitability,
)

NOW = datetime(2030, 6, 1, 12, tzinfo=UTC)
REGIONS = sorted({r for c in CATALOGUE for r in c.eligibility.regions} | {"ZZ"})
AUM_EDGES = sorted(
    {v for c in CATALOGUE for v in (c.eligibility.min_aum, c.eligibility.max_aum) if v is not None}
)
HOLDABLE = sorted({c.product_id for c in CATALOGUE} | set(PRODUCT_TYPES))


class NoFacts:
    async def facts_for(self, customer_id: str) -> CustomerFacts:
        raise AssertionError("the property test passes facts directly")


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProductService]:
    path: Path = tmp_path_factory.mktemp("property") / "product-hub.db"
    migrate(f"sqlite:///{path}")
    database = Database(f"sqlite:///{path}")
    svc = ProductService(database, NoFacts(), clock=lambda: NOW)
    seed_catalogue(svc, CATALOGUE)
    # Some products that must never be listed, whoever asks: retired, not yet approved, off sale.
    svc.transition(CATALOGUE[0].product_id, TransitionRequest(to="retired"), actor="console-bob")
    base = CATALOGUE[3]
    svc.create(
        ProductCreate.model_validate(
            {"product_id": "DRAFT-ONLY", "name": "草稿", "product_type": "deposit", "channels": ["app"],
             "margin_rate": 0.01, "value": 10.0}
        ),
        author="console-alice",
    )  # fmt: skip
    svc.create(
        ProductCreate.model_validate(
            {"product_id": "ENDED", "name": "已结束", "product_type": base.product_type,
             "risk_rating": base.risk_rating, "channels": ["app"], "margin_rate": 0.01, "value": 10.0,
             "sale_end": (NOW + timedelta(days=1)).isoformat()}
        ),
        author="console-alice",
    )  # fmt: skip
    svc.transition("ENDED", TransitionRequest(to="approved"), actor="console-bob")
    svc.transition("ENDED", TransitionRequest(to="active"), actor="console-bob")
    yield svc
    database.dispose()


facts_strategy = st.builds(
    CustomerFacts,
    age=st.integers(min_value=0, max_value=120),
    aum=st.one_of(
        st.sampled_from(AUM_EDGES or [0.0])
        .flatmap(lambda v: st.sampled_from([v - 0.01, v, v + 0.01]))
        .map(lambda v: max(v, 0.0)),
        st.floats(min_value=0, max_value=2e7, allow_nan=False),
    ),
    region=st.sampled_from(REGIONS),
    segments=st.frozensets(st.sampled_from(SEGMENTS)),
    lifecycle_stage=st.sampled_from(LIFECYCLE_STAGES),
    held_product_ids=st.frozensets(st.sampled_from([c.product_id for c in CATALOGUE]), max_size=5),
    held_product_types=st.frozensets(st.sampled_from(PRODUCT_TYPES), max_size=4),
    risk_level=st.one_of(st.none(), st.integers(min_value=1, max_value=5)),
    risk_expires_at=st.one_of(
        st.none(), st.integers(min_value=-400, max_value=400).map(lambda d: NOW + timedelta(days=d))
    ),
)


@settings(max_examples=75, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(facts=facts_strategy, at_offset_days=st.sampled_from([0, 2]))
def test_listing_equals_the_brute_force_filter(
    service: ProductService, facts: CustomerFacts, at_offset_days: int
) -> None:
    at = NOW + timedelta(days=at_offset_days)
    listed = service.query(ProductFilter(at=at, limit=500), facts)
    everything = service.query(ProductFilter(limit=500)).items
    expected = [
        p.product_id
        for p in everything
        if p.status == "active"
        and (p.sale_start is None or p.sale_start <= at)
        and (p.sale_end is None or at < p.sale_end)
        and (p.quota is None or p.sold < p.quota)
        and not check_eligibility(p.eligibility, facts)
        and not check_suitability(p.risk_rating, facts, at)
    ]
    assert [p.product_id for p in listed.items] == expected
    assert listed.total == len(expected)
    for product in listed.items:
        if product.risk_rating is not None:
            # Never an unsuitable risk-rated product: assessed, unexpired, at or above the rating.
            assert facts.risk_level is not None
            assert product.risk_rating <= facts.risk_level
            assert facts.risk_expires_at is not None
            assert facts.risk_expires_at > at
    # And the evaluation endpoint's service gives the same answer.
    assert service.evaluate(facts, channel=None, at=at).eligible == sorted(expected)


def test_a_well_off_assessed_customer_is_offered_risk_rated_products(service: ProductService) -> None:
    facts = CustomerFacts(
        age=45, aum=10_000_000, region=REGIONS[0], segments=frozenset(SEGMENTS), lifecycle_stage="active",
        risk_level=5, risk_expires_at=NOW + timedelta(days=100),
    )  # fmt: skip
    listed = service.query(ProductFilter(at=NOW, limit=500), facts).items
    assert any(p.risk_rating == 5 for p in listed)
    assert "DRAFT-ONLY" not in {p.product_id for p in listed}
    assert CATALOGUE[0].product_id not in {p.product_id for p in listed}  # retired
