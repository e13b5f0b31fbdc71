"""Request and response models of the product hub's HTTP API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)
from qianmian_rules import PRODUCT_TYPES, CustomerFacts, EligibilityRules, RuleFailure

#: Investment products must carry a risk rating R1..R5 (suitability applies to them).
RISK_RATED_TYPES: Final[frozenset[str]] = frozenset({"structured_deposit", "wealth_management", "fund"})
#: Non-investment products never carry one. Insurance may go either way (investment-linked or not).
UNRATED_TYPES: Final[frozenset[str]] = frozenset(
    {"deposit", "credit_card", "consumer_loan", "mortgage_service", "payroll_service"}
)

ProductStatus = Literal["draft", "approved", "active", "retired"]
TargetStatus = Literal["approved", "active", "retired"]

ProductId = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"),
    Field(description="Stable product code, e.g. WM-R2-90D", examples=["WM-R2-90D"]),
]
CustomerId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")]
Channel = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,31}$")]
AttributeValue = str | int | float | bool | list[str] | list[float]


def _known_product_type(value: str) -> str:
    if value not in PRODUCT_TYPES:
        raise ValueError(f"must be one of {', '.join(PRODUCT_TYPES)}")
    return value


ProductType = Annotated[
    str, AfterValidator(_known_product_type), Field(json_schema_extra={"enum": list(PRODUCT_TYPES)})
]


class ProductFields(BaseModel):
    """Everything about a product that its author writes; validated as a whole."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]
    name_en: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    product_type: ProductType
    risk_rating: int | None = Field(
        default=None, ge=1, le=5, description="R1..R5 as 1..5; null for non-investment products"
    )
    eligibility: EligibilityRules = Field(default_factory=EligibilityRules)
    channels: list[Channel] = Field(min_length=1, max_length=20, description="Channels it may be offered in")
    sale_start: AwareDatetime | None = Field(default=None, description="Start of the sale window (inclusive)")
    sale_end: AwareDatetime | None = Field(default=None, description="End of the sale window (exclusive)")
    quota: int | None = Field(default=None, ge=1, description="How many may be sold; null = unlimited")
    margin_rate: float = Field(ge=0, le=1, description="Margin as a fraction, for arbitration")
    value: float = Field(ge=0, description="Expected value of one sale in CNY, for arbitration")
    attributes: dict[Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")], AttributeValue] = (
        Field(default_factory=dict, max_length=64, description="Item features (cold start, ranking)")
    )

    @model_validator(mode="after")
    def _check_consistency(self) -> ProductFields:
        if self.product_type in RISK_RATED_TYPES and self.risk_rating is None:
            raise ValueError(f"a {self.product_type} product needs a risk rating R1..R5")
        if self.product_type in UNRATED_TYPES and self.risk_rating is not None:
            raise ValueError(f"a {self.product_type} product has no risk rating")
        if len(set(self.channels)) != len(self.channels):
            raise ValueError("channels must not repeat")
        if self.sale_start is not None and self.sale_end is not None and self.sale_start >= self.sale_end:
            raise ValueError("sale_start must be before sale_end")
        return self


class ProductCreate(ProductFields):
    """A new product; it starts as a draft authored by the caller."""

    product_id: ProductId


class ProductUpdate(BaseModel):
    """A partial edit of a draft. ``version`` must be the version the client read."""

    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=1, description="The version being edited; a stale one answers 409")
    name: str | None = None
    name_en: str | None = None
    product_type: str | None = None
    risk_rating: int | None = None
    eligibility: EligibilityRules | None = None
    channels: list[str] | None = None
    sale_start: AwareDatetime | None = None
    sale_end: AwareDatetime | None = None
    quota: int | None = None
    margin_rate: float | None = None
    value: float | None = None
    attributes: dict[str, AttributeValue] | None = None

    def changes(self) -> dict[str, Any]:
        """The fields the client actually sent, other than ``version`` (null included)."""
        return {name: getattr(self, name) for name in self.model_fields_set if name != "version"}


class ProductOut(ProductFields):
    """A product as stored, with its workflow state."""

    model_config = ConfigDict(extra="forbid", from_attributes=True)

    product_id: str
    sold: int
    status: ProductStatus
    author: str
    approved_by: str | None
    approved_at: datetime | None
    version: int
    created_at: datetime
    updated_at: datetime


class ProductPage(BaseModel):
    """One page of a product listing."""

    items: list[ProductOut]
    total: int = Field(description="Number of matching products over all pages")
    limit: int
    offset: int


class TransitionRequest(BaseModel):
    """Move a product along the workflow draft -> approved -> active -> retired."""

    model_config = ConfigDict(extra="forbid")

    to: TargetStatus
    comment: str | None = Field(default=None, max_length=500)


class StatusChangeOut(BaseModel):
    """One entry of a product's workflow history."""

    model_config = ConfigDict(from_attributes=True)

    from_status: ProductStatus | None
    to_status: ProductStatus
    actor: str
    comment: str | None
    at: datetime


class ProductHistory(BaseModel):
    """The workflow history of one product, oldest first."""

    product_id: str
    changes: list[StatusChangeOut]


class EvaluateRequest(BaseModel):
    """Which active products may be offered to a customer with these facts (in this channel, at this time)."""

    model_config = ConfigDict(extra="forbid")

    facts: CustomerFacts
    channel: Channel | None = None
    at: AwareDatetime | None = Field(default=None, description="Evaluation time; default now")


class ProductVerdict(BaseModel):
    """The outcome for one product: offerable or not, and every rule it failed."""

    product_id: str
    product_type: str
    risk_rating: int | None
    eligible: bool
    failures: list[RuleFailure]


class EvaluationOut(BaseModel):
    """Verdicts for every active product, offerable ones first."""

    eligible: list[str] = Field(description="Ids of the products the customer may be offered")
    verdicts: list[ProductVerdict]
