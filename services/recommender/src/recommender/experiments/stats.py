"""Statistics of experiment analysis: estimates with intervals, tests against control, SRM, guardrails,
CUPED and the sample-size calculator.

**Fixed-horizon testing.** Every p-value and interval here assumes the sample size was fixed before the
experiment started and that the result is read once, at that size. Looking at the results repeatedly
while the experiment runs and stopping at the first significant reading ("peeking") inflates the
false-positive rate far beyond alpha (to 20-30 % over a few dozen looks). Plan the size with
:func:`sample_size_proportions` or :func:`sample_size_means`, run to it, then decide; every analysis
carries :data:`PEEKING_WARNING`. (Always-valid sequential tests were not chosen: they need wider
intervals for the same data, and the bank's experiments have planned horizons anyway.)

What is provided, all two-sided at level ``alpha`` unless said otherwise:

- per-arm :class:`Estimate`: :func:`proportion` (Wilson interval), :func:`mean` (t interval),
  :func:`ratio` of two per-customer sums (delta method, e.g. clicks per impression or rights cost per
  conversion), and :func:`bootstrap_ci` (percentile bootstrap with a seeded generator) as a check;
- a :class:`Comparison` of treatment against control: :func:`compare_proportions` (z test),
  :func:`compare_means` (Welch's t test), :func:`compare_estimates` (z test on two independent
  estimates, for delta-method ratios), :func:`compare_cuped` (Welch on CUPED-adjusted values);
- :func:`holm`: Holm–Bonferroni adjusted p-values across several treatment arms;
- :func:`srm_check` / :func:`srm_check_periods`: the chi-square sample-ratio-mismatch test, flagged at
  p < 0.001 (an analysis with a flagged SRM must not give a verdict);
- :func:`guardrail_breach`: a one-sided test that a guardrail metric (opt-outs, complaints) is worse
  than control by more than a tolerance;
- :func:`cuped`: CUPED variance reduction with a pre-period covariate;
- :func:`sample_size_proportions`, :func:`sample_size_means`, :func:`mde_proportions`,
  :func:`mde_means`, :func:`mde_from_std_error`: sample size and minimum detectable effect.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
from scipy import optimize, stats

FloatArray = npt.NDArray[np.float64]

#: The significance level used unless a caller says otherwise.
ALPHA: Final = 0.05
#: A sample-ratio mismatch is flagged below this p-value.
SRM_THRESHOLD: Final = 0.001
#: Carried by every analysis (the tests are fixed-horizon).
PEEKING_WARNING: Final = (
    "Fixed-horizon test: p-values and intervals are valid only when read once, at the sample size "
    "planned before the start. Checking repeatedly and stopping at the first significant result "
    "(peeking) inflates the false-positive rate well beyond alpha."
)


def _z(alpha: float) -> float:
    """The two-sided normal quantile of ``alpha``."""
    _check_probability("alpha", alpha)
    return float(stats.norm.ppf(1 - alpha / 2))


def _check_probability(name: str, value: float) -> None:
    if not (0.0 < value < 1.0):
        raise ValueError(f"{name} must be within (0, 1), not {value}")


def _as_array(values: npt.ArrayLike) -> FloatArray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError("expected a one-dimensional sample")
    if not np.all(np.isfinite(array)):
        raise ValueError("sample holds NaN or infinite values")
    return array


def _two_sided_p(statistic: float) -> float:
    return float(2 * stats.norm.sf(abs(statistic)))


@dataclass(frozen=True, slots=True)
class Estimate:
    """A per-arm estimate: its value, standard error and ``1 - alpha`` interval over ``n`` units."""

    value: float
    std_error: float
    ci_low: float
    ci_high: float
    n: int


@dataclass(frozen=True, slots=True)
class Comparison:
    """Treatment minus control: the difference, its interval, the (unadjusted) two-sided p-value."""

    difference: float
    relative: float | None
    std_error: float
    ci_low: float
    ci_high: float
    p_value: float


def proportion(successes: int, n: int, *, alpha: float = ALPHA) -> Estimate:
    """A proportion with its Wilson interval (well-behaved near 0, where opt-out rates live)."""
    if n <= 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n and n > 0, got {successes}/{n}")
    z = _z(alpha)
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    # At 0 and n successes the bound is exactly 0 or 1; rounding would leave 1e-18.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return Estimate(p, math.sqrt(p * (1 - p) / n), low, high, n)


def mean(values: npt.ArrayLike, *, alpha: float = ALPHA) -> Estimate:
    """A mean with its t interval."""
    sample = _as_array(values)
    n = sample.size
    if n < 2:
        raise ValueError("a mean's interval needs at least 2 values")
    value = float(sample.mean())
    se = float(sample.std(ddof=1)) / math.sqrt(n)
    half = float(stats.t.ppf(1 - alpha / 2, n - 1)) * se
    return Estimate(value, se, value - half, value + half, n)


def ratio(numerators: npt.ArrayLike, denominators: npt.ArrayLike, *, alpha: float = ALPHA) -> Estimate:
    """``sum(numerators) / sum(denominators)`` over units (customers), with a delta-method interval.

    The unit of randomisation is the customer, so per-customer sums are the independent observations;
    treating impressions as independent would understate the variance of e.g. a click-through rate.
    """
    x, y = _as_array(numerators), _as_array(denominators)
    n = x.size
    if n != y.size:
        raise ValueError("numerators and denominators differ in length")
    if n < 2:
        raise ValueError("a ratio's interval needs at least 2 units")
    mean_y = float(y.mean())
    if mean_y <= 0:
        raise ValueError("the denominator's sum must be positive")
    r = float(x.mean()) / mean_y
    covariance = np.cov(x, y, ddof=1)
    variance = (covariance[0, 0] - 2 * r * covariance[0, 1] + r * r * covariance[1, 1]) / (n * mean_y**2)
    se = math.sqrt(max(float(variance), 0.0))
    half = _z(alpha) * se
    return Estimate(r, se, r - half, r + half, n)


def bootstrap_ci(
    statistic: Callable[..., float],
    *columns: npt.ArrayLike,
    resamples: int = 2000,
    alpha: float = ALPHA,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic(*columns)``, resampling units (rows) with a seeded
    generator; the columns are per-unit values of equal length (e.g. clicks and impressions)."""
    arrays = [_as_array(c) for c in columns]
    if not arrays or len({a.size for a in arrays}) != 1 or arrays[0].size < 2:
        raise ValueError("give one or more columns of equal length, at least 2 units")
    if resamples < 100:
        raise ValueError("use at least 100 resamples")
    _check_probability("alpha", alpha)
    rng = np.random.default_rng(seed)
    n = arrays[0].size
    values = np.empty(resamples)
    for i in range(resamples):
        index = rng.integers(0, n, size=n)
        values[i] = statistic(*(a[index] for a in arrays))
    low, high = np.quantile(values, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def _comparison(difference: float, control: float, se: float, p_value: float, half: float) -> Comparison:
    relative = difference / control if control != 0 else None
    return Comparison(difference, relative, se, difference - half, difference + half, p_value)


def compare_proportions(
    successes_t: int, n_t: int, successes_c: int, n_c: int, *, alpha: float = ALPHA
) -> Comparison:
    """Two-proportion z test (pooled standard error) and an unpooled interval of the difference."""
    p_t = proportion(successes_t, n_t, alpha=alpha).value
    p_c = proportion(successes_c, n_c, alpha=alpha).value
    difference = p_t - p_c
    pooled = (successes_t + successes_c) / (n_t + n_c)
    se_pooled = math.sqrt(pooled * (1 - pooled) * (1 / n_t + 1 / n_c))
    se = math.sqrt(p_t * (1 - p_t) / n_t + p_c * (1 - p_c) / n_c)
    p_value = 1.0 if se_pooled == 0 else _two_sided_p(difference / se_pooled)
    return _comparison(difference, p_c, se, p_value, _z(alpha) * se)


def compare_means(treatment: npt.ArrayLike, control: npt.ArrayLike, *, alpha: float = ALPHA) -> Comparison:
    """Welch's t test (unequal variances) and its interval of the difference of means."""
    t, c = _as_array(treatment), _as_array(control)
    if t.size < 2 or c.size < 2:
        raise ValueError("Welch's test needs at least 2 values per arm")
    _check_probability("alpha", alpha)
    difference = float(t.mean() - c.mean())
    v_t, v_c = float(t.var(ddof=1)) / t.size, float(c.var(ddof=1)) / c.size
    se = math.sqrt(v_t + v_c)
    if se == 0:
        return _comparison(difference, float(c.mean()), 0.0, 1.0 if difference == 0 else 0.0, 0.0)
    df = (v_t + v_c) ** 2 / (v_t**2 / (t.size - 1) + v_c**2 / (c.size - 1))
    p_value = float(2 * stats.t.sf(abs(difference / se), df))
    half = float(stats.t.ppf(1 - alpha / 2, df)) * se
    return _comparison(difference, float(c.mean()), se, p_value, half)


def compare_estimates(treatment: Estimate, control: Estimate, *, alpha: float = ALPHA) -> Comparison:
    """z test of the difference of two independent estimates (e.g. delta-method ratios)."""
    difference = treatment.value - control.value
    se = math.sqrt(treatment.std_error**2 + control.std_error**2)
    p_value = (1.0 if difference == 0 else 0.0) if se == 0 else _two_sided_p(difference / se)
    return _comparison(difference, control.value, se, p_value, _z(alpha) * se)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values, in the order given (compare each with alpha).

    Sorted ascending, the i-th smallest (0-based) is multiplied by ``m - i``; the running maximum keeps
    the adjusted values monotone, and they are capped at 1.
    """
    m = len(p_values)
    if any(not (0.0 <= p <= 1.0) for p in p_values):
        raise ValueError("p-values must be within 0..1")
    adjusted = [0.0] * m
    running = 0.0
    for rank, index in enumerate(sorted(range(m), key=lambda i: p_values[i])):
        running = max(running, min(1.0, (m - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


@dataclass(frozen=True, slots=True)
class SrmResult:
    """The sample-ratio-mismatch test: observed against expected units per arm."""

    chi2: float
    dof: int
    p_value: float
    flagged: bool
    threshold: float
    observed: tuple[int, ...]
    expected: tuple[float, ...]


def srm_check(
    observed: Sequence[int], weights: Sequence[float], *, threshold: float = SRM_THRESHOLD
) -> SrmResult:
    """Chi-square test of the observed units per arm against the arms' weights; flagged below
    ``threshold`` (0.001). A unit in an arm of weight 0 is a mismatch by itself."""
    return srm_check_periods([(observed, weights)], threshold=threshold)


def srm_check_periods(
    periods: Sequence[tuple[Sequence[int], Sequence[float]]], *, threshold: float = SRM_THRESHOLD
) -> SrmResult:
    """The SRM test over periods of constant weights (weights changed while running): each period's
    units are tested against its own weights and the independent chi-squares are summed."""
    if not periods:
        raise ValueError("give at least one period")
    chi2_total, dof_total, impossible = 0.0, 0, False
    observed_total: list[int] = [0] * len(periods[0][0])
    expected_total: list[float] = [0.0] * len(periods[0][0])
    for observed, weights in periods:
        if len(observed) != len(weights) or len(observed) != len(observed_total):
            raise ValueError("every period needs one count and one weight per arm")
        if any(o < 0 for o in observed) or any(not (math.isfinite(w) and w >= 0) for w in weights):
            raise ValueError("counts and weights must be non-negative")
        total_weight = math.fsum(weights)
        if total_weight <= 0:
            raise ValueError("weights must not all be 0")
        n = sum(observed)
        expected = [n * w / total_weight for w in weights]
        for i, (o, e) in enumerate(zip(observed, expected, strict=True)):
            observed_total[i] += o
            expected_total[i] += e
            if e == 0 and o > 0:
                impossible = True
        live = [(o, e) for o, e in zip(observed, expected, strict=True) if e > 0]
        if n > 0 and len(live) > 1:
            chi2_total += sum((o - e) ** 2 / e for o, e in live)
            dof_total += len(live) - 1
    if impossible:
        p_value = 0.0
    elif dof_total == 0:
        p_value = 1.0
    else:
        p_value = float(stats.chi2.sf(chi2_total, dof_total))
    return SrmResult(
        chi2=chi2_total,
        dof=dof_total,
        p_value=p_value,
        flagged=p_value < threshold,
        threshold=threshold,
        observed=tuple(observed_total),
        expected=tuple(expected_total),
    )


@dataclass(frozen=True, slots=True)
class GuardrailResult:
    """Whether a treatment is worse than control on a guardrail by more than the tolerance."""

    metric: str
    difference: float
    tolerance: float
    p_value: float
    breached: bool


def guardrail_breach(
    comparison: Comparison,
    *,
    metric: str,
    tolerance: float,
    alpha: float = ALPHA,
    higher_is_worse: bool = True,
) -> GuardrailResult:
    """One-sided test of "worse by more than ``tolerance``" (in the metric's own unit, e.g. 0.001 for
    0.1 percentage point of opt-out rate): breached when significant at ``alpha``."""
    if not (math.isfinite(tolerance) and tolerance >= 0):
        raise ValueError("tolerance must be finite and >= 0")
    _check_probability("alpha", alpha)
    worse_by = comparison.difference if higher_is_worse else -comparison.difference
    excess = worse_by - tolerance
    if comparison.std_error == 0:
        p_value = 0.0 if excess > 0 else 1.0
    else:
        p_value = float(stats.norm.sf(excess / comparison.std_error))
    return GuardrailResult(metric, comparison.difference, tolerance, p_value, p_value < alpha)


@dataclass(frozen=True, slots=True)
class CupedResult:
    """CUPED-adjusted values ``y - theta (x - mean_x)``, their mean and the variance of that mean."""

    theta: float
    adjusted: FloatArray
    mean: float
    variance: float


def cuped_theta(y: npt.ArrayLike, x: npt.ArrayLike) -> float:
    """``cov(y, x) / var(x)``: the coefficient that minimises the adjusted variance (0 when x is constant)."""
    ys, xs = _as_array(y), _as_array(x)
    if ys.size != xs.size or ys.size < 2:
        raise ValueError("y and x need equal lengths of at least 2")
    variance = float(xs.var(ddof=1))
    return 0.0 if variance == 0 else float(np.cov(ys, xs, ddof=1)[0, 1]) / variance


def cuped(
    y: npt.ArrayLike, x: npt.ArrayLike, *, theta: float | None = None, covariate_mean: float | None = None
) -> CupedResult:
    """CUPED (Deng et al. 2013): adjust the metric ``y`` by the pre-period covariate ``x``.

    Comparing arms needs one ``theta`` and one ``covariate_mean`` for all of them (computed on the
    pooled data, as :func:`compare_cuped` does); otherwise the adjustment may bias the difference.
    """
    ys, xs = _as_array(y), _as_array(x)
    if ys.size != xs.size or ys.size < 2:
        raise ValueError("y and x need equal lengths of at least 2")
    theta = cuped_theta(ys, xs) if theta is None else theta
    centre = float(xs.mean()) if covariate_mean is None else covariate_mean
    adjusted = ys - theta * (xs - centre)
    return CupedResult(theta, adjusted, float(adjusted.mean()), float(adjusted.var(ddof=1)) / ys.size)


def compare_cuped(
    y_t: npt.ArrayLike,
    x_t: npt.ArrayLike,
    y_c: npt.ArrayLike,
    x_c: npt.ArrayLike,
    *,
    alpha: float = ALPHA,
) -> tuple[Comparison, float]:
    """Welch's test on CUPED-adjusted values with ``theta`` and the covariate mean of the pooled arms;
    the comparison and ``theta``."""
    yt, xt, yc, xc = _as_array(y_t), _as_array(x_t), _as_array(y_c), _as_array(x_c)
    pooled_y, pooled_x = np.concatenate([yt, yc]), np.concatenate([xt, xc])
    theta = cuped_theta(pooled_y, pooled_x)
    centre = float(pooled_x.mean())
    treatment = cuped(yt, xt, theta=theta, covariate_mean=centre)
    control = cuped(yc, xc, theta=theta, covariate_mean=centre)
    return compare_means(treatment.adjusted, control.adjusted, alpha=alpha), theta


def _power_z(alpha: float, power: float) -> tuple[float, float]:
    _check_probability("power", power)
    return _z(alpha), float(stats.norm.ppf(power))


def _n_proportions(baseline: float, mde: float, z_alpha: float, z_beta: float) -> float:
    treated = baseline + mde
    pooled = (baseline + treated) / 2
    numerator = z_alpha * math.sqrt(2 * pooled * (1 - pooled)) + z_beta * math.sqrt(
        baseline * (1 - baseline) + treated * (1 - treated)
    )
    return (numerator / mde) ** 2


def sample_size_proportions(baseline: float, mde: float, *, alpha: float = ALPHA, power: float = 0.8) -> int:
    """Customers per arm to detect an absolute change ``mde`` of a rate ``baseline`` (two-sided test,
    equal arms). E.g. 10 % → 12 % at alpha 0.05 and power 0.8: 3,841 per arm."""
    _check_probability("baseline", baseline)
    if mde == 0 or not 0 < baseline + mde < 1:
        raise ValueError("mde must be non-zero and keep the treated rate within (0, 1)")
    z_alpha, z_beta = _power_z(alpha, power)
    return math.ceil(_n_proportions(baseline, mde, z_alpha, z_beta))


def sample_size_means(std_dev: float, mde: float, *, alpha: float = ALPHA, power: float = 0.8) -> int:
    """Units per arm to detect a change ``mde`` of a mean with standard deviation ``std_dev``."""
    if std_dev <= 0 or mde == 0:
        raise ValueError("std_dev must be positive and mde non-zero")
    z_alpha, z_beta = _power_z(alpha, power)
    return math.ceil(2 * ((z_alpha + z_beta) * std_dev / mde) ** 2)


def mde_proportions(baseline: float, n_per_arm: int, *, alpha: float = ALPHA, power: float = 0.8) -> float:
    """The smallest absolute increase of a rate ``baseline`` that ``n_per_arm`` customers per arm
    detect (the inverse of :func:`sample_size_proportions`)."""
    _check_probability("baseline", baseline)
    if n_per_arm < 1:
        raise ValueError("n_per_arm must be at least 1")
    z_alpha, z_beta = _power_z(alpha, power)
    upper = 1 - baseline - 1e-12

    def gap(mde: float) -> float:
        return _n_proportions(baseline, mde, z_alpha, z_beta) - n_per_arm

    if gap(upper) > 0:
        raise ValueError(f"{n_per_arm} customers per arm cannot detect any increase of {baseline}")
    return float(optimize.brentq(gap, 1e-12, upper, xtol=1e-12))


def mde_means(std_dev: float, n_per_arm: int, *, alpha: float = ALPHA, power: float = 0.8) -> float:
    """The smallest change of a mean that ``n_per_arm`` units per arm detect."""
    if std_dev <= 0 or n_per_arm < 1:
        raise ValueError("std_dev must be positive and n_per_arm at least 1")
    z_alpha, z_beta = _power_z(alpha, power)
    return (z_alpha + z_beta) * std_dev * math.sqrt(2 / n_per_arm)


def mde_from_std_error(std_error: float, *, alpha: float = ALPHA, power: float = 0.8) -> float:
    """The minimum detectable effect of a comparison whose difference has standard error ``std_error``."""
    z_alpha, z_beta = _power_z(alpha, power)
    return (z_alpha + z_beta) * std_error
