"""The one rule engine for eligibility and suitability.

Eligibility rules are *data* owned by product-hub; this package evaluates them so that
product-hub's ``eligible_for`` listing and the recommender's policy stage give the same
answer from the same code.
"""

from qianmian_rules.engine import (
    assessment_expired,
    check_eligibility,
    check_suitability,
    eligibility_codes,
    is_offerable,
    suitability_code,
)
from qianmian_rules.model import (
    CHANNELS,
    LIFECYCLE_STAGES,
    MOMENT_TYPES,
    PRODUCT_TYPES,
    SEGMENTS,
    CustomerFacts,
    EligibilityRules,
    MomentType,
    RuleFailure,
)

__all__ = [
    "CHANNELS",
    "LIFECYCLE_STAGES",
    "MOMENT_TYPES",
    "PRODUCT_TYPES",
    "SEGMENTS",
    "CustomerFacts",
    "EligibilityRules",
    "MomentType",
    "RuleFailure",
    "assessment_expired",
    "check_eligibility",
    "check_suitability",
    "eligibility_codes",
    "is_offerable",
    "suitability_code",
]
