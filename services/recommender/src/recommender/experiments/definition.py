"""What an experiment definition holds: the body of ``POST /v1/experiments`` and the file of
``recommender experiments create --file``.

Metrics are computed per exposed customer (the unit of randomisation):

- ``ctr``: clicks per impression (impressions are exposures: decisions an arm shaped);
- ``conversion_rate``: share of exposed customers who converted at least once;
- ``aum_per_customer``: converted amount (fen) per exposed customer, so the difference to control is
  the AUM uplift;
- ``margin_per_customer``: what the converted products are worth to the bank (product-hub's
  ``value`` of each, the expected margin of one sale; fen) per exposed customer: the quantity
  arbitration's ``propensity × value`` ranks by, so a model that trades conversions for margin shows
  it here;
- ``rights_cost_per_conversion``: cost of the granted rights (fen) per conversion;
- ``opt_out_rate`` and ``complaint_rate``: share of exposed customers who opted out or complained
  (guardrails: higher is worse).

**Allocation.** ``fixed`` (default): arms by weight, sticky per customer. ``thompson``: for content
variants only (every arm changes nothing but ``content_variant``; the primary metric is ``ctr``): each
day a customer gets the arm :func:`recommender.experiments.bandit.choose` draws from the Thompson-sampling
shares of the clicks and exposures so far, every arm keeping at least ``exploration_floor`` of the
traffic; the weights are ignored (see :mod:`recommender.experiments.bandit`).
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Final, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator
from qianmian_rules import CHANNELS, SEGMENTS

from recommender.experiments.bandit import DEFAULT_FLOOR

PrimaryMetric = Literal[
    "ctr", "conversion_rate", "aum_per_customer", "margin_per_customer", "rights_cost_per_conversion"
]
GuardrailMetric = Literal["opt_out_rate", "complaint_rate", "rights_cost_per_conversion"]
PRIMARY_METRICS: Final[tuple[str, ...]] = get_args(PrimaryMetric)
Allocation = Literal["fixed", "thompson"]
ALLOCATIONS: Final[tuple[str, ...]] = get_args(Allocation)
GUARDRAIL_METRICS: Final[tuple[str, ...]] = get_args(GuardrailMetric)
#: Every metric an analysis reports, in report order.
METRICS: Final[tuple[str, ...]] = (
    "ctr",
    "conversion_rate",
    "aum_per_customer",
    "margin_per_customer",
    "rights_cost_per_conversion",
    "opt_out_rate",
    "complaint_rate",
)
#: Metrics where a decrease is the improvement.
LOWER_IS_BETTER: Final[frozenset[str]] = frozenset(
    {"rights_cost_per_conversion", "opt_out_rate", "complaint_rate"}
)

SegmentName = Annotated[
    str, Field(pattern="^(" + "|".join(SEGMENTS) + ")$", json_schema_extra={"enum": list(SEGMENTS)})
]
ChannelName = Annotated[
    str, Field(pattern="^(" + "|".join(CHANNELS) + ")$", json_schema_extra={"enum": list(CHANNELS)})
]
ArmName = Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[a-z0-9][a-z0-9_-]*$")]
LayerName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_.-]*$")]
Weight = Annotated[float, Field(ge=0, le=1_000_000, allow_inf_nan=False)]


class ArmChanges(BaseModel):
    """What an arm changes against the production path (all optional: the control changes nothing)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model_version: str | None = Field(
        default=None, min_length=1, max_length=64, description="Serve this registry version"
    )
    arbitration: dict[str, Any] | None = Field(
        default=None,
        description="Arbitration settings for this arm (moment weights, levers, no-repeat window), "
        "validated as the service's ArbitrationConfig",
    )
    rights_policy: Literal["no_rights"] | None = Field(
        default=None, description="``no_rights``: bundles carry no right (None: the production policy)"
    )
    content_variant: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="A content id to show when it is approved for the product and channel (else the "
        "production choice)",
    )
    ranker: Literal["off"] | None = Field(
        default=None,
        description="``off``: rank by the candidates' base scores, without the LightGBM ranker (None: "
        "production, the ranker when one serves; an arm that pins ``model_version`` never uses it)",
    )


class ArmDefinition(BaseModel):
    """One arm: its name, allocation weight (relative) and what it changes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: ArmName
    weight: Weight
    changes: ArmChanges = Field(default_factory=ArmChanges)


class PopulationDefinition(BaseModel):
    """Customers in any of ``segments`` (empty: everyone), requests in ``channels`` (empty: all)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    segments: list[SegmentName] = Field(default_factory=list, max_length=len(SEGMENTS))
    channels: list[ChannelName] = Field(default_factory=list, max_length=len(CHANNELS))


class GuardrailDefinition(BaseModel):
    """A guardrail: breached when a treatment is significantly worse than control by more than
    ``tolerance`` (in the metric's unit: a rate difference, or fen per conversion)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    metric: GuardrailMetric
    tolerance: float = Field(default=0.0, ge=0, le=1_000_000_000, allow_inf_nan=False)


def _default_guardrails() -> list[GuardrailDefinition]:
    return [
        GuardrailDefinition(metric="opt_out_rate", tolerance=0.0),
        GuardrailDefinition(metric="complaint_rate", tolerance=0.0),
    ]


class ExperimentDefinition(BaseModel):
    """A new experiment (created as a draft); the first arm is the control."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra={
            "examples": [
                {
                    "name": "理财到期挽留：协同过滤 vs 客群热门",
                    "hypothesis": "CF recommendations raise the conversion rate of maturing wealth "
                    "customers by at least 1 percentage point without more opt-outs",
                    "primary_metric": "conversion_rate",
                    "guardrails": [
                        {"metric": "opt_out_rate", "tolerance": 0.001},
                        {"metric": "complaint_rate", "tolerance": 0.0},
                    ],
                    "layer": "ranking",
                    "traffic": 0.5,
                    "population": {"segments": ["wealth", "payroll"], "channels": ["app", "push"]},
                    "arms": [
                        {"name": "control", "weight": 50, "changes": {"model_version": "segpop-20261101"}},
                        {"name": "cf", "weight": 50, "changes": {"model_version": "als-20261120"}},
                    ],
                }
            ]
        },
    )

    name: str = Field(min_length=1, max_length=128)
    hypothesis: str = Field(min_length=1, max_length=2000, description="What should change, and why")
    primary_metric: PrimaryMetric
    guardrails: list[GuardrailDefinition] = Field(
        default_factory=_default_guardrails,
        max_length=len(GUARDRAIL_METRICS),
        description="Default: opt-out and complaint rates, no tolerance",
    )
    layer: LayerName = Field(default="default", description="Experiments of one layer never share a customer")
    traffic: float = Field(
        default=1.0,
        gt=0,
        le=1,
        allow_inf_nan=False,
        description="Share of the layer's customers the experiment takes (its buckets are reserved at start)",
    )
    population: PopulationDefinition = Field(default_factory=PopulationDefinition)
    arms: list[ArmDefinition] = Field(min_length=2, max_length=10, description="The first is the control")
    salt: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_.:-]+$",
        description="Hash salt of the arms (default: the experiment id, so experiments are independent)",
    )
    allocation: Allocation = Field(
        default="fixed",
        description="``fixed``: by weight, sticky per customer; ``thompson``: content variants only, "
        "daily Thompson-sampling shares by click-through rate with an exploration floor",
    )
    exploration_floor: float = Field(
        default=DEFAULT_FLOOR,
        ge=0,
        le=0.5,
        allow_inf_nan=False,
        description="``thompson``: the share of traffic every arm keeps",
    )

    @model_validator(mode="after")
    def _consistent(self) -> ExperimentDefinition:
        names = [a.name for a in self.arms]
        if len(set(names)) != len(names):
            raise ValueError("arm names must be unique")
        if math.fsum(a.weight for a in self.arms) <= 0:
            raise ValueError("at least one arm needs a positive weight")
        metrics = [g.metric for g in self.guardrails]
        if len(set(metrics)) != len(metrics):
            raise ValueError("a guardrail metric is given twice")
        if self.allocation == "thompson":
            if self.primary_metric != "ctr":
                raise ValueError("Thompson-sampling allocation optimises ctr: make it the primary metric")
            for arm in self.arms:
                if arm.changes.model_dump(exclude_none=True, exclude={"content_variant"}):
                    raise ValueError(
                        f"arm {arm.name}: a Thompson-sampling experiment compares content variants only"
                    )
            if self.exploration_floor * len(self.arms) > 1:
                raise ValueError(f"exploration_floor × {len(self.arms)} arms exceeds the whole traffic")
        return self
