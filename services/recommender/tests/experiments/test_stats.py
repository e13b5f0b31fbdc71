"""The analysis statistics on seeded simulations with known truth, and against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from recommender.experiments import stats

SEED = 20261201


def test_aa_experiments_give_a_false_positive_rate_of_five_percent() -> None:
    # 200 A/A experiments, 2,000 customers per arm, the same 10 % conversion rate in both arms.
    rng = np.random.default_rng(SEED)
    conversions = rng.binomial(2000, 0.10, size=(200, 2))
    p_values = [stats.compare_proportions(int(t), 2000, int(c), 2000).p_value for t, c in conversions]
    rate = sum(p < 0.05 for p in p_values) / 200
    assert 0.02 <= rate <= 0.08, rate
    # Welch's test on a skewed per-customer amount (AUM-like) behaves too.
    amounts = rng.lognormal(8, 1.5, size=(200, 2, 2000)) * rng.binomial(1, 0.1, size=(200, 2, 2000))
    welch = [stats.compare_means(a[0], a[1]).p_value for a in amounts]
    assert 0.02 <= sum(p < 0.05 for p in welch) / 200 <= 0.08


def test_a_real_difference_is_detected_and_its_interval_covers_it() -> None:
    comparison = stats.compare_proportions(480, 4000, 400, 4000)  # 12 % against 10 %
    assert comparison.p_value < 0.01
    assert comparison.ci_low < 0.02 < comparison.ci_high
    assert comparison.relative == pytest.approx(0.2)


def test_an_injected_sample_ratio_mismatch_is_flagged_and_a_fair_split_is_not() -> None:
    injected = stats.srm_check([10_000, 10_600], [50, 50])
    assert injected.flagged
    assert injected.p_value < 0.001
    assert injected.chi2 == pytest.approx(2 * 300**2 / 10_300)
    fair = stats.srm_check([10_000, 10_100], [50, 50])
    assert not fair.flagged
    assert stats.srm_check([7_000, 3_000], [70, 30]).p_value == pytest.approx(1.0)
    # A unit in an arm of weight 0 is a mismatch by itself.
    assert stats.srm_check([100, 1], [1, 0]).flagged


def test_srm_over_periods_tests_each_period_against_its_own_weights() -> None:
    # 50/50 for the first period, 10/90 after a ramp: fine per period, a mismatch when pooled.
    periods = [([5_000, 5_020], [50, 50]), ([1_000, 9_000], [10, 90])]
    assert not stats.srm_check_periods(periods).flagged
    assert stats.srm_check([6_000, 14_020], [10, 90]).flagged


def test_cuped_narrows_the_interval_and_stays_unbiased() -> None:
    rng = np.random.default_rng(SEED)
    effect, widths_raw, widths_cuped, estimates = 1.0, [], [], []
    for _ in range(100):
        x_t, x_c = rng.normal(100, 20, 500), rng.normal(100, 20, 500)
        y_t = 0.8 * x_t + rng.normal(0, 10, 500) + effect
        y_c = 0.8 * x_c + rng.normal(0, 10, 500)
        raw = stats.compare_means(y_t, y_c)
        adjusted, theta = stats.compare_cuped(y_t, x_t, y_c, x_c)
        assert theta == pytest.approx(0.8, abs=0.1)
        widths_raw.append(raw.ci_high - raw.ci_low)
        widths_cuped.append(adjusted.ci_high - adjusted.ci_low)
        estimates.append(adjusted.difference)
    # Var(y) = 0.64 * 400 + 100 = 356, residual 100: the interval shrinks to sqrt(100/356) ≈ 53 %.
    assert np.mean(widths_cuped) < 0.6 * np.mean(widths_raw)
    # Unbiased: the mean estimate is within 3 standard errors of the true effect.
    assert abs(np.mean(estimates) - effect) < 3 * np.std(estimates) / math.sqrt(100)


def test_cuped_single_arm_result() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(0, 1, 1000)
    y = 2 * x + rng.normal(0, 1, 1000)
    result = stats.cuped(y, x)
    assert result.theta == pytest.approx(2.0, abs=0.1)
    assert result.mean == pytest.approx(float(np.mean(y)))  # centred covariate: the mean is kept
    assert result.variance < float(np.var(y, ddof=1)) / 1000 / 3
    assert stats.cuped(y, np.ones(1000)).theta == 0.0  # a constant covariate changes nothing


def test_delta_method_interval_of_a_ratio_covers_the_truth_in_at_least_90_percent() -> None:
    # Clicks per impression with customers of heterogeneous click propensity (mean 0.1) and varying
    # numbers of impressions: per-customer sums are the independent units.
    rng = np.random.default_rng(SEED)
    covered = 0
    for _ in range(200):
        impressions = 1 + rng.poisson(3, 1000)
        clicks = rng.binomial(impressions, rng.beta(2, 18, 1000))
        estimate = stats.ratio(clicks, impressions)
        covered += estimate.ci_low <= 0.1 <= estimate.ci_high
    assert covered / 200 >= 0.90, covered


def test_bootstrap_agrees_with_the_delta_method_and_is_reproducible() -> None:
    rng = np.random.default_rng(3)
    impressions = 1 + rng.poisson(3, 800)
    clicks = rng.binomial(impressions, 0.1)
    delta = stats.ratio(clicks, impressions)

    def ctr(c: np.ndarray, i: np.ndarray) -> float:
        return float(c.sum() / i.sum())

    low, high = stats.bootstrap_ci(ctr, clicks, impressions, resamples=1000, seed=7)
    assert (low, high) == stats.bootstrap_ci(ctr, clicks, impressions, resamples=1000, seed=7)
    assert low == pytest.approx(delta.ci_low, rel=0.1)
    assert high == pytest.approx(delta.ci_high, rel=0.1)


def test_holm_against_a_hand_computed_example() -> None:
    # Sorted: 0.005×4 = 0.02; 0.01×3 = 0.03; 0.03×2 = 0.06; 0.04×1 = 0.04 → raised to 0.06 (monotone).
    assert stats.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert stats.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1
    assert stats.holm([]) == []


def test_sample_size_against_hand_computed_values() -> None:
    # 10 % → 12 %, alpha 0.05 two-sided (z = 1.959964), power 0.8 (z = 0.841621), pooled p = 0.11:
    # n = (1.959964·√(2·0.11·0.89) + 0.841621·√(0.1·0.9 + 0.12·0.88))² / 0.02²
    #   = (0.867265 + 0.372225)² / 0.0004 = 3840.8 → 3,841 per arm.
    assert stats.sample_size_proportions(0.10, 0.02) == 3841
    # Means: 2·(1.959964 + 0.841621)²·10² / 1² = 1569.8 → 1,570 per arm.
    assert stats.sample_size_means(10, 1) == 1570
    # The MDE calculators invert them.
    assert stats.mde_proportions(0.10, 3841) == pytest.approx(0.02, abs=1e-4)
    assert stats.mde_means(10, 1570) == pytest.approx(1.0, abs=1e-3)
    assert stats.mde_from_std_error(1.0) == pytest.approx(1.959964 + 0.841621, abs=1e-5)
    with pytest.raises(ValueError, match="mde"):
        stats.sample_size_proportions(0.10, 0.95)


def test_guardrail_breach_needs_a_significant_excess_over_the_tolerance() -> None:
    worse = stats.compare_proportions(200, 10_000, 100, 10_000)  # opt-outs 2 % against 1 %
    assert stats.guardrail_breach(worse, metric="opt_out_rate", tolerance=0.002).breached
    assert not stats.guardrail_breach(worse, metric="opt_out_rate", tolerance=0.02).breached
    same = stats.compare_proportions(100, 10_000, 100, 10_000)
    assert not stats.guardrail_breach(same, metric="opt_out_rate", tolerance=0.0).breached
    # A lower-is-better metric going up is worse; going down is not.
    cheaper = stats.Comparison(-5.0, -0.1, 1.0, -7.0, -3.0, 0.0)
    assert not stats.guardrail_breach(cheaper, metric="cost", tolerance=0, higher_is_worse=True).breached
    assert stats.guardrail_breach(cheaper, metric="ctr", tolerance=0, higher_is_worse=False).breached


def test_estimates() -> None:
    none = stats.proportion(0, 100)
    assert none.ci_low == 0.0
    assert none.ci_high == pytest.approx(1.959964**2 / (100 + 1.959964**2), rel=1e-4)  # Wilson
    m = stats.mean([1.0, 2.0, 3.0, 4.0])
    assert m.value == 2.5
    assert m.ci_low < 2.5 < m.ci_high
    with pytest.raises(ValueError, match="positive"):
        stats.ratio([0, 0], [0, 0])
    assert stats.PEEKING_WARNING.startswith("Fixed-horizon")
