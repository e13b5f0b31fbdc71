"""Request and response models of the content hub's HTTP API.

Texts are *templates*: they may hold ``{placeholder}`` names from a short allowlist, filled at render
time. Length limits of each channel apply to the rendered text (see ``content_hub.service.channels``);
the caps here only bound what may be stored.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)
from qianmian_rules import SEGMENTS

VersionStatus = Literal["draft", "in_review", "approved", "rejected", "retired", "superseded"]
TargetStatus = Literal["in_review", "approved", "rejected", "retired"]
#: Channels with a variant; the names are the catalogue's channel names.
Channel = Literal["app", "mini_program", "push", "sms", "remote_agent"]

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
ContentId = Annotated[
    str, StringConstraints(pattern=ID_PATTERN), Field(description="Content code", examples=["CNT-WM-R2-90"])
]
ProductId = Annotated[str, StringConstraints(pattern=ID_PATTERN), Field(examples=["WM-R2-90"])]
RightId = Annotated[
    str,
    StringConstraints(pattern=ID_PATTERN),
    Field(description="Right id owned by rights-hub (not checked here)", examples=["RT-COFFEE-01"]),
]
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]
LongText = Annotated[str, StringConstraints(min_length=1, max_length=1000, strip_whitespace=True)]
ImageRef = Annotated[
    str,
    StringConstraints(pattern=r"^(https://|asset://)[\x21-\x7e]{1,300}$"),
    Field(description="https:// URL or asset:// id of the image", examples=["asset://banners/wm-r2-90.png"]),
]
DeepLink = Annotated[
    str,
    StringConstraints(pattern=r"^(https://|qianmian://)[\x21-\x7e]{1,300}$"),
    Field(description="Where a tap leads: https:// or the app's qianmian:// scheme"),
]
PagePath = Annotated[str, StringConstraints(pattern=r"^/?pages/[\x21-\x7e]{1,200}$")]


def _known_segment(value: str) -> str:
    if value not in SEGMENTS:
        raise ValueError(f"must be one of {', '.join(SEGMENTS)}")
    return value


Segment = Annotated[str, AfterValidator(_known_segment), Field(json_schema_extra={"enum": list(SEGMENTS)})]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AppBanner(_Strict):
    """Mobile-banking app banner (资源位)."""

    title: ShortText
    subtitle: ShortText
    image_ref: ImageRef
    deep_link: DeepLink


class MiniProgramCard(_Strict):
    """Mini-program card (小程序卡片)."""

    title: ShortText
    description: ShortText
    image_ref: ImageRef
    page_path: PagePath


class PushText(_Strict):
    """Push notification: a title and a body."""

    title: ShortText
    body: ShortText


class SmsText(_Strict):
    """SMS text; the signature and opt-out instruction are added at render time and count."""

    text: ShortText


class ObjectionAnswer(_Strict):
    """One likely objection of the customer and the agent's answer."""

    objection: ShortText
    answer: LongText


class AgentScript(_Strict):
    """The remote-banking agent's call script (话术)."""

    opening: LongText
    value_proposition: LongText
    objection_answers: list[ObjectionAnswer] = Field(default_factory=list, max_length=10)
    risk_statement: LongText = Field(description="Read out on every call; must hold the risk disclosure")
    closing: LongText


class Variants(_Strict):
    """Per-channel variants; at least one."""

    app: AppBanner | None = None
    mini_program: MiniProgramCard | None = None
    push: PushText | None = None
    sms: SmsText | None = None
    remote_agent: AgentScript | None = None

    @model_validator(mode="after")
    def _at_least_one(self) -> Variants:
        if not self.model_dump(exclude_none=True):
            raise ValueError("at least one channel variant is required")
        return self


class ContentFields(_Strict):
    """Everything an author writes on one version; validated as a whole."""

    title: ShortText = Field(description="Internal name shown to reviewers, never to customers")
    product_id: ProductId | None = None
    right_id: RightId | None = None
    segments: list[Segment] = Field(
        default_factory=list, max_length=len(SEGMENTS), description="Target segments; empty = every segment"
    )
    variants: Variants
    valid_from: AwareDatetime | None = Field(default=None, description="Served from (inclusive)")
    valid_until: AwareDatetime | None = Field(default=None, description="Served until (exclusive)")

    @model_validator(mode="after")
    def _check_consistency(self) -> ContentFields:
        if self.product_id is None and self.right_id is None:
            raise ValueError("content must be linked to a product, a right or both")
        if len(set(self.segments)) != len(self.segments):
            raise ValueError("segments must not repeat")
        if (
            self.valid_from is not None
            and self.valid_until is not None
            and self.valid_from >= self.valid_until
        ):
            raise ValueError("valid_from must be before valid_until")
        return self


class ContentCreate(ContentFields):
    """A new content item; its version 1 starts as a draft authored by the caller."""

    content_id: ContentId | None = Field(default=None, description="Omit to get a generated id")


class ContentPatch(_Strict):
    """A partial change: edits a draft in place, or starts a new version from the latest one."""

    title: str | None = None
    product_id: str | None = None
    right_id: str | None = None
    segments: list[str] | None = None
    variants: dict[str, Any] | None = None
    valid_from: AwareDatetime | None = None
    valid_until: AwareDatetime | None = None

    def changes(self) -> dict[str, Any]:
        """The fields the client actually sent (null included)."""
        return {name: getattr(self, name) for name in self.model_fields_set}


class VersionOut(ContentFields):
    """One version as stored, with its review state."""

    model_config = ConfigDict(extra="forbid", from_attributes=True)

    content_id: str
    version: int
    status: VersionStatus
    author: str
    approved_by: str | None
    approved_at: datetime | None
    created_at: datetime
    updated_at: datetime


class VersionSummary(BaseModel):
    """A line of an item's version list."""

    model_config = ConfigDict(from_attributes=True)

    version: int
    status: VersionStatus
    author: str
    approved_by: str | None
    approved_at: datetime | None
    created_at: datetime


class ContentOut(BaseModel):
    """A content item: which version serves, and every version ever written (the archive)."""

    content_id: str
    created_by: str
    created_at: datetime
    latest_version: int
    serving_version: int | None = Field(description="The approved version, if any (in window or not)")
    versions: list[VersionSummary]


class ContentPage(BaseModel):
    """One page of a content search."""

    items: list[VersionOut]
    total: int = Field(description="Number of matching versions over all pages")
    limit: int
    offset: int


class TransitionRequest(_Strict):
    """Move a version: submit (in_review), approve, reject or retire."""

    to: TargetStatus
    comment: str | None = Field(default=None, max_length=500)


class TransitionOut(BaseModel):
    """One entry of the review history."""

    model_config = ConfigDict(from_attributes=True)

    version: int
    from_status: VersionStatus | None
    to_status: VersionStatus
    actor: str
    comment: str | None
    at: datetime


class ContentHistory(BaseModel):
    """The review history of one item, oldest first."""

    content_id: str
    transitions: list[TransitionOut]


class Finding(BaseModel):
    """One compliance problem: where it is, which rule, what matched."""

    variant: str = Field(description="Channel variant, or 'text' for free text")
    field: str = Field(description="Field of the variant, e.g. body or objection_answers[0].answer")
    rule: str = Field(
        description=(
            "forbidden_claim | risk_disclosure_missing | placeholder_forbidden | placeholder_unknown | "
            "placeholder_malformed | placeholder_unfillable | length_exceeded"
        )
    )
    matched: str | None = Field(description="The offending text as written")
    start: int | None = Field(description="0-based character offset in the field (inclusive)")
    end: int | None = Field(description="0-based character offset in the field (exclusive)")
    message: str


class ScreenRequest(_Strict):
    """Text or variants to screen without submitting; ``product_id`` decides the disclosure rule."""

    product_id: ProductId | None = None
    text: Annotated[str, StringConstraints(min_length=1, max_length=5000)] | None = None
    variants: Variants | None = None

    @model_validator(mode="after")
    def _something(self) -> ScreenRequest:
        if self.text is None and self.variants is None:
            raise ValueError("give text, variants or both")
        return self


class ScreenResult(BaseModel):
    """Screening outcome: passed when there are no findings."""

    passed: bool
    findings: list[Finding]


class RenderOut(BaseModel):
    """A variant filled in for one customer and formatted for its channel."""

    content_id: str
    version: int
    channel: Channel
    customer_id: str | None
    personalised: bool = Field(description="False when no customer was given or profile was unreachable")
    degraded: bool = Field(description="True when profile was unreachable and neutral values were used")
    degraded_reason: str | None
    fields: dict[str, Any] = Field(description="The channel's fields, placeholders filled")
    text: str = Field(description="The channel-formatted text as the customer sees or hears it")
