"""Evaluation of eligibility rules and the suitability (适当性) rule."""

from __future__ import annotations

from datetime import UTC, datetime

from qianmian_rules.model import CustomerFacts, EligibilityRules, RuleFailure


def check_eligibility(rules: EligibilityRules, facts: CustomerFacts) -> list[RuleFailure]:
    """Return every eligibility condition the customer fails; an empty list means eligible."""
    failures: list[RuleFailure] = []
    if rules.min_aum is not None and facts.aum < rules.min_aum:
        failures.append(RuleFailure(code="aum_below_min", message=f"AUM below {rules.min_aum:,.0f}"))
    if rules.max_aum is not None and facts.aum > rules.max_aum:
        failures.append(RuleFailure(code="aum_above_max", message=f"AUM above {rules.max_aum:,.0f}"))
    if rules.min_age is not None and facts.age < rules.min_age:
        failures.append(RuleFailure(code="age_below_min", message=f"age below {rules.min_age}"))
    if rules.max_age is not None and facts.age > rules.max_age:
        failures.append(RuleFailure(code="age_above_max", message=f"age above {rules.max_age}"))
    if rules.segments and not facts.segments.intersection(rules.segments):
        failures.append(RuleFailure(code="segment_not_allowed", message="customer is in no allowed segment"))
    if rules.regions and facts.region not in rules.regions:
        failures.append(RuleFailure(code="region_not_allowed", message=f"region {facts.region} not served"))
    if rules.lifecycle_stages and facts.lifecycle_stage not in rules.lifecycle_stages:
        failures.append(
            RuleFailure(code="lifecycle_not_allowed", message=f"lifecycle stage {facts.lifecycle_stage}")
        )
    if not rules.required_holdings and not rules.excluded_holdings:
        return failures
    held = facts.held_product_ids | facts.held_product_types
    if rules.required_holdings and not held.intersection(rules.required_holdings):
        failures.append(
            RuleFailure(code="required_holding_missing", message="customer holds none of the prerequisites")
        )
    excluded = held.intersection(rules.excluded_holdings)
    if excluded:
        failures.append(
            RuleFailure(code="excluded_holding_present", message=f"already holds {sorted(excluded)[0]}")
        )
    return failures


def check_suitability(
    product_risk_rating: int | None, facts: CustomerFacts, at: datetime | None = None
) -> list[RuleFailure]:
    """Suitability is law: a C<n> customer may only be offered products rated R1..R<n>.

    A product without a risk rating (deposits, cards, loans, services) is always suitable. For a
    risk-rated product, a missing or expired assessment means *no* — never a default level.
    """
    if product_risk_rating is None:
        return []
    now = at or datetime.now(UTC)
    if facts.risk_level is None:
        return [RuleFailure(code="risk_assessment_missing", message="no risk assessment on file")]
    expires = facts.risk_expires_at
    if expires is None:
        return [RuleFailure(code="risk_assessment_missing", message="risk assessment has no expiry date")]
    if expires.tzinfo is None:
        expires = expires.replace(tzinfo=UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    if expires <= now:
        return [RuleFailure(code="risk_assessment_expired", message="risk assessment expired")]
    if product_risk_rating > facts.risk_level:
        return [
            RuleFailure(
                code="risk_level_too_low",
                message=f"product R{product_risk_rating} exceeds customer C{facts.risk_level}",
            )
        ]
    return []


def is_offerable(
    rules: EligibilityRules,
    product_risk_rating: int | None,
    facts: CustomerFacts,
    at: datetime | None = None,
) -> bool:
    """True when the customer is both eligible for and suitable to the product."""
    return not check_eligibility(rules, facts) and not check_suitability(product_risk_rating, facts, at)
