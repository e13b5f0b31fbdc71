"""Placeholders: shared with the recommender, which renders bundles' variants the same way."""

from qianmian_rules.placeholders import (
    ALLOWED_PLACEHOLDERS,
    NEUTRAL_SALUTATION,
    NEUTRAL_SEGMENT_NAME,
    PRODUCT_PLACEHOLDERS,
    SEGMENT_NAMES,
    SENSITIVE_PLACEHOLDERS,
    PlaceholderUse,
    customer_values,
    fill,
    longest_customer_values,
    product_values,
    scan,
    segment_for,
)

__all__ = [
    "ALLOWED_PLACEHOLDERS",
    "NEUTRAL_SALUTATION",
    "NEUTRAL_SEGMENT_NAME",
    "PRODUCT_PLACEHOLDERS",
    "SEGMENT_NAMES",
    "SENSITIVE_PLACEHOLDERS",
    "PlaceholderUse",
    "customer_values",
    "fill",
    "longest_customer_values",
    "product_values",
    "scan",
    "segment_for",
]
