"""``qianmian_policy_blocks_total{rule}``: what a decision's policy stage blocked, by contract label."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from prometheus_client import REGISTRY
from qianmian_rules import CustomerFacts, EligibilityRules
from recommender.service.metrics import METRIC_RULES, policy_blocks, record_policy_blocks
from recommender.service.policies import (
    CHANNELS,
    CandidateProduct,
    ContactRecord,
    ContactState,
    CustomerContext,
    DecisionRequest,
    evaluate_policies,
)

AT = datetime(2025, 6, 30, 4, 0, tzinfo=UTC)


def _candidate(pid: str, **kw: object) -> CandidateProduct:
    values: dict[str, object] = {
        "product_id": pid,
        "product_type": "fund",
        "risk_rating": None,
        "eligibility": EligibilityRules(),
        "channels": frozenset(CHANNELS),
    }
    return CandidateProduct(**(values | kw))  # type: ignore[arg-type]


def test_blocks_are_counted_once_per_candidate_and_rule_and_caps_once_per_decision() -> None:
    facts = CustomerFacts(age=30, aum=1000, region="310000", lifecycle_stage="active", held_product_ids={"H"})
    context = CustomerContext(
        facts=facts,
        consents={"app": True},
        contact=ContactState(
            contacts=tuple(ContactRecord("app", AT - timedelta(hours=h)) for h in (1, 2, 3))
        ),
    )
    candidates = [
        _candidate("R", risk_rating=3),  # no assessment: suitability
        _candidate("H", eligibility=EligibilityRules(min_aum=5000)),  # held + ineligible: eligibility once
        _candidate("C", content_approved=False),
        _candidate("B", right_affordable=False),
        _candidate("OK"),
    ]
    result = evaluate_policies(candidates, context, DecisionRequest("app", "home_banner", AT))
    blocks = policy_blocks(result)
    assert blocks == {"suitability": 1, "eligibility": 1, "content": 1, "budget": 1, "contact_cap": 1}
    assert set(blocks) <= set(METRIC_RULES)

    def sample(rule: str) -> float:
        return REGISTRY.get_sample_value("qianmian_policy_blocks_total", {"rule": rule}) or 0.0

    before = {rule: sample(rule) for rule in METRIC_RULES}
    record_policy_blocks(result)
    assert {rule: sample(rule) - before[rule] for rule in METRIC_RULES} == {
        "eligibility": 1, "suitability": 1, "consent": 0, "contact_cap": 1, "content": 1, "budget": 1,
    }  # fmt: skip
    assert REGISTRY.get_sample_value("qianmian_audit_write_failures_total") is not None
