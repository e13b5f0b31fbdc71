"""Request and response models of the rights hub's HTTP API. Money is in fen (分, 0.01 CNY)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, get_args

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, model_validator
from qianmian_rules import LIFECYCLE_STAGES, SEGMENTS

RightType = Literal["coupon", "cashback", "points_multiplier", "fee_waiver", "rate_boost", "partner_perk"]
RightStatus = Literal["draft", "active", "paused", "retired"]
TargetStatus = Literal["active", "paused", "retired"]
ReservationStatus = Literal["held", "granted", "released", "expired"]
GrantStatus = Literal["granted", "redeemed", "expired", "reversed"]

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
RightId = Annotated[
    str,
    StringConstraints(pattern=ID_PATTERN),
    Field(description="Stable right code, e.g. RT-LUCKIN-COFFEE", examples=["RT-LUCKIN-COFFEE"]),
]
CustomerId = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"),
    Field(description="Pseudonymous customer id"),
]
Segment = Literal["payroll", "mortgage", "credit_card", "wealth", "social_security", "long_tail"]
LifecycleStage = Literal["potential", "new", "active", "dormant", "churn_risk", "churned"]
AttributeValue = str | int | float | bool | list[str]

# The Literal types above mirror the shared vocabularies; fail at import if they ever drift apart.
assert set(get_args(Segment)) == set(SEGMENTS), "Segment must list qianmian_rules.SEGMENTS"
assert set(get_args(LifecycleStage)) == set(LIFECYCLE_STAGES), "LifecycleStage must list LIFECYCLE_STAGES"


class RightFields(BaseModel):
    """Everything about a right that its author writes; validated as a whole."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]
    description: Annotated[str, StringConstraints(max_length=1000)] | None = None
    right_type: RightType
    partner: Annotated[str, StringConstraints(min_length=1, max_length=100)] | None = Field(
        default=None, description="Partner brand of a partner perk (e.g. 瑞幸咖啡, 滴滴出行)"
    )
    unit_cost_fen: int = Field(ge=0, le=10**9, description="What one grant costs the bank, in fen")
    budget_count: int = Field(ge=1, le=10**9, description="How many may be granted in total")
    budget_money_fen: int = Field(ge=0, le=10**13, description="How much money may be spent in total, fen")
    per_customer_limit: int = Field(default=1, ge=1, le=1000, description="Most one customer may hold")
    valid_from: AwareDatetime = Field(description="Start of the granting window (inclusive)")
    valid_until: AwareDatetime = Field(description="End of the granting window (exclusive)")
    redeem_within_days: int = Field(default=30, ge=1, le=3660, description="Days a grant stays redeemable")
    segments: list[Segment] = Field(default_factory=list, description="Eligible segments; empty = all")
    lifecycle_stages: list[LifecycleStage] = Field(
        default_factory=list, description="Eligible lifecycle stages; empty = all"
    )
    attributes: dict[Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")], AttributeValue] = (
        Field(default_factory=dict, max_length=64, description="Free attributes, e.g. rate_boost_bp")
    )

    @model_validator(mode="after")
    def _check_consistency(self) -> RightFields:
        if self.valid_from >= self.valid_until:
            raise ValueError("valid_from must be before valid_until")
        if self.unit_cost_fen > self.budget_money_fen:
            raise ValueError("the money budget cannot pay for a single grant")
        if self.right_type == "partner_perk" and self.partner is None:
            raise ValueError("a partner_perk needs its partner")
        if len(set(self.segments)) != len(self.segments):
            raise ValueError("segments must not repeat")
        if len(set(self.lifecycle_stages)) != len(self.lifecycle_stages):
            raise ValueError("lifecycle_stages must not repeat")
        return self


class RightCreate(RightFields):
    """Body of ``POST /v1/rights``."""

    right_id: RightId


class RightUpdate(BaseModel):
    """Body of ``PATCH /v1/rights/{right_id}``: the fields to change, and the version being edited."""

    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=1, description="The version the edit is based on (optimistic locking)")
    name: Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)] | None = None
    description: Annotated[str, StringConstraints(max_length=1000)] | None = None
    partner: Annotated[str, StringConstraints(min_length=1, max_length=100)] | None = None
    unit_cost_fen: int | None = Field(default=None, ge=0, le=10**9)
    budget_count: int | None = Field(default=None, ge=1, le=10**9)
    budget_money_fen: int | None = Field(default=None, ge=0, le=10**13)
    per_customer_limit: int | None = Field(default=None, ge=1, le=1000)
    valid_from: AwareDatetime | None = None
    valid_until: AwareDatetime | None = None
    redeem_within_days: int | None = Field(default=None, ge=1, le=3660)
    segments: list[Segment] | None = None
    lifecycle_stages: list[LifecycleStage] | None = None
    attributes: dict[str, AttributeValue] | None = None

    def changes(self) -> dict[str, Any]:
        """The fields the client sent, except ``version``."""
        return self.model_dump(exclude_unset=True, exclude={"version"})


class TransitionRequest(BaseModel):
    """Body of ``POST /v1/rights/{right_id}/transitions``."""

    model_config = ConfigDict(extra="forbid")

    to: TargetStatus
    comment: Annotated[str, StringConstraints(max_length=500)] | None = None


class BudgetOut(BaseModel):
    """Where a right's budget stands, with pacing."""

    right_id: str
    budget_count: int
    budget_money_fen: int
    reserved_count: int
    reserved_money_fen: int
    granted_count: int = Field(description="Granted and not yet redeemed")
    granted_money_fen: int
    redeemed_count: int
    redeemed_money_fen: int
    remaining_count: int = Field(description="How many more may be reserved or granted")
    remaining_money_fen: int
    burn_rate_per_hour: float = Field(description="Units committed per hour over the pacing window")
    pacing_window_hours: float
    projected_exhaustion_at: datetime | None = Field(
        description="When the budget runs out at the current burn rate; null when not burning"
    )


class RightOut(RightFields):
    """A right as stored, with its budget counters."""

    model_config = ConfigDict(from_attributes=True, extra="forbid")

    right_id: str
    status: RightStatus
    author: str
    activated_by: str | None
    activated_at: datetime | None
    version: int
    held_count: int
    held_money_fen: int
    granted_count: int
    granted_money_fen: int
    redeemed_count: int
    redeemed_money_fen: int
    remaining_count: int
    remaining_money_fen: int
    created_at: datetime
    updated_at: datetime


class RightPage(BaseModel):
    """A page of rights."""

    items: list[RightOut]
    total: int
    limit: int
    offset: int


class ReserveRequest(BaseModel):
    """Body of ``POST /v1/rights/{right_id}/reservations``."""

    model_config = ConfigDict(extra="forbid")

    customer_id: CustomerId
    hold_seconds: int | None = Field(default=None, ge=1, description="Hold length; default from settings")
    decision_id: Annotated[str, StringConstraints(max_length=64)] | None = Field(
        default=None, description="The recommender decision that showed the right, for tracing"
    )


class GrantRequest(BaseModel):
    """Body of ``POST /v1/rights/{right_id}/grants`` (a direct grant, without a hold)."""

    model_config = ConfigDict(extra="forbid")

    customer_id: CustomerId
    decision_id: Annotated[str, StringConstraints(max_length=64)] | None = None


class ReasonRequest(BaseModel):
    """Optional body of release, redeem and reverse."""

    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str, StringConstraints(max_length=500)] | None = None


class ReservationOut(BaseModel):
    """A hold on one unit of budget."""

    model_config = ConfigDict(from_attributes=True)

    reservation_id: str
    right_id: str
    customer_id: str
    seq: int
    amount_fen: int
    status: ReservationStatus
    decision_id: str | None
    created_at: datetime
    expires_at: datetime
    closed_at: datetime | None


class GrantOut(BaseModel):
    """A right granted to a customer."""

    model_config = ConfigDict(from_attributes=True)

    grant_id: str
    right_id: str
    customer_id: str
    seq: int
    reservation_id: str | None
    amount_fen: int
    status: GrantStatus
    decision_id: str | None
    granted_at: datetime
    expires_at: datetime
    redeemed_at: datetime | None
    closed_at: datetime | None


class GrantPage(BaseModel):
    """A customer's grants, newest first."""

    items: list[GrantOut]
    total: int


class LedgerEntryOut(BaseModel):
    """One ledger entry with its counter deltas."""

    model_config = ConfigDict(from_attributes=True)

    entry_id: int
    right_id: str
    operation: str
    customer_id: str | None
    reservation_id: str | None
    grant_id: str | None
    held_delta: int
    held_money_delta_fen: int
    granted_delta: int
    granted_money_delta_fen: int
    redeemed_delta: int
    redeemed_money_delta_fen: int
    actor: str
    idempotency_key: str | None
    detail: dict[str, Any] | None
    at: datetime


class LedgerPage(BaseModel):
    """Ledger entries of a right in order; pass ``next_after`` as ``after`` for the next page."""

    items: list[LedgerEntryOut]
    next_after: int | None


class ExpiryReport(BaseModel):
    """What one run of the expiry job did."""

    holds_expired: int
    grants_expired: int
    rights_retired: int
