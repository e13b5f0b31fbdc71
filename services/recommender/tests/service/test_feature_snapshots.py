"""A cached feature read's snapshot is kept per freshness epoch: the same answer as checking afresh."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY
from qianmian_features.freshness import FeatureValue
from recommender.service.context import snapshot_features

T0 = datetime(2026, 11, 1, tzinfo=UTC)
VIEWS = ("customer_profile", "customer_activity", "customer_moments")


@st.composite
def reads(draw: st.DrawFn) -> dict[str, FeatureValue]:
    raw = {}
    for view in VIEWS:
        for feature in range(draw(st.integers(0, 3))):
            stamp = draw(st.none() | st.integers(0, 20 * 24).map(lambda h: T0 + timedelta(hours=h)))
            value = draw(st.none() | st.integers(0, 100))
            raw[f"{view}:f{feature}"] = FeatureValue(value, stamp)
    return raw


TTLS = st.fixed_dictionaries(
    {v: st.sampled_from([timedelta(0), timedelta(days=1), timedelta(days=7)]) for v in VIEWS}
)
MOMENTS = st.lists(
    st.integers(0, 30 * 24 * 60).map(lambda m: T0 + timedelta(minutes=m)), min_size=1, max_size=12
)


@settings(max_examples=200, deadline=None)
@given(reads(), TTLS, MOMENTS)
def test_a_kept_snapshot_is_what_checking_afresh_gives(
    raw: dict[str, FeatureValue], ttl: dict[str, timedelta], moments: list[datetime]
) -> None:
    for at in [*moments, *sorted(moments)]:
        kept = snapshot_features(raw, ttl, at, keep=True)
        fresh = snapshot_features(raw, ttl, at)
        assert kept == fresh


def test_freshness_is_counted_per_decision_also_when_kept() -> None:
    raw = {"customer_activity:clicks_7d": FeatureValue(3, T0)}
    ttl = {"customer_activity": timedelta(days=1)}
    labels = {"view": "customer_activity", "kind": "stale"}

    def counted() -> float:
        return REGISTRY.get_sample_value("qianmian_feature_freshness_failures_total", labels) or 0.0

    before = counted()
    late = T0 + timedelta(days=2)
    first = snapshot_features(raw, ttl, late, keep=True)
    again = snapshot_features(raw, ttl, late + timedelta(minutes=1), keep=True)
    assert again is first
    assert first.problems == ("features_stale",)
    assert counted() == before + 2
    # Before the boundary the same read is fresh: another epoch, another snapshot.
    assert snapshot_features(raw, ttl, T0 + timedelta(hours=23), keep=True).problems == ()
