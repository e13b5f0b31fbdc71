"""Vocabulary and data shapes shared by every service that reasons about customers and products."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Final

from pydantic import BaseModel, ConfigDict, Field, model_validator

#: Customer segments (客群). A customer may belong to several.
SEGMENTS: Final[tuple[str, ...]] = (
    "payroll",  # 代发
    "mortgage",  # 存量按揭
    "credit_card",  # 信用卡
    "wealth",  # 理财
    "social_security",  # 社保卡
    "long_tail",  # 长尾
)

#: Lifecycle stages; each has its own marketing actions.
LIFECYCLE_STAGES: Final[tuple[str, ...]] = (
    "potential",
    "new",
    "active",
    "dormant",
    "churn_risk",
    "churned",
)

#: Channels a decision can be made for; consent is given or refused per channel.
CHANNELS: Final[tuple[str, ...]] = ("app", "mini_program", "push", "sms", "remote_agent", "online_rm")

#: Product types of the catalogue.
PRODUCT_TYPES: Final[tuple[str, ...]] = (
    "deposit",
    "structured_deposit",
    "wealth_management",
    "fund",
    "insurance",
    "credit_card",
    "consumer_loan",
    "mortgage_service",
    "payroll_service",
)


class MomentType(StrEnum):
    """Moments of truth (时机): events that make an offer timely."""

    SALARY_CREDITED = "salary_credited"
    DEPOSIT_MATURING = "deposit_maturing"
    WEALTH_MATURING = "wealth_maturing"
    LARGE_INBOUND_TRANSFER = "large_inbound_transfer"
    CARD_BILL = "card_bill"
    BIRTHDAY = "birthday"
    AUM_DROP = "aum_drop"
    APP_LOGIN = "app_login"


#: Moment types as plain strings, in a fixed order (the generator encodes them by index).
MOMENT_TYPES: Final[tuple[str, ...]] = tuple(m.value for m in MomentType)


class EligibilityRules(BaseModel):
    """Structured eligibility rules of one product. Every condition is optional; all given ones must hold.

    ``required_holdings`` is any-of: the customer must hold at least one of the listed product ids or
    product types. ``excluded_holdings`` is none-of, matched the same way (a customer who already holds
    a credit card is not offered another one when ``credit_card`` is excluded).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_aum: float | None = Field(default=None, ge=0, description="Minimum assets under management, CNY")
    max_aum: float | None = Field(default=None, ge=0, description="Maximum assets under management, CNY")
    min_age: int | None = Field(default=None, ge=0, le=120)
    max_age: int | None = Field(default=None, ge=0, le=120)
    segments: tuple[str, ...] = Field(default=(), description="Any-of customer segments; empty means all")
    regions: tuple[str, ...] = Field(default=(), description="Any-of region codes; empty means all")
    lifecycle_stages: tuple[str, ...] = Field(default=(), description="Any-of lifecycle stages; empty = all")
    required_holdings: tuple[str, ...] = Field(default=(), description="Any-of held product ids or types")
    excluded_holdings: tuple[str, ...] = Field(default=(), description="None-of held product ids or types")

    @model_validator(mode="after")
    def _check_ranges(self) -> EligibilityRules:
        if self.min_aum is not None and self.max_aum is not None and self.min_aum > self.max_aum:
            raise ValueError("min_aum must not exceed max_aum")
        if self.min_age is not None and self.max_age is not None and self.min_age > self.max_age:
            raise ValueError("min_age must not exceed max_age")
        unknown_segments = set(self.segments) - set(SEGMENTS)
        if unknown_segments:
            raise ValueError(f"unknown segments: {sorted(unknown_segments)}")
        unknown_stages = set(self.lifecycle_stages) - set(LIFECYCLE_STAGES)
        if unknown_stages:
            raise ValueError(f"unknown lifecycle stages: {sorted(unknown_stages)}")
        return self


class CustomerFacts(BaseModel):
    """What the rule engine needs to know about a customer. Never carries personal identifiers."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    age: int = Field(ge=0, le=120)
    aum: float = Field(ge=0)
    region: str
    segments: frozenset[str] = frozenset()
    lifecycle_stage: str
    held_product_ids: frozenset[str] = frozenset()
    held_product_types: frozenset[str] = frozenset()
    risk_level: int | None = Field(
        default=None, ge=1, le=5, description="C1..C5 as 1..5; None = never assessed"
    )
    risk_expires_at: datetime | None = None


class RuleFailure(BaseModel):
    """One unmet condition, with a stable machine code and a human-readable message."""

    model_config = ConfigDict(frozen=True)

    code: str
    message: str
