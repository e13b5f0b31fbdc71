"""CLV = sum_{t=1..5} m r^t / (1+d)^t, with the documented constants."""

from __future__ import annotations

import pytest
from profile_service.service import value


def test_margin_formula() -> None:
    # 1.5% of 100k deposits + 0.6% of 50k wealth + 2% of 200k loans
    assert value.annual_margin(aum=150_000, deposits=100_000, loans=200_000) == pytest.approx(
        1500 + 300 + 4000
    )
    assert value.annual_margin(aum=10, deposits=100, loans=0) == pytest.approx(1.5)  # no negative wealth


def test_clv_matches_the_formula_by_hand() -> None:
    result = value.customer_value(aum=150_000, deposits=100_000, loans=200_000, lifecycle_stage="active")
    m, r, d = 5800.0, 0.9, 0.08
    expected = sum(m * r**t / (1 + d) ** t for t in range(1, 6))
    assert result.clv == pytest.approx(expected, abs=0.01)
    assert (
        result.annual_margin,
        result.retention_probability,
        result.discount_rate,
        result.horizon_years,
    ) == (
        5800.0,
        0.9,
        0.08,
        5,
    )


def test_clv_orders_by_retention() -> None:
    clvs = {stage: value.customer_value(100_000, 50_000, 0, stage).clv for stage in value.RETENTION_BY_STAGE}
    assert clvs["active"] > clvs["new"] > clvs["dormant"] > clvs["churn_risk"] > clvs["churned"]
    assert value.customer_value(0, 0, 0, "active").clv == 0
