"""Arbitration: which of the allowed candidates make the response, in which order (pure, no I/O).

``priority = propensity × moment weight × product value × business levers``

- *propensity*: the ranking stage's score (or the candidate's base score on the fallback path);
  negative or non-finite scores count as 0 (factor models can score below zero);
- *moment weight*: ``moment_weights[moment]`` when a moment rule produced the candidate, else 1;
- *product value*: what one sale is worth to the bank (the caller chooses the scale; product-hub's
  ``value`` by default);
- *business levers*: a multiplier per product, per product type and per active campaign (all
  matching campaigns multiply). A lever of 0 suppresses the product.

Then, walking the candidates by priority (ties broken by product id, so the order is fully
determined): drop products shown to the customer within the no-repeat window, keep at most one
product per product type (diversity), stop at ``limit`` (1–10). Every dropped candidate gets a
reason code for the audit record: ``lever_suppressed``, ``recently_shown``,
``diversity_same_type``, ``over_limit``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Final

from pydantic import BaseModel, ConfigDict, Field, model_validator
from qianmian_rules import MOMENT_TYPES

MIN_LIMIT: Final[int] = 1
MAX_LIMIT: Final[int] = 10

#: Default moment weights: how much more timely an offer a moment makes (app_login: no boost).
DEFAULT_MOMENT_WEIGHTS: Final[Mapping[str, float]] = MappingProxyType(
    {
        "deposit_maturing": 1.6,
        "wealth_maturing": 1.6,
        "salary_credited": 1.4,
        "large_inbound_transfer": 1.5,
        "card_bill": 1.3,
        "aum_drop": 1.5,
        "birthday": 1.2,
        "app_login": 1.0,
    }
)

Multiplier = float


class Campaign(BaseModel):
    """A marketing campaign's lever: a multiplier on the products in its scope while it runs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    campaign_id: str = Field(min_length=1, max_length=64)
    multiplier: float = Field(ge=0, le=100)
    product_ids: frozenset[str] = frozenset()
    product_types: frozenset[str] = frozenset()
    starts_at: datetime | None = None
    ends_at: datetime | None = None

    @model_validator(mode="after")
    def _has_scope(self) -> Campaign:
        if not self.product_ids and not self.product_types:
            raise ValueError("a campaign needs product_ids or product_types")
        if self.starts_at and self.ends_at and self.starts_at >= self.ends_at:
            raise ValueError("starts_at must be before ends_at")
        return self

    def applies(self, product_id: str, product_type: str, at: datetime) -> bool:
        """Whether the campaign runs at ``at`` (start inclusive, end exclusive) and covers the product."""
        if self.starts_at is not None and at < self.starts_at:
            return False
        if self.ends_at is not None and at >= self.ends_at:
            return False
        return product_id in self.product_ids or product_type in self.product_types


class BusinessLevers(BaseModel):
    """Multipliers the business sets per product, per product type and per campaign (default 1)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    products: dict[str, Multiplier] = Field(default_factory=dict)
    product_types: dict[str, Multiplier] = Field(default_factory=dict)
    campaigns: tuple[Campaign, ...] = ()

    @model_validator(mode="after")
    def _non_negative(self) -> BusinessLevers:
        for name, levers in (("products", self.products), ("product_types", self.product_types)):
            bad = sorted(k for k, v in levers.items() if not (math.isfinite(v) and 0 <= v <= 100))
            if bad:
                raise ValueError(f"{name} levers must be within 0..100: {bad}")
        ids = [c.campaign_id for c in self.campaigns]
        if len(set(ids)) != len(ids):
            raise ValueError("campaign ids must not repeat")
        return self

    def multiplier(self, product_id: str, product_type: str, at: datetime) -> tuple[float, tuple[str, ...]]:
        """The product's combined lever and the ids of the campaigns that contributed to it."""
        value = self.products.get(product_id, 1.0) * self.product_types.get(product_type, 1.0)
        campaigns: list[str] = []
        for campaign in self.campaigns:
            if campaign.applies(product_id, product_type, at):
                value *= campaign.multiplier
                campaigns.append(campaign.campaign_id)
        return value, tuple(campaigns)


class ArbitrationConfig(BaseModel):
    """Moment weights, levers and the no-repeat window; configurable per deployment or experiment arm."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    moment_weights: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_MOMENT_WEIGHTS))
    levers: BusinessLevers = Field(default_factory=BusinessLevers)
    no_repeat_window: timedelta = Field(
        default=timedelta(days=3), ge=timedelta(0), description="A product shown within it is not repeated"
    )

    @model_validator(mode="after")
    def _known_moments(self) -> ArbitrationConfig:
        unknown = set(self.moment_weights) - set(MOMENT_TYPES)
        if unknown:
            raise ValueError(f"unknown moments: {sorted(unknown)}")
        if any(not (math.isfinite(w) and 0 <= w <= 100) for w in self.moment_weights.values()):
            raise ValueError("moment weights must be within 0..100")
        return self

    def moment_weight(self, moment: str | None) -> float:
        """The weight of the moment that produced a candidate (1 when none did)."""
        return 1.0 if moment is None else self.moment_weights.get(moment, 1.0)


@dataclass(frozen=True, slots=True)
class ArbitrationCandidate:
    """A candidate that passed the policies, with what arbitration multiplies."""

    product_id: str
    product_type: str
    propensity: float
    value: float = 1.0
    #: The moment whose rule produced the candidate, if any.
    moment: str | None = None


@dataclass(frozen=True, slots=True)
class RankedOffer:
    """A candidate that made the response, with every factor of its priority (for the audit)."""

    product_id: str
    product_type: str
    priority: float
    propensity: float
    moment_weight: float
    value: float
    lever: float
    campaigns: tuple[str, ...] = ()

    def as_json(self) -> dict[str, object]:
        return {
            "product_id": self.product_id,
            "priority": self.priority,
            "propensity": self.propensity,
            "moment_weight": self.moment_weight,
            "value": self.value,
            "lever": self.lever,
            "campaigns": list(self.campaigns),
        }


@dataclass(frozen=True, slots=True)
class ArbitrationResult:
    """The ranked offers (highest priority first) and why every other candidate was left out."""

    ranked: tuple[RankedOffer, ...]
    dropped: Mapping[str, str] = field(default_factory=dict)

    @property
    def product_ids(self) -> list[str]:
        return [o.product_id for o in self.ranked]


def _clean(x: float) -> float:
    return x if math.isfinite(x) and x > 0 else 0.0


def priority_of(candidate: ArbitrationCandidate, config: ArbitrationConfig, at: datetime) -> RankedOffer:
    """The candidate's priority and its factors."""
    propensity = _clean(candidate.propensity)
    weight = config.moment_weight(candidate.moment)
    value = _clean(candidate.value)
    lever, campaigns = config.levers.multiplier(candidate.product_id, candidate.product_type, at)
    return RankedOffer(
        product_id=candidate.product_id,
        product_type=candidate.product_type,
        priority=propensity * weight * value * lever,
        propensity=propensity,
        moment_weight=weight,
        value=value,
        lever=lever,
        campaigns=campaigns,
    )


def _pick_key(o: RankedOffer) -> tuple[float, str, float, float, float, tuple[str, ...]]:
    # Which of two candidates for one product wins: higher priority, then a total order on the rest,
    # so that the input order never changes the answer.
    return (-o.priority, o.product_type, -o.propensity, -o.moment_weight, -o.value, o.campaigns)


def arbitrate(
    candidates: Sequence[ArbitrationCandidate],
    *,
    limit: int,
    at: datetime,
    recently_shown: Mapping[str, datetime] | None = None,
    config: ArbitrationConfig | None = None,
) -> ArbitrationResult:
    """Rank ``candidates`` by priority with diversity and no-repeat, at most ``limit`` (1–10).

    ``recently_shown`` maps a product id to when it was last shown to this customer. A product id
    given twice keeps its highest priority (ties: a fixed order on its other fields).
    """
    if not MIN_LIMIT <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be within {MIN_LIMIT}..{MAX_LIMIT}")
    config = config or ArbitrationConfig()
    shown = recently_shown or {}
    since = at - config.no_repeat_window
    best: dict[str, RankedOffer] = {}
    for candidate in candidates:
        offer = priority_of(candidate, config, at)
        current = best.get(offer.product_id)
        if current is None or _pick_key(offer) < _pick_key(current):
            best[offer.product_id] = offer
    ordered = sorted(best.values(), key=lambda o: (-o.priority, o.product_id))
    ranked: list[RankedOffer] = []
    types: set[str] = set()
    dropped: dict[str, str] = {}
    for offer in ordered:
        last = shown.get(offer.product_id)
        if offer.lever == 0:
            dropped[offer.product_id] = "lever_suppressed"
        elif last is not None and last > since:
            dropped[offer.product_id] = "recently_shown"
        elif offer.product_type in types:
            dropped[offer.product_id] = "diversity_same_type"
        elif len(ranked) >= limit:
            dropped[offer.product_id] = "over_limit"
        else:
            ranked.append(offer)
            types.add(offer.product_type)
    return ArbitrationResult(tuple(ranked), MappingProxyType(dropped))
