"""Pydantic request and response models: the profile service's HTTP contract."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, model_validator
from qianmian_rules import MOMENT_TYPES, SEGMENTS, CustomerFacts, MomentType

CUSTOMER_ID_PATTERN = r"^C\d{9}$"
CustomerId = Annotated[str, StringConstraints(pattern=CUSTOMER_ID_PATTERN)]
#: The most customers one ``POST /v1/customers/facts/lookup`` names.
FACTS_LOOKUP_MAX = 500
#: A segment code of ``qianmian_rules.SEGMENTS`` (for query parameters).
SEGMENT_PATTERN = "^(" + "|".join(SEGMENTS) + ")$"
Token = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:\-]{1,64}$")]

#: Clock skew tolerated for timestamps "now" on the caller's side.
CLOCK_SKEW = timedelta(minutes=5)

EventType = MomentType
EVENT_TYPES: tuple[str, ...] = MOMENT_TYPES
AMOUNT_REQUIRED: frozenset[str] = frozenset({"salary_credited", "large_inbound_transfer", "aum_drop"})

MarketingChannel = Literal["app", "mini_program", "push", "sms", "remote_agent", "online_rm"]
MARKETING_CHANNELS: tuple[str, ...] = MarketingChannel.__args__  # type: ignore[attr-defined]
PERSONALISED = "personalised"

#: What a change-feed row announces (service/changes.py says which write produces which).
ChangeKind = Literal["consent", "risk", "holdings", "moment", "contact", "profile"]
CHANGE_KINDS: tuple[str, ...] = ChangeKind.__args__  # type: ignore[attr-defined]

ContactAction = Literal["impression", "click", "dismiss", "accept", "convert"]
AttributeValue = str | int | float | bool | None


def _not_in_future(value: datetime, field: str) -> None:
    if value > datetime.now(UTC) + CLOCK_SKEW:
        raise ValueError(f"{field} is in the future beyond the {CLOCK_SKEW} clock skew")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- events -----------------------------------------------------------------------------------


class EventIn(_Strict):
    """A moment of truth reported by a channel or the core banking system."""

    event_id: Token = Field(description="Caller-chosen unique id; the idempotency key")
    customer_id: CustomerId
    event_type: EventType
    occurred_at: AwareDatetime = Field(description="When it happened; at most 5 minutes in the future")
    amount: float | None = Field(
        default=None, ge=0, description="CNY; required for salary, transfer, AUM drop"
    )
    attributes: dict[Annotated[str, StringConstraints(max_length=64)], AttributeValue] = Field(
        default_factory=dict, max_length=32, description="Free attributes; personal identifiers are masked"
    )

    @model_validator(mode="after")
    def _check(self) -> EventIn:
        _not_in_future(self.occurred_at, "occurred_at")
        if self.event_type in AMOUNT_REQUIRED and self.amount is None:
            raise ValueError(f"amount is required for {self.event_type}")
        return self


class EventOut(BaseModel):
    """A stored moment."""

    event_id: str
    customer_id: str
    event_type: str
    occurred_at: datetime
    amount: float | None
    attributes: dict[str, Any]
    received_at: datetime


class EventIngested(BaseModel):
    """The answer to an ingested (or replayed) moment, with what it changed."""

    event: EventOut
    replayed: bool = Field(description="True when this event id was already ingested with the same body")
    lifecycle_stage: str
    tags: list[str]
    clv: float


class EventList(BaseModel):
    """Recent moments, newest first."""

    items: list[EventOut]


# --- consent ----------------------------------------------------------------------------------


class ConsentUpdate(_Strict):
    """Consent changes, effective immediately. Omitted channels keep their value."""

    app: bool | None = None
    mini_program: bool | None = None
    push: bool | None = None
    sms: bool | None = None
    remote_agent: bool | None = None
    online_rm: bool | None = None
    personalised: bool | None = Field(
        default=None, description="False = the customer refuses personalised recommendation (PIPL art. 24)"
    )
    reason: str = Field(min_length=1, max_length=200)

    @model_validator(mode="after")
    def _at_least_one(self) -> ConsentUpdate:
        if not self.changes():
            raise ValueError("give at least one channel or personalised")
        return self

    def changes(self) -> dict[str, bool]:
        """The channels given, by name."""
        values = {channel: getattr(self, channel) for channel in (*MARKETING_CHANNELS, PERSONALISED)}
        return {channel: value for channel, value in values.items() if value is not None}


class ConsentState(BaseModel):
    """Current consent: marketing channels and the personalisation switch."""

    customer_id: str
    channels: dict[str, bool]
    personalised: bool = Field(description="False = personalised recommendation refused (PIPL art. 24)")
    updated_at: datetime | None


class ConsentChangeOut(BaseModel):
    """One entry of the consent history."""

    channel: str
    old_value: bool | None
    new_value: bool
    reason: str
    actor: str
    changed_at: datetime


class ConsentHistory(BaseModel):
    """Consent changes, newest first."""

    items: list[ConsentChangeOut]


# --- risk -------------------------------------------------------------------------------------


class RiskAssessmentIn(_Strict):
    """A new risk assessment (C1..C5 as 1..5)."""

    level: int = Field(ge=1, le=5)
    assessed_at: AwareDatetime
    expires_at: AwareDatetime
    source: Token

    @model_validator(mode="after")
    def _check(self) -> RiskAssessmentIn:
        _not_in_future(self.assessed_at, "assessed_at")
        if self.expires_at <= self.assessed_at:
            raise ValueError("expires_at must be after assessed_at")
        return self


class RiskAssessmentOut(BaseModel):
    """The current risk assessment; ``valid`` is false once it has expired."""

    level: int
    assessed_at: datetime
    expires_at: datetime
    source: str
    recorded_at: datetime
    valid: bool


# --- contacts ---------------------------------------------------------------------------------


class ContactIn(_Strict):
    """One contact: what was shown where and when, and what the customer did."""

    channel: MarketingChannel
    placement: Token
    product_id: Token
    content_id: Token | None = None
    decision_id: Token | None = None
    action: ContactAction
    at: AwareDatetime

    @model_validator(mode="after")
    def _check(self) -> ContactIn:
        _not_in_future(self.at, "at")
        return self


class ContactOut(BaseModel):
    """A stored contact."""

    id: int
    channel: str
    placement: str
    product_id: str
    content_id: str | None
    decision_id: str | None
    action: str
    at: datetime


class ContactList(BaseModel):
    """Contacts, newest first."""

    items: list[ContactOut]


# --- profile ----------------------------------------------------------------------------------


class MaskedPii(BaseModel):
    """Personal identifiers, masked. The unmasked values never leave the service."""

    name: str
    mobile: str
    id_number: str
    card_number: str


class CustomerValueOut(BaseModel):
    """Balances and the CLV with its components (formula in the README)."""

    aum: float
    deposits: float
    loans: float
    annual_margin: float
    retention_probability: float
    discount_rate: float
    horizon_years: int
    clv: float


class HoldingOut(BaseModel):
    """A held product."""

    product_id: str
    product_type: str
    opened_at: datetime
    amount: float


class CustomerProfile(BaseModel):
    """The masked customer 360 view."""

    customer_id: str
    age: int
    gender: str
    birth_month: int
    city_tier: int
    region: str
    segments: list[str]
    lifecycle_stage: str
    tags: list[str]
    tenure_months: int
    value: CustomerValueOut
    risk_assessment: RiskAssessmentOut | None
    consents: ConsentState
    holdings: list[HoldingOut]
    recent_moments: list[EventOut]
    contacts_30d: int
    pii: MaskedPii | None
    updated_at: datetime


# --- change feed and bulk facts ---------------------------------------------------------------


class ChangeOut(BaseModel):
    """One change of a customer: re-read their facts, consent or activity."""

    seq: int = Field(description="Position in the feed; grows with every change")
    customer_id: str
    kind: ChangeKind
    at: datetime = Field(description="When the change was written (UTC)")


class ChangeFeed(BaseModel):
    """A page of the change feed, in ``seq`` order."""

    changes: list[ChangeOut]
    next_after: int = Field(
        description="``after`` for the next page: the last seq here, or ``after`` if none"
    )
    head: int = Field(description="The highest seq committed, 0 when the feed is empty")


class CustomerFactsItem(BaseModel):
    """One customer's eligibility facts and consent, exactly as the single-customer endpoints give them."""

    customer_id: str
    facts: CustomerFacts
    consents: dict[str, bool] = Field(description="Marketing consent per channel (``channels`` of /consents)")
    personalised: bool = Field(description="False = personalised recommendation refused (PIPL art. 24)")


class CustomerFactsLookupRequest(BaseModel):
    """The customers whose facts and consent are wanted."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"customer_ids": ["C000000042"]}]}
    )

    customer_ids: list[CustomerId] = Field(
        min_length=1, max_length=FACTS_LOOKUP_MAX, description=f"1 to {FACTS_LOOKUP_MAX} customer ids"
    )


class CustomerFactsLookup(BaseModel):
    """The named customers that exist, in ``customer_id`` order (each once), and the ids that name none."""

    customers: list[CustomerFactsItem]
    missing: list[str]


class CustomerFactsPage(BaseModel):
    """A page of customers in ``customer_id`` order."""

    customers: list[CustomerFactsItem]
    next_after: str | None = Field(description="``after`` for the next page; null on the last page")
