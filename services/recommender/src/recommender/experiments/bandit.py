"""Thompson-sampling allocation of content variants, with an exploration floor and a report.

Each variant's click-through rate has a Beta posterior: ``Beta(a + clicks, b + impressions - clicks)``
from a ``Beta(a, b)`` prior (uniform by default). Thompson sampling serves each variant with the
probability that it is the best one; :meth:`ThompsonAllocator.allocation` estimates those
probabilities from ``draws`` joint posterior samples of a seeded generator, so one set of counts always
gives the same allocation. Every variant keeps at least ``floor`` of the traffic, so a variant that
started unlucky is still measured and can recover:

    share = floor + (1 - k * floor) * P(variant is best)        for k variants

Allocation is recomputed in batches (e.g. once a day from the counts so far) rather than per request,
and :func:`choose` maps a customer to a variant with a hash of (salt, customer, day): a customer sees
one variant all day, every process agrees on it, and across customers the shares hold.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Final

import numpy as np
from scipy import stats

#: The default share of traffic every variant keeps.
DEFAULT_FLOOR: Final = 0.05
#: Posterior samples per allocation.
DEFAULT_DRAWS: Final = 20_000


@dataclass(frozen=True, slots=True)
class VariantCounts:
    """What a content variant has collected: impressions and the clicks among them."""

    impressions: int = 0
    clicks: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.clicks <= self.impressions:
            raise ValueError(f"need 0 <= clicks <= impressions, got {self.clicks}/{self.impressions}")


@dataclass(frozen=True, slots=True)
class VariantReport:
    """One variant's line in the bandit report (credible interval: central 95 % of the posterior)."""

    variant: str
    impressions: int
    clicks: int
    posterior_mean: float
    ci_low: float
    ci_high: float
    probability_best: float
    share: float


@dataclass(frozen=True, slots=True)
class BanditReport:
    """The bandit's state: per variant its counts, posterior and current allocation share."""

    variants: tuple[VariantReport, ...]
    floor: float
    draws: int
    seed: int

    def as_json(self) -> dict[str, object]:
        return {
            "method": "thompson_sampling",
            "floor": self.floor,
            "draws": self.draws,
            "seed": self.seed,
            "variants": [
                {
                    "variant": v.variant,
                    "impressions": v.impressions,
                    "clicks": v.clicks,
                    "posterior_mean": v.posterior_mean,
                    "ci_low": v.ci_low,
                    "ci_high": v.ci_high,
                    "probability_best": v.probability_best,
                    "share": v.share,
                }
                for v in self.variants
            ],
        }


class ThompsonAllocator:
    """Thompson-sampling shares for a fixed list of content variants."""

    def __init__(
        self,
        variants: Sequence[str],
        *,
        floor: float = DEFAULT_FLOOR,
        prior: tuple[float, float] = (1.0, 1.0),
        draws: int = DEFAULT_DRAWS,
        seed: int = 0,
    ) -> None:
        if len(variants) < 2 or len(set(variants)) != len(variants):
            raise ValueError("give at least two distinct variants")
        if not (math.isfinite(floor) and floor >= 0 and floor * len(variants) <= 1):
            raise ValueError(f"floor must be within 0..1/{len(variants)}, not {floor}")
        if min(prior) <= 0:
            raise ValueError("the Beta prior's parameters must be positive")
        if draws < 100:
            raise ValueError("use at least 100 draws")
        self.variants = tuple(variants)
        self.floor = floor
        self.prior = prior
        self.draws = draws
        self.seed = seed

    def _posteriors(self, counts: Mapping[str, VariantCounts]) -> list[tuple[float, float]]:
        unknown = set(counts) - set(self.variants)
        if unknown:
            raise ValueError(f"counts for unknown variants: {sorted(unknown)}")
        a, b = self.prior
        posteriors = []
        for variant in self.variants:
            c = counts.get(variant, VariantCounts())
            posteriors.append((a + c.clicks, b + c.impressions - c.clicks))
        return posteriors

    def probability_best(self, counts: Mapping[str, VariantCounts]) -> dict[str, float]:
        """Monte Carlo estimate of P(variant has the highest click-through rate) (seeded)."""
        rng = np.random.default_rng(self.seed)
        samples = np.column_stack([rng.beta(a, b, size=self.draws) for a, b in self._posteriors(counts)])
        wins = np.bincount(samples.argmax(axis=1), minlength=len(self.variants))
        return {v: float(w) / self.draws for v, w in zip(self.variants, wins, strict=True)}

    def allocation(self, counts: Mapping[str, VariantCounts]) -> dict[str, float]:
        """Each variant's share of traffic: the floor plus its part of the rest by P(best); sums to 1."""
        best = self.probability_best(counts)
        rest = 1 - self.floor * len(self.variants)
        return {v: self.floor + rest * best[v] for v in self.variants}

    def report(self, counts: Mapping[str, VariantCounts]) -> BanditReport:
        """Counts, posterior mean and 95 % credible interval, P(best) and share of every variant."""
        best = self.probability_best(counts)
        rest = 1 - self.floor * len(self.variants)
        lines = []
        for variant, (a, b) in zip(self.variants, self._posteriors(counts), strict=True):
            c = counts.get(variant, VariantCounts())
            low, high = stats.beta.ppf([0.025, 0.975], a, b)
            lines.append(
                VariantReport(
                    variant=variant,
                    impressions=c.impressions,
                    clicks=c.clicks,
                    posterior_mean=a / (a + b),
                    ci_low=float(low),
                    ci_high=float(high),
                    probability_best=best[variant],
                    share=self.floor + rest * best[variant],
                )
            )
        return BanditReport(tuple(lines), self.floor, self.draws, self.seed)


def daily_draw(salt: str, customer_id: str, day: date) -> float:
    """A uniform number in ``[0, 1)`` fixed by (salt, customer, day)."""
    digest = hashlib.sha256(f"{salt}:{customer_id}:{day.isoformat()}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def choose(allocation: Mapping[str, float], salt: str, customer_id: str, day: date) -> str:
    """The variant for the customer on ``day`` under ``allocation`` (stable within the day)."""
    if not allocation:
        raise ValueError("the allocation is empty")
    total = math.fsum(allocation.values())
    if total <= 0 or any(s < 0 for s in allocation.values()):
        raise ValueError("shares must be non-negative with a positive sum")
    u = daily_draw(salt, customer_id, day) * total
    running = 0.0
    for variant, share in allocation.items():
        running += share
        if u < running:
            return variant
    return next(reversed(list(allocation)))
