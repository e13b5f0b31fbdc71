"""Evaluation of eligibility rules and the suitability (适当性) rule."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Final

from qianmian_rules.model import CustomerFacts, EligibilityRules, RuleFailure


def eligibility_codes(rules: EligibilityRules, facts: CustomerFacts) -> tuple[str, ...]:
    """The code of every eligibility condition the customer fails, in rule order; empty: eligible.

    The one statement of the conditions: :func:`check_eligibility` explains these codes (the
    recommender's policy stage, which needs only the codes, calls this directly).
    """
    codes: list[str] = []
    if rules.min_aum is not None and facts.aum < rules.min_aum:
        codes.append("aum_below_min")
    if rules.max_aum is not None and facts.aum > rules.max_aum:
        codes.append("aum_above_max")
    if rules.min_age is not None and facts.age < rules.min_age:
        codes.append("age_below_min")
    if rules.max_age is not None and facts.age > rules.max_age:
        codes.append("age_above_max")
    if rules.segments and not facts.segments.intersection(rules.segments):
        codes.append("segment_not_allowed")
    if rules.regions and facts.region not in rules.regions:
        codes.append("region_not_allowed")
    if rules.lifecycle_stages and facts.lifecycle_stage not in rules.lifecycle_stages:
        codes.append("lifecycle_not_allowed")
    if rules.required_holdings or rules.excluded_holdings:
        held = facts.held_product_ids | facts.held_product_types
        if rules.required_holdings and not held.intersection(rules.required_holdings):
            codes.append("required_holding_missing")
        if held.intersection(rules.excluded_holdings):
            codes.append("excluded_holding_present")
    return tuple(codes)


def _excluded_held(rules: EligibilityRules, facts: CustomerFacts) -> str:
    held = facts.held_product_ids | facts.held_product_types
    return sorted(held.intersection(rules.excluded_holdings))[0]


#: The explanation of each eligibility code, from the rules and the facts that failed them.
_ELIGIBILITY_MESSAGES: Final[Mapping[str, Callable[[EligibilityRules, CustomerFacts], str]]] = {
    "aum_below_min": lambda r, _f: f"AUM below {r.min_aum:,.0f}",
    "aum_above_max": lambda r, _f: f"AUM above {r.max_aum:,.0f}",
    "age_below_min": lambda r, _f: f"age below {r.min_age}",
    "age_above_max": lambda r, _f: f"age above {r.max_age}",
    "segment_not_allowed": lambda _r, _f: "customer is in no allowed segment",
    "region_not_allowed": lambda _r, f: f"region {f.region} not served",
    "lifecycle_not_allowed": lambda _r, f: f"lifecycle stage {f.lifecycle_stage}",
    "required_holding_missing": lambda _r, _f: "customer holds none of the prerequisites",
    "excluded_holding_present": lambda r, f: f"already holds {_excluded_held(r, f)}",
}


def check_eligibility(rules: EligibilityRules, facts: CustomerFacts) -> list[RuleFailure]:
    """Return every eligibility condition the customer fails; an empty list means eligible."""
    return [
        RuleFailure(code=code, message=_ELIGIBILITY_MESSAGES[code](rules, facts))
        for code in eligibility_codes(rules, facts)
    ]


def assessment_expired(facts: CustomerFacts, at: datetime | None = None) -> bool:
    """Whether the customer's risk assessment has an expiry at or before ``at`` (now by default).

    The only way time enters :func:`suitability_code`: two moments with the same answer here get
    the same suitability for every product. Naive times are read as UTC.
    """
    expires = facts.risk_expires_at
    if expires is None:
        return False
    now = at or datetime.now(UTC)
    if expires.tzinfo is None:
        expires = expires.replace(tzinfo=UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return expires <= now


def suitability_code(
    product_risk_rating: int | None, facts: CustomerFacts, at: datetime | None = None
) -> str | None:
    """Why the product is unsuitable for the customer (the code), or None when it is suitable.

    Suitability is law: a C<n> customer may only be offered products rated R1..R<n>. A product
    without a risk rating (deposits, cards, loans, services) is always suitable. For a risk-rated
    product, a missing or expired assessment means *no* — never a default level.
    """
    if product_risk_rating is None:
        return None
    if facts.risk_level is None or facts.risk_expires_at is None:
        return "risk_assessment_missing"
    if assessment_expired(facts, at):
        return "risk_assessment_expired"
    if product_risk_rating > facts.risk_level:
        return "risk_level_too_low"
    return None


def check_suitability(
    product_risk_rating: int | None, facts: CustomerFacts, at: datetime | None = None
) -> list[RuleFailure]:
    """:func:`suitability_code` with its explanation: one failure, or an empty list when suitable."""
    code = suitability_code(product_risk_rating, facts, at)
    if code is None:
        return []
    if code == "risk_assessment_missing":
        message = (
            "no risk assessment on file" if facts.risk_level is None else "risk assessment has no expiry date"
        )
    elif code == "risk_assessment_expired":
        message = "risk assessment expired"
    else:
        message = f"product R{product_risk_rating} exceeds customer C{facts.risk_level}"
    return [RuleFailure(code=code, message=message)]


def is_offerable(
    rules: EligibilityRules,
    product_risk_rating: int | None,
    facts: CustomerFacts,
    at: datetime | None = None,
) -> bool:
    """True when the customer is both eligible for and suitable to the product."""
    return not eligibility_codes(rules, facts) and suitability_code(product_risk_rating, facts, at) is None
