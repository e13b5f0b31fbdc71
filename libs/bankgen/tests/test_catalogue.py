from __future__ import annotations

from qianmian_bankgen.catalogue import CATALOGUE, CHANNELS, INVESTMENT_TYPES, by_id
from qianmian_rules import PRODUCT_TYPES


def test_catalogue_covers_every_type_and_risk_rating() -> None:
    assert len(CATALOGUE) >= 45
    assert {p.product_type for p in CATALOGUE} == set(PRODUCT_TYPES)
    ratings = {p.risk_rating for p in CATALOGUE if p.risk_rating is not None}
    assert ratings == {1, 2, 3, 4, 5}


def test_ids_are_unique_and_indexed() -> None:
    ids = [p.product_id for p in CATALOGUE]
    assert len(ids) == len(set(ids))
    assert by_id()["DEP-3M-01"].name == "月月盈3个月定期存款"
    assert set(by_id()) == set(ids)


def test_only_investment_products_are_risk_rated() -> None:
    for product in CATALOGUE:
        if product.risk_rating is not None:
            assert product.product_type in INVESTMENT_TYPES
        if product.product_type in {"structured_deposit", "wealth_management", "fund"}:
            assert product.risk_rating is not None, product.product_id
        assert set(product.channels) <= set(CHANNELS)


def test_business_rules_are_encoded() -> None:
    catalogue = by_id()
    assert catalogue["WM-PB-R4"].eligibility.min_aum == 6_000_000
    assert catalogue["DEP-NEW-01"].eligibility.lifecycle_stages == ("potential", "new")
    assert catalogue["CC-YOUTH-01"].eligibility.max_age == 35
    assert all(
        p.eligibility.excluded_holdings == ("credit_card",)
        for p in CATALOGUE
        if p.product_type == "credit_card"
    )
    assert all(
        "mortgage" in p.eligibility.segments for p in CATALOGUE if p.product_type == "mortgage_service"
    )
    assert all(
        p.eligibility.min_age == 40
        for p in CATALOGUE
        if "养老" in p.tags and p.product_type != "payroll_service"
    )
    assert any(p.eligibility.regions for p in CATALOGUE)
