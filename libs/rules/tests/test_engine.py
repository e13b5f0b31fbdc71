from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from qianmian_rules import (
    CustomerFacts,
    EligibilityRules,
    check_eligibility,
    check_suitability,
    eligibility_codes,
    is_offerable,
    suitability_code,
)

NOW = datetime(2026, 11, 23, tzinfo=UTC)


def facts(**kw: object) -> CustomerFacts:
    base: dict[str, object] = {
        "age": 35,
        "aum": 100_000.0,
        "region": "GD",
        "segments": frozenset({"payroll"}),
        "lifecycle_stage": "active",
        "held_product_types": frozenset({"payroll_service"}),
        "risk_level": 3,
        "risk_expires_at": NOW + timedelta(days=100),
    }
    base.update(kw)
    return CustomerFacts.model_validate(base)


@pytest.mark.parametrize(
    ("rules", "customer", "codes"),
    [
        (EligibilityRules(min_aum=200_000), facts(), ["aum_below_min"]),
        (EligibilityRules(max_age=30), facts(), ["age_above_max"]),
        (EligibilityRules(segments=("wealth",)), facts(), ["segment_not_allowed"]),
        (EligibilityRules(regions=("ZJ",)), facts(), ["region_not_allowed"]),
        (EligibilityRules(lifecycle_stages=("new",)), facts(), ["lifecycle_not_allowed"]),
        (EligibilityRules(required_holdings=("mortgage_service",)), facts(), ["required_holding_missing"]),
        (EligibilityRules(excluded_holdings=("payroll_service",)), facts(), ["excluded_holding_present"]),
        (EligibilityRules(min_aum=50_000, segments=("payroll", "wealth")), facts(), []),
    ],
)
def test_eligibility_conditions(rules: EligibilityRules, customer: CustomerFacts, codes: list[str]) -> None:
    failures = check_eligibility(rules, customer)
    assert [f.code for f in failures] == codes
    assert eligibility_codes(rules, customer) == tuple(codes)
    assert all(f.message for f in failures)


def test_every_failed_condition_is_reported_and_explained() -> None:
    rules = EligibilityRules(
        min_aum=200_000,
        max_age=30,
        segments=("wealth",),
        regions=("ZJ",),
        lifecycle_stages=("new",),
        required_holdings=("mortgage_service",),
        excluded_holdings=("payroll_service",),
    )
    failures = check_eligibility(rules, facts())
    assert [(f.code, f.message) for f in failures] == [
        ("aum_below_min", "AUM below 200,000"),
        ("age_above_max", "age above 30"),
        ("segment_not_allowed", "customer is in no allowed segment"),
        ("region_not_allowed", "region GD not served"),
        ("lifecycle_not_allowed", "lifecycle stage active"),
        ("required_holding_missing", "customer holds none of the prerequisites"),
        ("excluded_holding_present", "already holds payroll_service"),
    ]


def test_rules_reject_inconsistent_ranges_and_unknown_vocabulary() -> None:
    with pytest.raises(ValueError, match="min_aum"):
        EligibilityRules(min_aum=10, max_aum=5)
    with pytest.raises(ValueError, match="unknown segments"):
        EligibilityRules(segments=("vip",))


@pytest.mark.parametrize(
    ("rating", "customer", "code"),
    [
        (None, facts(risk_level=None, risk_expires_at=None), None),
        (2, facts(risk_level=None, risk_expires_at=None), "risk_assessment_missing"),
        (2, facts(risk_expires_at=NOW - timedelta(days=1)), "risk_assessment_expired"),
        (4, facts(risk_level=3), "risk_level_too_low"),
        (3, facts(risk_level=3), None),
    ],
)
def test_suitability(rating: int | None, customer: CustomerFacts, code: str | None) -> None:
    failures = check_suitability(rating, customer, NOW)
    assert [f.code for f in failures] == ([] if code is None else [code])
    assert suitability_code(rating, customer, NOW) == code
    assert is_offerable(EligibilityRules(), rating, customer, NOW) == (code is None)


@given(
    rating=st.integers(1, 5),
    level=st.one_of(st.none(), st.integers(1, 5)),
    expiry_days=st.integers(-400, 400),
)
def test_suitability_never_allows_a_product_above_a_valid_level(
    rating: int, level: int | None, expiry_days: int
) -> None:
    customer = facts(risk_level=level, risk_expires_at=NOW + timedelta(days=expiry_days))
    allowed = not check_suitability(rating, customer, NOW)
    assert allowed == (level is not None and expiry_days > 0 and rating <= level)
    assert allowed == (suitability_code(rating, customer, NOW) is None)
