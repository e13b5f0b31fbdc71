"""The policy stage of a decision: which candidate products may be offered, and why not (pure, no I/O).

Every candidate gets every rule evaluated, in a fixed order, so that the audit record shows all the
reasons a product was removed, not just the first. A rule outcome carries a stable reason code that
clients, dashboards and replays rely on:

- eligibility: the codes of ``qianmian_rules.eligibility_codes`` (``aum_below_min`` …);
- suitability (hard in every mode): ``suitability_risk_assessment_missing``,
  ``suitability_risk_assessment_expired``, ``suitability_risk_level_too_low``;
- ``already_held``, ``channel_not_allowed`` (the product is not sold in this channel),
  ``consent_refused`` (no marketing consent for this channel; a missing answer counts as refused);
- request-wide, repeated on each candidate: ``quiet_hours``, ``cap_daily_channel``,
  ``cap_weekly_all``, ``cap_weekly_push``, ``cap_agent_30d``;
- ``cooldown_dismissed``: the customer dismissed this product within the cool-down;
- hooks whose facts come from the content and rights caches: ``content_not_approved`` (removes the
  candidate) and ``right_unaffordable`` (keeps the product, drops the right from its bundle).

The caps checked here are read from a snapshot of the contact history; they decide what the response
would contain. ``recommender.repository.contacts`` re-checks the same windows atomically when the
decision takes its contact slot, so two concurrent decisions cannot both pass a cap.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from enum import StrEnum
from typing import Final, Literal, NamedTuple
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from qianmian_core.memo import IdentityMemo
from qianmian_rules import (
    CustomerFacts,
    EligibilityRules,
    assessment_expired,
    eligibility_codes,
    suitability_code,
)

from recommender.repository.audit import RULE_ORDER
from recommender.repository.contacts import decisions_in_window

Channel = Literal["app", "mini_program", "push", "sms", "remote_agent", "online_rm"]
CHANNELS: Final[tuple[Channel, ...]] = ("app", "mini_program", "push", "sms", "remote_agent", "online_rm")

#: The ``rule`` label values of ``qianmian_policy_blocks_total`` (the chart's metrics contract).
MetricRule = Literal["eligibility", "suitability", "consent", "contact_cap", "content", "budget"]


class Mode(StrEnum):
    """How the ranking of a decision is made."""

    PERSONALISED = "personalised"
    #: The customer opted out of personalisation: eligibility and segment-free popularity only.
    NON_PERSONALISED = "non_personalised"
    #: Features, model or a hub unavailable: the fallback path (still every hard rule).
    FALLBACK = "fallback"


class CapWindow(BaseModel):
    """One sliding-window cap: at most ``limit`` decisions within ``window`` in ``channels`` (None = all)."""

    model_config = ConfigDict(frozen=True)

    code: str
    window: timedelta
    limit: int = Field(ge=0)
    channels: frozenset[str] | None = None

    def applies_to(self, channel: str) -> bool:
        """Whether a decision in ``channel`` counts against (and is limited by) this cap."""
        return self.channels is None or channel in self.channels


class ContactPolicy(BaseModel):
    """The bank's contact-frequency rules. The defaults are issue 6's; every one is configurable."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    daily_per_channel: int = Field(default=3, ge=0, description="Marketing decisions per day per channel")
    weekly_all_channels: int = Field(default=10, ge=0, description="Decisions per 7 days, all channels")
    weekly_push: int = Field(default=1, ge=0, description="Outbound pushes per 7 days")
    agent_calls_30d: int = Field(default=1, ge=0, description="Agent calls per 30 days")
    push_channels: frozenset[str] = frozenset({"push"})
    agent_channels: frozenset[str] = frozenset({"remote_agent"})
    dismiss_cooldown: timedelta = Field(default=timedelta(days=7), ge=timedelta(0))
    quiet_start: time = time(21, 0)
    quiet_end: time = time(8, 0)
    quiet_timezone: str = "Asia/Shanghai"
    quiet_channels: frozenset[str] = frozenset({"push", "sms", "remote_agent"})

    @field_validator("quiet_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        ZoneInfo(value)  # raises on an unknown zone: fail at start-up, not at the first decision
        return value

    @model_validator(mode="after")
    def _known_channels(self) -> ContactPolicy:
        unknown = (self.push_channels | self.agent_channels | self.quiet_channels) - set(CHANNELS)
        if unknown:
            raise ValueError(f"unknown channels: {sorted(unknown)}")
        return self

    def caps(self) -> tuple[CapWindow, ...]:
        """Every cap window; the ones that apply to a channel are ``caps_for(channel)``."""
        day, week = timedelta(days=1), timedelta(days=7)
        per_channel = tuple(
            CapWindow(
                code="cap_daily_channel", window=day, limit=self.daily_per_channel, channels=frozenset({c})
            )
            for c in CHANNELS
        )
        return (
            *per_channel,
            CapWindow(code="cap_weekly_all", window=week, limit=self.weekly_all_channels),
            CapWindow(
                code="cap_weekly_push", window=week, limit=self.weekly_push, channels=self.push_channels
            ),
            CapWindow(
                code="cap_agent_30d",
                window=timedelta(days=30),
                limit=self.agent_calls_30d,
                channels=self.agent_channels,
            ),
        )

    def caps_for(self, channel: str) -> tuple[CapWindow, ...]:
        """The caps a decision in ``channel`` must stay within, in reporting order."""
        return _caps_for(self, channel)

    def longest_window(self) -> timedelta:
        """How much contact history the caps need."""
        return max(cap.window for cap in self.caps())

    def in_quiet_hours(self, channel: str, at: datetime) -> bool:
        """Whether ``at`` falls in the quiet hours of an outbound ``channel`` (bank's local time)."""
        if channel not in self.quiet_channels:
            return False
        local = at.astimezone(ZoneInfo(self.quiet_timezone)).time()
        if self.quiet_start <= self.quiet_end:
            return self.quiet_start <= local < self.quiet_end
        return local >= self.quiet_start or local < self.quiet_end  # the window spans midnight


@functools.lru_cache(maxsize=256)
def _caps_for(policy: ContactPolicy, channel: str) -> tuple[CapWindow, ...]:
    # Made once per (policy, channel): the policy is frozen and equal policies have equal caps.
    return tuple(cap for cap in policy.caps() if cap.applies_to(channel))


@dataclass(frozen=True, slots=True)
class CandidateProduct:
    """A product that might be offered, as the catalogue cache and the content/rights caches know it."""

    product_id: str
    product_type: str
    risk_rating: int | None
    eligibility: EligibilityRules
    channels: frozenset[str]
    value: float = 1.0
    #: Whether an approved, in-window content variant exists for the request's channel.
    content_approved: bool = True
    #: Whether the right attached to the bundle is affordable now; None when no right is attached.
    right_affordable: bool | None = None


class ContactRecord(NamedTuple):
    """One earlier marketing decision served to the customer: its channel and time.

    A named tuple: a customer's history is read into every decision (a frozen dataclass cost twice
    as much to make, record by record)."""

    channel: str
    at: datetime


@dataclass(frozen=True, slots=True)
class ContactState:
    """The customer's recent contact history, active cool-downs (product id → until) and the products
    they saw (product id → last impression: arbitration's no-repeat rule)."""

    contacts: tuple[ContactRecord, ...] = ()
    cooldowns: Mapping[str, datetime] = field(default_factory=dict)
    shown: Mapping[str, datetime] = field(default_factory=dict)

    def count(self, cap: CapWindow, at: datetime) -> int:
        """Decisions within ``cap``'s sliding window ending at ``at`` in the channels it covers.

        Later-stamped contacts (another pod's clock) count too, as in the atomic reservation.
        """
        return decisions_in_window(self.contacts, cap, at)


@dataclass(frozen=True, slots=True)
class CustomerContext:
    """What the policies know about the customer (pseudonymous: facts, consents, history; no identity)."""

    facts: CustomerFacts
    consents: Mapping[str, bool]
    personalised_opt_out: bool = False
    contact: ContactState = ContactState()


@dataclass(frozen=True, slots=True)
class DecisionRequest:
    """The request's facts the policies use; ``at`` must carry a time zone."""

    channel: str
    placement: str
    at: datetime

    def __post_init__(self) -> None:
        if self.at.tzinfo is None:
            raise ValueError("the decision time must carry a time zone")
        if self.channel not in CHANNELS:
            raise ValueError(f"unknown channel {self.channel!r}")


@dataclass(frozen=True, slots=True)
class RuleOutcome:
    """One rule's verdict on one candidate; ``codes`` are the reason codes when it failed."""

    rule: str
    passed: bool
    codes: tuple[str, ...] = ()
    #: Request-wide rules (quiet hours, caps) give the same outcome for every candidate.
    request_wide: bool = False

    def as_json(self) -> dict[str, object]:
        """The outcome as it goes into the audit record."""
        return {"rule": self.rule, "passed": self.passed, "codes": list(self.codes)}


#: Which metric label each rule reports under (the chart's fixed label set).
RULE_METRIC: Final[Mapping[str, MetricRule]] = {
    "eligibility": "eligibility",
    "suitability": "suitability",
    "holdings": "eligibility",
    "channel": "eligibility",
    "consent": "consent",
    "quiet_hours": "contact_cap",
    "contact_cap": "contact_cap",
    "cooldown": "contact_cap",
    "content": "content",
    "right": "budget",
}
#: Rules whose failure keeps the product and only drops something from its bundle.
SOFT_RULES: Final[frozenset[str]] = frozenset({"right"})


#: The rules judged once per request (:func:`request_outcomes`), not per candidate.
REQUEST_WIDE_RULES: Final[frozenset[str]] = frozenset({"quiet_hours", "contact_cap"})
#: Every rule a candidate is judged by, in evaluation order (the audit's ``RULE_ORDER``, which a test
#: holds to :func:`evaluate_candidate`), and whether it is request-wide.
RULES: Final[tuple[tuple[str, bool], ...]] = tuple((r, r in REQUEST_WIDE_RULES) for r in RULE_ORDER)


@dataclass(frozen=True, slots=True)
class CandidateVerdict:
    """One candidate's verdict: the rules it failed, in evaluation order (:data:`RULES`).

    Every rule judged the candidate; the ones not in ``failed`` passed. :attr:`outcomes` lists all
    of them. Most candidates fail none or one rule, so a verdict keeps only those.
    """

    product: CandidateProduct
    failed: tuple[RuleOutcome, ...]
    #: True when no hard rule failed: the product may be offered.
    allowed: bool = field(init=False)

    def __post_init__(self) -> None:
        allowed = True
        for outcome in self.failed:  # a loop, not all(genexpr): a verdict per candidate per decision
            if outcome.rule not in SOFT_RULES:
                allowed = False
                break
        object.__setattr__(self, "allowed", allowed)

    @property
    def outcomes(self) -> tuple[RuleOutcome, ...]:
        """Every rule's outcome, in evaluation order (the passed ones are the shared singletons)."""
        failed = {o.rule: o for o in self.failed}
        return tuple(
            failed.get(rule) or _outcome(rule, (), request_wide=request_wide) for rule, request_wide in RULES
        )

    @property
    def offer_right(self) -> bool:
        """Whether the bundle may carry its right (one is attached and affordable)."""
        return self.product.right_affordable is True

    @property
    def reason_codes(self) -> tuple[str, ...]:
        """Every reason code of every failed rule, in order."""
        return tuple(code for o in self.failed for code in o.codes)

    def as_json(self) -> dict[str, object]:
        """The verdict with every rule's outcome (what the audit API shows)."""
        return {
            "product_id": self.product.product_id,
            "allowed": self.allowed,
            "outcomes": [o.as_json() for o in self.outcomes],
        }

    def stored_json(self) -> dict[str, object]:
        """The verdict as the audit log stores it: only the failed rules, ``{rule: [codes]}``.

        Every candidate is judged by every rule of
        :data:`~recommender.repository.audit.RULE_ORDER`, so the passed ones are implied; the audit
        repository reads it back as :meth:`as_json` gives it.
        """
        return {"product_id": self.product.product_id, "allowed": self.allowed, "failed": self.failed_json()}

    def failed_json(self) -> dict[str, tuple[str, ...]]:
        """``{rule: codes}`` of the failed rules (codes encode as JSON arrays)."""
        return {o.rule: o.codes for o in self.failed}


@dataclass(frozen=True, slots=True)
class PolicyResult:
    """The policy stage's output: the mode and a verdict per candidate (in input order)."""

    mode: Mode
    verdicts: tuple[CandidateVerdict, ...]
    request_outcomes: tuple[RuleOutcome, ...]

    @property
    def allowed(self) -> tuple[CandidateVerdict, ...]:
        """The verdicts of the products that may be offered."""
        return tuple(v for v in self.verdicts if v.allowed)


def choose_mode(context: CustomerContext, *, degraded: bool = False) -> Mode:
    """Opt-out wins over everything (the customer's choice); otherwise fallback when degraded."""
    if context.personalised_opt_out:
        return Mode.NON_PERSONALISED
    return Mode.FALLBACK if degraded else Mode.PERSONALISED


#: The passed outcome of each rule, made once: outcomes are frozen, and most rules pass for most
#: candidates, so a decision shares these instead of building ~300 equal objects.
_PASSED: dict[tuple[str, bool], RuleOutcome] = {}


def _outcome(rule: str, codes: Iterable[str], *, request_wide: bool = False) -> RuleOutcome:
    codes = tuple(codes)
    if codes:
        return RuleOutcome(rule=rule, passed=False, codes=codes, request_wide=request_wide)
    passed = _PASSED.get((rule, request_wide))
    if passed is None:
        passed = _PASSED[(rule, request_wide)] = RuleOutcome(rule, True, (), request_wide)
    return passed


# The failed outcomes of the per-candidate rules with a single code, made once (outcomes are frozen).
_FAIL_HOLDINGS = _outcome("holdings", ("already_held",))
_FAIL_CHANNEL = _outcome("channel", ("channel_not_allowed",))
_FAIL_CONSENT = _outcome("consent", ("consent_refused",))
_FAIL_COOLDOWN = _outcome("cooldown", ("cooldown_dismissed",))
_FAIL_CONTENT = _outcome("content", ("content_not_approved",))
_FAIL_RIGHT = _outcome("right", ("right_unaffordable",))


def request_outcomes(
    context: CustomerContext, request: DecisionRequest, policy: ContactPolicy
) -> tuple[RuleOutcome, ...]:
    """The request-wide rules: quiet hours, then every cap that applies to the channel."""
    quiet = ("quiet_hours",) if policy.in_quiet_hours(request.channel, request.at) else ()
    caps = [
        cap.code
        for cap in policy.caps_for(request.channel)
        if context.contact.count(cap, request.at) >= cap.limit
    ]
    return (
        _outcome("quiet_hours", quiet, request_wide=True),
        _outcome("contact_cap", dict.fromkeys(caps), request_wide=True),
    )


def evaluate_candidate(
    product: CandidateProduct,
    context: CustomerContext,
    request: DecisionRequest,
    policy: ContactPolicy,
    shared: Sequence[RuleOutcome],
) -> CandidateVerdict:
    """Every rule on one candidate, in the documented order (``shared``: the request-wide outcomes)."""
    facts = context.facts
    at = request.at
    failed: list[RuleOutcome] = []
    eligibility = eligibility_codes(product.eligibility, facts)
    if eligibility:
        failed.append(_outcome("eligibility", eligibility))
    suitability = suitability_code(product.risk_rating, facts, at)
    if suitability is not None:
        failed.append(_outcome("suitability", (f"suitability_{suitability}",)))
    if product.product_id in facts.held_product_ids:
        failed.append(_FAIL_HOLDINGS)
    if request.channel not in product.channels:
        failed.append(_FAIL_CHANNEL)
    if not context.consents.get(request.channel, False):
        failed.append(_FAIL_CONSENT)
    for outcome in shared:
        if not outcome.passed:
            failed.append(outcome)
    cooldown_until = context.contact.cooldowns.get(product.product_id)
    if cooldown_until is not None and cooldown_until > at:
        failed.append(_FAIL_COOLDOWN)
    if not product.content_approved:
        failed.append(_FAIL_CONTENT)
    if product.right_affordable is False:
        failed.append(_FAIL_RIGHT)
    return CandidateVerdict(product, tuple(failed))


def evaluate_policies(
    candidates: Sequence[CandidateProduct],
    context: CustomerContext,
    request: DecisionRequest,
    policy: ContactPolicy | None = None,
    *,
    degraded: bool = False,
) -> PolicyResult:
    """Apply every policy to every candidate. Suitability is hard in every mode; so is everything else
    here: the mode changes how the survivors are ranked, never which rules apply."""
    policy = policy or ContactPolicy()
    shared = request_outcomes(context, request, policy)
    return _evaluate(candidates, context, request, policy, shared, degraded)


def _evaluate(
    candidates: Sequence[CandidateProduct],
    context: CustomerContext,
    request: DecisionRequest,
    policy: ContactPolicy,
    shared: tuple[RuleOutcome, ...],
    degraded: bool,
) -> PolicyResult:
    verdicts = tuple(evaluate_candidate(p, context, request, policy, shared) for p in candidates)
    return PolicyResult(
        mode=choose_mode(context, degraded=degraded), verdicts=verdicts, request_outcomes=shared
    )


def inputs_key(
    candidates: Sequence[CandidateProduct],
    context: CustomerContext,
    request: DecisionRequest,
    shared: tuple[RuleOutcome, ...],
    degraded: bool,
) -> tuple[object, ...]:
    """Everything :func:`evaluate_policies` reads besides the candidate and facts objects themselves.

    Two calls with the same candidate objects, the same facts object and equal keys give equal
    results. Time enters only here: through the request-wide outcomes (quiet hours, caps), whether
    the risk assessment has expired, and which candidates are cooling down. A rule that reads
    anything else must add it here (``test_policy_memo`` compares memo and fresh evaluation).
    """
    at = request.at
    cooldowns = context.contact.cooldowns
    cooling = (
        frozenset(
            p.product_id
            for p in candidates
            if (until := cooldowns.get(p.product_id)) is not None and until > at
        )
        if cooldowns
        else frozenset()
    )
    return (
        request.channel,
        bool(context.consents.get(request.channel, False)),
        context.personalised_opt_out,
        degraded,
        tuple([(o.rule, o.codes) for o in shared]),  # what an outcome is, cheaper to hash
        assessment_expired(context.facts, at),
        cooling,
    )


class PolicyMemo:
    """:func:`evaluate_policies`, kept per (candidate sequence, facts) and :func:`inputs_key`.

    A warm customer's decisions differ mostly in time and contact history, which change the rules'
    outcomes rarely: their verdicts are made once and shared (frozen) until an input changes. The
    candidate products are the catalogue cache's frozen policy views and the facts a cached profile
    view's frozen model, so identity stands for content.
    """

    def __init__(self, max_entries: int = 10_000) -> None:
        self._memo: IdentityMemo[PolicyResult] = IdentityMemo(max_entries)

    def __len__(self) -> int:
        return len(self._memo)

    def evaluate(
        self,
        candidates: tuple[CandidateProduct, ...],
        context: CustomerContext,
        request: DecisionRequest,
        policy: ContactPolicy,
        *,
        degraded: bool = False,
    ) -> PolicyResult:
        shared = request_outcomes(context, request, policy)
        # The candidates by the sequence's identity: the caller passes the same tuple of views for a
        # warm customer (pipeline.rank keeps it), so two ids make the key, not forty.
        objects = (context.facts, candidates)
        key = inputs_key(candidates, context, request, shared, degraded)
        result = self._memo.get(objects, key)
        if result is None:
            result = _evaluate(candidates, context, request, policy, shared, degraded)
            self._memo.put(objects, key, result)
        return result


@dataclass(frozen=True, slots=True)
class GlobalPopularity:
    """Segment-free popularity: one number per product over the whole customer base, nothing else.

    Deliberately keyed by product id only, so that it cannot carry anything about a customer.
    """

    by_product: Mapping[str, float]

    def of(self, product_id: str) -> float:
        """The product's popularity; unknown products rank last."""
        return self.by_product.get(product_id, 0.0)


def rank_non_personalised(
    allowed: Sequence[CandidateVerdict], popularity: GlobalPopularity, limit: int
) -> list[str]:
    """Rank for a customer who opted out of personalisation: segment-free popularity only.

    The signature is the guarantee: it receives the verdicts (which products passed the rules) and
    the catalogue-wide popularity, and has no parameter through which a profile feature or a model
    score could arrive. Ties are broken by product id, so the order is fully determined.
    """
    ids = sorted(
        {v.product.product_id for v in allowed if v.allowed},
        key=lambda pid: (-popularity.of(pid), pid),
    )
    return ids[:limit]


def rank(
    result: PolicyResult,
    *,
    popularity: GlobalPopularity,
    model_scores: Mapping[str, float],
    limit: int,
) -> list[str]:
    """Rank the allowed products by the result's mode.

    Personalised and fallback rankings use ``model_scores`` (propensities, or segment popularity on
    the fallback path) times product value; non-personalised ranking never sees ``model_scores``.
    Arbitration (moment weights, business levers, diversity) replaces the personalised branch later.
    """
    if result.mode is Mode.NON_PERSONALISED:
        return rank_non_personalised(result.allowed, popularity, limit)
    scored = sorted(
        result.allowed,
        key=lambda v: (-model_scores.get(v.product.product_id, 0.0) * v.product.value, v.product.product_id),
    )
    return [v.product.product_id for v in scored[:limit]]
