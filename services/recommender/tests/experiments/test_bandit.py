"""Thompson sampling moves traffic to the clearly better content variant, keeps the exploration floor
for the others, and is reproducible for a seed."""

from __future__ import annotations

from collections import Counter
from datetime import date, timedelta

import numpy as np
import pytest
from recommender.experiments.bandit import ThompsonAllocator, VariantCounts, choose

TRUE_CTR = {"plain": 0.02, "rate_first": 0.03, "story": 0.05}
FLOOR = 0.05


def _simulate(seed: int, days: int = 14, per_day: int = 3000) -> list[dict[str, float]]:
    """Customers C0..: each day the allocation is recomputed from the counts so far."""
    allocator = ThompsonAllocator(list(TRUE_CTR), floor=FLOOR, seed=seed, draws=5000)
    rng = np.random.default_rng(seed)
    counts = {v: VariantCounts() for v in TRUE_CTR}
    history = []
    for d in range(days):
        day = date(2026, 12, 1) + timedelta(days=d)
        allocation = allocator.allocation(counts)
        history.append(allocation)
        served = Counter(choose(allocation, "banner-test", f"C{n:07d}", day) for n in range(per_day))
        for variant, impressions in served.items():
            clicks = int(rng.binomial(impressions, TRUE_CTR[variant]))
            before = counts[variant]
            counts[variant] = VariantCounts(before.impressions + impressions, before.clicks + clicks)
    history.append(allocator.allocation(counts))
    return history


def test_allocation_converges_to_the_better_variant_and_keeps_the_floor() -> None:
    history = _simulate(seed=5)
    assert history[0] == pytest.approx(dict.fromkeys(TRUE_CTR, 1 / 3), abs=0.02)  # no data: even
    final = history[-1]
    assert final["story"] > 0.8
    for allocation in history:
        assert sum(allocation.values()) == pytest.approx(1.0)
        assert all(share >= FLOOR - 1e-12 for share in allocation.values())
    assert final["plain"] == pytest.approx(FLOOR, abs=0.01)


def test_same_seed_same_allocations() -> None:
    assert _simulate(seed=9, days=4) == _simulate(seed=9, days=4)


def test_a_customer_sees_one_variant_all_day_and_shares_follow_the_allocation() -> None:
    allocation = {"plain": 0.1, "rate_first": 0.2, "story": 0.7}
    day = date(2026, 12, 3)
    assert {choose(allocation, "s", "C1", day) for _ in range(5)} == {choose(allocation, "s", "C1", day)}
    served = Counter(choose(allocation, "s", f"C{n}", day) for n in range(20_000))
    for variant, share in allocation.items():
        assert abs(served[variant] / 20_000 - share) < 0.01


def test_report_has_posteriors_intervals_and_shares() -> None:
    allocator = ThompsonAllocator(["a", "b"], floor=0.1, seed=1)
    report = allocator.report({"a": VariantCounts(1000, 20), "b": VariantCounts(1000, 60)})
    a, b = report.variants
    assert a.posterior_mean == pytest.approx(21 / 1002)
    assert a.ci_low < a.posterior_mean < a.ci_high
    assert b.probability_best > 0.99
    assert b.share == pytest.approx(0.1 + 0.8 * b.probability_best)
    assert a.share == pytest.approx(0.1, abs=0.01)
    assert report.as_json()["method"] == "thompson_sampling"


def test_invalid_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="floor"):
        ThompsonAllocator(["a", "b", "c"], floor=0.4)
    with pytest.raises(ValueError, match="distinct"):
        ThompsonAllocator(["a", "a"])
    with pytest.raises(ValueError, match="clicks"):
        VariantCounts(impressions=1, clicks=2)
