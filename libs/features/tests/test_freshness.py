"""check_freshness: stale or absent values are missing; fresh ones are kept."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from qianmian_features import FeatureValue, check_freshness

NOW = datetime(2025, 7, 1, tzinfo=UTC)
TTLS = {
    "customer_activity": timedelta(days=14),
    "customer_profile": timedelta(days=62),
    "static": timedelta(0),
}


def test_fresh_values_are_kept_and_stale_or_absent_ones_missing() -> None:
    values = {
        "customer_activity:clicks_7d": FeatureValue(3, NOW - timedelta(days=13)),
        "customer_activity:logins_7d": FeatureValue(9, NOW - timedelta(days=14, seconds=1)),
        "customer_profile:aum": FeatureValue(1200.5, NOW - timedelta(days=61)),
        "customer_profile:region": FeatureValue(None, None),
        "static:launch_year": FeatureValue(2001, NOW - timedelta(days=9000)),
    }

    fresh, missing = check_freshness(values, TTLS, NOW)

    assert fresh == {
        "customer_activity:clicks_7d": 3,
        "customer_profile:aum": 1200.5,
        "static:launch_year": 2001,
    }
    assert missing == ["customer_activity:logins_7d", "customer_profile:region"]


def test_a_value_exactly_at_the_ttl_boundary_is_still_fresh() -> None:
    values = {"customer_activity:clicks_7d": FeatureValue(0, NOW - timedelta(days=14))}
    assert check_freshness(values, TTLS, NOW) == ({"customer_activity:clicks_7d": 0}, [])


def test_zero_is_a_value_not_a_missing_one() -> None:
    values = {"customer_profile:risk_level": FeatureValue(0, NOW)}
    assert check_freshness(values, TTLS, NOW) == ({"customer_profile:risk_level": 0}, [])


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        check_freshness({}, TTLS, datetime(2025, 7, 1))


def test_feature_refs_must_name_their_view() -> None:
    with pytest.raises(ValueError, match="view:feature"):
        check_freshness({"clicks_7d": FeatureValue(1, NOW)}, TTLS, NOW)
