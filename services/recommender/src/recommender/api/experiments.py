"""``/v1/experiments``: A/B experiment definitions, their approval workflow, weights and analysis.

See :mod:`recommender.service.experiments` for the workflow (an approver other than the author),
sticky assignment and how the analysis is computed (fixed-horizon, Holm-corrected, SRM-gated).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from qianmian_core.auth import Principal, require_scope
from qianmian_core.errors import ERROR_RESPONSES, ErrorResponse, UnprocessableError
from qianmian_core.responses import json_response
from starlette.responses import Response

from recommender.experiments.definition import (
    ArmChanges,
    ArmName,
    ExperimentDefinition,
    GuardrailDefinition,
    PopulationDefinition,
    Weight,
)
from recommender.service.experiments import ExperimentService

router = APIRouter(prefix="/v1/experiments", tags=["experiments"])

ExperimentId = Annotated[str, Path(min_length=1, max_length=40, pattern=r"^exp_[0-9a-f]{32}$")]
Status = Literal["draft", "pending_approval", "approved", "running", "stopped"]
Action = Literal["submit", "approve", "start", "stop"]
EXAMPLE_ID = "exp_5d0c2a3b9e8f4c1d8a7b6c5d4e3f2a1b"
EXAMPLE_TIME = "2026-12-01T02:00:00Z"


class StatusBody(BaseModel):
    """A workflow action: submit (draft), approve (pending; not by the author), start (approved), stop."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"action": "approve", "note": "口径已核对"}]}
    )

    action: Action
    note: str | None = Field(default=None, max_length=500, description="Why (kept in the history)")


class WeightsBody(BaseModel):
    """New relative weights for every arm (a draft, or a running experiment being ramped up)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"weights": {"control": 50, "cf": 50}, "note": "ramp to 50/50"}]},
    )

    weights: dict[ArmName, Weight] = Field(min_length=2, max_length=10)
    note: str | None = Field(default=None, max_length=500)


class ArmOut(BaseModel):
    name: str
    control: bool = Field(description="The first arm is the control")
    weight: float
    share: float = Field(description="weight / sum of weights")
    changes: ArmChanges


class BucketsOut(BaseModel):
    start: int
    end: int = Field(description="Exclusive; of the layer's 10,000 buckets")


class HistoryOut(BaseModel):
    action: Literal["create", "submit", "approve", "start", "stop", "weights"]
    from_status: Status | None
    to_status: Status
    actor: str
    at: datetime
    note: str | None
    detail: dict[str, Any] | None


class ExperimentSummaryOut(BaseModel):
    """An experiment as listed."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "experiment_id": EXAMPLE_ID,
                    "name": "理财到期挽留：协同过滤 vs 客群热门",
                    "hypothesis": "CF raises the conversion rate by 1 pp without more opt-outs",
                    "primary_metric": "conversion_rate",
                    "guardrails": [{"metric": "opt_out_rate", "tolerance": 0.001}],
                    "layer": "ranking",
                    "traffic": 0.5,
                    "buckets": {"start": 0, "end": 5000},
                    "population": {"segments": ["wealth"], "channels": ["app", "push"]},
                    "salt": EXAMPLE_ID,
                    "status": "running",
                    "author": "console-alice",
                    "approver": "console-bob",
                    "created_at": EXAMPLE_TIME,
                    "updated_at": EXAMPLE_TIME,
                    "started_at": EXAMPLE_TIME,
                    "stopped_at": None,
                    "version": 4,
                    "arms": [
                        {"name": "control", "control": True, "weight": 50, "share": 0.5, "changes": {}},
                        {
                            "name": "cf",
                            "control": False,
                            "weight": 50,
                            "share": 0.5,
                            "changes": {"model_version": "als-20261120"},
                        },
                    ],
                }
            ]
        }
    )

    experiment_id: str
    name: str
    hypothesis: str
    primary_metric: str
    guardrails: list[GuardrailDefinition]
    layer: str
    traffic: float
    buckets: BucketsOut | None = Field(description="The layer's buckets it holds (set at start)")
    population: PopulationDefinition
    salt: str
    allocation: Literal["fixed", "thompson"] = Field(
        default="fixed", description="fixed: by weight, sticky; thompson: daily content-bandit shares"
    )
    exploration_floor: float = Field(default=0.05, description="thompson: the share every arm keeps")
    status: Status
    author: str
    approver: str | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    stopped_at: datetime | None
    version: int
    arms: list[ArmOut]


class ExperimentOut(ExperimentSummaryOut):
    """An experiment with the history of its changes."""

    history: list[HistoryOut]


class EstimateOut(BaseModel):
    value: float
    std_error: float
    ci_low: float
    ci_high: float


class ComparisonOut(BaseModel):
    difference: float = Field(description="Treatment minus control")
    relative: float | None = Field(description="difference / control (null when control is 0)")
    std_error: float
    ci_low: float
    ci_high: float
    p_value: float
    p_value_holm: float = Field(description="Holm-adjusted across the treatment arms")
    significant: bool
    direction: Literal["better", "worse", "same"]
    theta: float | None = Field(default=None, description="CUPED only: the covariate's coefficient")


class ArmAnalysisOut(BaseModel):
    arm: str
    control: bool
    weight: float
    assigned_customers: int
    exposed_customers: int
    impressions: int
    clicks: int
    conversions: int
    converted_customers: int
    aum_fen: int
    margin_fen: int = Field(description="Sum of the converted products' value to the bank (fen)")
    rights_cost_fen: int
    opt_outs: int
    complaints: int
    metrics: dict[str, EstimateOut | None] = Field(
        description="ctr, conversion_rate, aum_per_customer, margin_per_customer, "
        "rights_cost_per_conversion, opt_out_rate, "
        "complaint_rate (null: too little data)"
    )
    vs_control: dict[str, ComparisonOut | None] | None = Field(
        description="Per metric, plus aum_per_customer_cuped; null for the control"
    )


class SrmOut(BaseModel):
    chi2: float
    dof: int
    p_value: float
    threshold: float
    flagged: bool = Field(description="p < threshold: the verdict is blocked")
    applicable: bool = Field(
        default=True, description="False under Thompson-sampling allocation (shares follow results)"
    )
    observed: dict[str, int]
    expected: dict[str, float]


class GuardrailOut(BaseModel):
    arm: str
    metric: str
    difference: float
    tolerance: float
    p_value: float = Field(description="One-sided: worse than control by more than the tolerance")
    breached: bool


class SampleSizeOut(BaseModel):
    metric: str
    exposed_per_arm: dict[str, int]
    mde_at_current_size: float | None = Field(description="Smallest difference detectable at power 0.8")
    power: float


class VerdictOut(BaseModel):
    decision: Literal["ship", "do_not_ship", "no_significant_difference", "insufficient_data", "blocked"]
    arm: str | None
    final: bool = Field(description="False while the experiment runs (fixed horizon: do not peek)")
    reasons: list[str]


class BanditVariantOut(BaseModel):
    variant: str
    impressions: int
    clicks: int
    posterior_mean: float
    ci_low: float = Field(description="2.5 % quantile of the Beta posterior of the click-through rate")
    ci_high: float = Field(description="97.5 % quantile")
    probability_best: float
    share: float = Field(description="Its share of traffic now (exploration floor included)")


class BanditOut(BaseModel):
    method: Literal["thompson_sampling"]
    floor: float
    draws: int
    seed: int
    variants: list[BanditVariantOut]


class AnalysisOut(BaseModel):
    """The fixed-horizon analysis of an experiment (plus the bandit report under Thompson sampling)."""

    experiment_id: str
    name: str
    status: Status
    primary_metric: str
    allocation: Literal["fixed", "thompson"] = "fixed"
    method: Literal["fixed_horizon"]
    alpha: float
    correction: Literal["holm"]
    attribution_window_days: float
    warnings: list[str]
    arms: list[ArmAnalysisOut]
    srm: SrmOut
    guardrails: list[GuardrailOut]
    sample_size: SampleSizeOut
    verdict: VerdictOut
    bandit: BanditOut | None = Field(default=None, description="Thompson-sampling experiments only")


async def get_experiments(request: Request) -> ExperimentService:
    """The app's experiment service (built once in ``create_app``)."""
    service: ExperimentService = request.app.state.experiments
    return service


Experiments = Annotated[ExperimentService, Depends(get_experiments)]
Writer = Annotated[Principal, Depends(require_scope("experiments:write"))]
Reader = Annotated[Principal, Depends(require_scope("experiments:read"))]
#: The bank's complaint and consent systems report guardrail outcomes (not experiment admins).
OutcomeWriter = Annotated[Principal, Depends(require_scope("outcomes:write"))]
#: How far ahead of the recommender's clock an outcome's time may be.
MAX_OUTCOME_SKEW = timedelta(minutes=5)


class OutcomeInFutureError(UnprocessableError):
    """An outcome reported with a time beyond the allowed clock skew."""

    code = "outcome_in_future"


class OutcomeBody(BaseModel):
    """A guardrail outcome of one customer, from the system that saw it (complaints desk, CRM)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"customer_id": "C000000042", "kind": "complaint", "at": "2026-11-24T09:30:00Z"}]
        },
    )

    customer_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    kind: Literal["complaint", "opt_out"]
    at: AwareDatetime | None = Field(default=None, description="When it happened (default: now)")


class AttributionOut(BaseModel):
    experiment_id: str
    arm: str
    exposed_at: datetime


class OutcomeOut(BaseModel):
    customer_id: str
    kind: str
    at: datetime
    attributed: list[AttributionOut] = Field(
        description="The experiments whose exposure within the attribution window took it (may be empty)"
    )


RESPONSES: dict[int | str, dict[str, Any]] = {
    **ERROR_RESPONSES,
    403: {"model": ErrorResponse, "description": "Token lacks the scope; approver_is_author"},
    404: {"model": ErrorResponse, "description": "experiment_not_found"},
    409: {
        "model": ErrorResponse,
        "description": "illegal_transition, layer_full, weights_locked, experiment_changed_concurrently",
    },
    422: {"model": ErrorResponse, "description": "Invalid input; invalid_weights, invalid_arm_changes"},
}


@router.post(
    "",
    operation_id="create_experiment",
    summary="Create an experiment (a draft authored by the caller)",
    status_code=201,
    response_model=ExperimentOut,
    responses=RESPONSES,
)
def create_experiment(body: ExperimentDefinition, principal: Writer, experiments: Experiments) -> Response:
    return json_response(experiments.create(body, author=principal.client), status_code=201)


@router.get(
    "",
    operation_id="list_experiments",
    summary="List experiments, newest first",
    response_model=list[ExperimentSummaryOut],
    responses=RESPONSES,
)
def list_experiments(
    _principal: Reader,
    experiments: Experiments,
    status: Annotated[Status | None, Query(description="Only experiments in this status")] = None,
) -> Response:
    return json_response(experiments.list_experiments(status))


@router.get(
    "/{experiment_id}",
    operation_id="get_experiment",
    summary="An experiment with its arms and history",
    response_model=ExperimentOut,
    responses=RESPONSES,
)
def get_experiment(experiment_id: ExperimentId, _principal: Reader, experiments: Experiments) -> Response:
    return json_response(experiments.get(experiment_id))


@router.post(
    "/outcomes",
    operation_id="record_experiment_outcome",
    summary="Report a complaint or an opt-out of a customer (the guardrails of running experiments)",
    status_code=201,
    response_model=OutcomeOut,
    responses={
        **ERROR_RESPONSES,
        422: {"model": ErrorResponse, "description": "Invalid input; outcome_in_future"},
    },
)
async def record_outcome(body: OutcomeBody, _principal: OutcomeWriter, experiments: Experiments) -> Response:
    """Attributed to every experiment that exposed the customer within its attribution window before
    ``at``; a customer counts once per guardrail however often it is reported."""
    now = experiments.now()
    at = body.at.astimezone(UTC) if body.at is not None else now
    if at > now + MAX_OUTCOME_SKEW:
        raise OutcomeInFutureError("the outcome's time is in the future", details={"at": at.isoformat()})
    made = await asyncio.to_thread(experiments.record_conversion, body.customer_id, body.kind, at=at)
    attributed = [{"experiment_id": a.experiment_id, "arm": a.arm, "exposed_at": a.exposed_at} for a in made]
    return json_response(
        {"customer_id": body.customer_id, "kind": body.kind, "at": at, "attributed": attributed},
        status_code=201,
    )


@router.post(
    "/{experiment_id}/status",
    operation_id="change_experiment_status",
    summary="Submit, approve (someone other than the author), start or stop an experiment",
    response_model=ExperimentOut,
    responses=RESPONSES,
)
def change_status(
    experiment_id: ExperimentId, body: StatusBody, principal: Writer, experiments: Experiments
) -> Response:
    """``start`` reserves the experiment's share of its layer (``409 layer_full`` without room)."""
    return json_response(
        experiments.transition(experiment_id, body.action, actor=principal.client, note=body.note)
    )


@router.put(
    "/{experiment_id}/weights",
    operation_id="update_experiment_weights",
    summary="New allocation weights; customers assigned before keep their arm",
    response_model=ExperimentOut,
    responses=RESPONSES,
)
def update_weights(
    experiment_id: ExperimentId, body: WeightsBody, principal: Writer, experiments: Experiments
) -> Response:
    return json_response(
        experiments.update_weights(experiment_id, body.weights, actor=principal.client, note=body.note)
    )


@router.get(
    "/{experiment_id}/analysis",
    operation_id="analyse_experiment",
    summary="Per-arm figures with intervals, Holm-corrected tests, SRM check, guardrails, verdict",
    response_model=AnalysisOut,
    responses=RESPONSES,
)
def analyse_experiment(experiment_id: ExperimentId, _principal: Reader, experiments: Experiments) -> Response:
    """Fixed-horizon: read it once the planned sample size is reached (see ``warnings``)."""
    return json_response(experiments.analysis(experiment_id))
