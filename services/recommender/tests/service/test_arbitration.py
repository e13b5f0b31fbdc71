"""Arbitration: priority, diversity, no-repeat, limit and determinism (examples and properties)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from qianmian_rules import MOMENT_TYPES, PRODUCT_TYPES
from recommender.service.arbitration import (
    ArbitrationCandidate,
    ArbitrationConfig,
    BusinessLevers,
    Campaign,
    arbitrate,
)

AT = datetime(2025, 7, 1, 10, 0, tzinfo=UTC)


def cand(
    pid: str, ptype: str, p: float, *, value: float = 1.0, moment: str | None = None
) -> ArbitrationCandidate:
    return ArbitrationCandidate(pid, ptype, p, value=value, moment=moment)


def test_priority_multiplies_propensity_moment_value_and_levers() -> None:
    config = ArbitrationConfig(
        moment_weights={"deposit_maturing": 2.0},
        levers=BusinessLevers(
            products={"DEP-1Y": 1.5},
            product_types={"deposit": 2.0},
            campaigns=(Campaign(campaign_id="summer", multiplier=3.0, product_ids=frozenset({"DEP-1Y"})),),
        ),
    )
    result = arbitrate(
        [cand("DEP-1Y", "deposit", 0.1, value=10.0, moment="deposit_maturing")],
        limit=3,
        at=AT,
        config=config,
    )
    (offer,) = result.ranked
    assert offer.priority == pytest.approx(0.1 * 2.0 * 10.0 * 1.5 * 2.0 * 3.0)
    assert offer.campaigns == ("summer",)
    assert offer.as_json()["lever"] == pytest.approx(9.0)


def test_campaign_outside_its_window_does_not_apply() -> None:
    campaign = Campaign(
        campaign_id="later",
        multiplier=5.0,
        product_types=frozenset({"fund"}),
        starts_at=AT + timedelta(days=1),
    )
    config = ArbitrationConfig(levers=BusinessLevers(campaigns=(campaign,)))
    (offer,) = arbitrate([cand("FD-1", "fund", 0.5)], limit=1, at=AT, config=config).ranked
    assert offer.lever == 1.0
    assert offer.campaigns == ()


def test_diversity_no_repeat_suppression_and_limit_are_reported() -> None:
    config = ArbitrationConfig(levers=BusinessLevers(products={"CC-1": 0.0}))
    result = arbitrate(
        [
            cand("DEP-A", "deposit", 0.9),
            cand("DEP-B", "deposit", 0.8),
            cand("WM-A", "wealth_management", 0.7),
            cand("FD-A", "fund", 0.6),
            cand("INS-A", "insurance", 0.5),
            cand("CC-1", "credit_card", 0.99),
        ],
        limit=2,
        at=AT,
        recently_shown={"WM-A": AT - timedelta(days=1), "FD-A": AT - timedelta(days=10)},
        config=config,
    )
    assert result.product_ids == ["DEP-A", "FD-A"]
    assert dict(result.dropped) == {
        "CC-1": "lever_suppressed",
        "DEP-B": "diversity_same_type",
        "WM-A": "recently_shown",
        "INS-A": "over_limit",
    }


def test_ties_break_by_product_id_and_bad_scores_count_as_zero() -> None:
    result = arbitrate(
        [
            cand("B", "fund", 0.5),
            cand("A", "deposit", 0.5),
            cand("C", "insurance", float("nan")),
            cand("D", "credit_card", -3.0),
        ],
        limit=4,
        at=AT,
    )
    assert result.product_ids == ["A", "B", "C", "D"]
    assert [o.priority for o in result.ranked[2:]] == [0.0, 0.0]


@pytest.mark.parametrize("limit", [0, 11])
def test_limit_is_1_to_10(limit: int) -> None:
    with pytest.raises(ValueError, match="limit"):
        arbitrate([], limit=limit, at=AT)


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="unknown moments"):
        ArbitrationConfig(moment_weights={"lottery_win": 2.0})
    with pytest.raises(ValueError, match=r"within 0\.\.100"):
        BusinessLevers(products={"X": -1.0})
    with pytest.raises(ValueError, match="product_ids or product_types"):
        Campaign(campaign_id="empty", multiplier=2.0)
    c = Campaign(campaign_id="x", multiplier=2.0, product_ids=frozenset({"A"}))
    with pytest.raises(ValueError, match="must not repeat"):
        BusinessLevers(campaigns=(c, c))


product_ids = st.sampled_from([f"P{i:02d}" for i in range(25)])
candidates = st.lists(
    st.builds(
        ArbitrationCandidate,
        product_id=product_ids,
        product_type=st.sampled_from(PRODUCT_TYPES),
        propensity=st.one_of(
            st.floats(min_value=-1, max_value=1),
            st.sampled_from([0.0, 0.5, 1.0, math.nan, math.inf]),
        ),
        value=st.sampled_from([0.0, 1.0, 2.0, 100.0]),
        moment=st.one_of(st.none(), st.sampled_from(MOMENT_TYPES)),
    ),
    max_size=40,
)
shown = st.dictionaries(
    product_ids, st.integers(min_value=0, max_value=10).map(lambda d: AT - timedelta(days=d)), max_size=10
)
levers = st.builds(
    BusinessLevers,
    products=st.dictionaries(product_ids, st.sampled_from([0.0, 0.5, 1.0, 3.0]), max_size=5),
    product_types=st.dictionaries(st.sampled_from(PRODUCT_TYPES), st.sampled_from([0.5, 2.0]), max_size=3),
)


@settings(max_examples=300, deadline=None)
@given(candidates, shown, st.integers(min_value=1, max_value=10), levers)
def test_properties(
    cands: list[ArbitrationCandidate],
    recently: dict[str, datetime],
    limit: int,
    lever_set: BusinessLevers,
) -> None:
    config = ArbitrationConfig(levers=lever_set)
    result = arbitrate(cands, limit=limit, at=AT, recently_shown=recently, config=config)
    ranked = result.ranked
    # never two of one type, never a product id twice
    assert len({o.product_type for o in ranked}) == len(ranked)
    assert len({o.product_id for o in ranked}) == len(ranked)
    # never a repeat within the window
    window_start = AT - config.no_repeat_window
    assert all(not (o.product_id in recently and recently[o.product_id] > window_start) for o in ranked)
    # sorted by priority (ties by id), at most limit, finite priorities
    keys = [(-o.priority, o.product_id) for o in ranked]
    assert keys == sorted(keys)
    assert len(ranked) <= limit
    assert all(math.isfinite(o.priority) and o.priority >= 0 for o in ranked)
    # every candidate is either ranked or dropped with a reason
    assert {o.product_id for o in ranked} | set(result.dropped) == {c.product_id for c in cands}
    # deterministic, whatever the input order
    again = arbitrate(list(reversed(cands)), limit=limit, at=AT, recently_shown=recently, config=config)
    assert again.product_ids == result.product_ids
