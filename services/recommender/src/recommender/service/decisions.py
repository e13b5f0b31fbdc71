"""The decision orchestrator: customer context → candidates → policies → arbitration → bundles → audit.

One call of :meth:`DecisionService.decide` does, in order:

1. refuse at once (:class:`AuditStoreUnavailableError`, 503) when the audit writer is not running: no
   decision is ever answered without its audit record;
2. read the customer context (:mod:`recommender.service.context`): profile's eligibility facts and
   consents, and the Feast online features with their freshness checked at the decision time. An
   unknown customer is a 404; an unreachable profile switches to the **fallback** path with the most
   conservative facts (no risk assessment, no consent), so every hard rule still holds — in practice
   nothing is offered without the customer's consent; stale or missing features switch to fallback
   too (``features_stale`` / ``features_missing``), counted in ``qianmian_decision_fallback_total``;
3. choose the mode: opt-out → ``non_personalised`` (segment-free popularity only); anything degraded
   → ``fallback`` (degraded_reasons say which); else ``personalised``;
4. generate candidates (:class:`CandidateGenerator`; the moment is the request's, else the customer's
   last moment from Feast when it is within ``moment_window``), attach each one's best approved
   content for the channel and its right from the hub cache, then the pure pipeline
   (:mod:`recommender.service.pipeline`): every policy on every candidate, arbitration, bundles;
5. take a contact slot for the channel (exact caps); a full cap empties the bundles (``contact_cap``);
6. write the audit record (group commit) and await its durability, then return the response. The
   record holds every input the pure pipeline used, so ``recommender replay`` can re-run it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from types import MappingProxyType
from typing import Any, Final

from prometheus_client import Counter
from qianmian_core.db import Database
from qianmian_core.errors import DependencyUnavailableError, NotFoundError
from qianmian_core.ids import time_ordered_hex
from qianmian_core.logging import get_logger
from qianmian_core.memo import IdentityMemo
from qianmian_rules import MOMENT_TYPES, CustomerFacts, assessment_expired
from qianmian_rules.placeholders import customer_values, fill, product_values
from sqlalchemy.exc import SQLAlchemyError

from recommender.bounds import WARM_ENTRIES
from recommender.experiments.definition import ArmChanges
from recommender.ml.data import serving_feature_tokens
from recommender.repository.audit import AuditRecord, AuditRepository, shared_part
from recommender.repository.contacts import Reservation, SlotRequest
from recommender.service.arbitration import ArbitrationConfig
from recommender.service.audit import AuditUnavailableError, GroupCommitAuditWriter, SlotClaim
from recommender.service.candidates import (
    Candidate,
    CandidateGenerator,
    CandidateSet,
    CfTopCache,
    CustomerSignals,
    on_sale_ids,
    popularity_for,
)
from recommender.service.contact_ledger import ContactLedger
from recommender.service.contacts import ContactService
from recommender.service.context import CustomerContextSource, CustomerContextView, FeatureSnapshot
from recommender.service.experiments import ExperimentService
from recommender.service.holder import ModelHolder, PinnedModel, PinnedModelError
from recommender.service.hub_cache import CatalogueProduct, ContentEntry, HubCache, RightEntry
from recommender.service.metrics import record_policy_blocks
from recommender.service.pipeline import (
    OfferParts,
    PipelineOutcome,
    audit_candidates,
    campaign_epoch,
    context_to_json,
    offers,
    rank,
    without_offers,
)
from recommender.service.policies import (
    CHANNELS,
    ContactPolicy,
    ContactState,
    CustomerContext,
    DecisionRequest,
    Mode,
)
from recommender.service.ranker import RANKER_FALLBACKS, RankerRead, RankerStage
from recommender.service.snapshots import SnapshotStore

log = get_logger(__name__)

DECISION_FALLBACKS: Final = Counter(
    "qianmian_decision_fallback_total",
    "Decisions answered on the fallback path, by the reason that forced it",
    ["reason"],
)
#: The reasons a decision falls back (each series exists at 0 from start-up).
FALLBACK_REASONS: Final[tuple[str, ...]] = (
    "profile_unavailable",
    "features_unavailable",
    "features_missing",
    "features_stale",
    "product_catalogue_missing",
    "product_catalogue_stale",
    "content_index_unavailable",
    "rights_unavailable",
    "model_unavailable",
    "model_error",
)
for _reason in FALLBACK_REASONS:
    DECISION_FALLBACKS.labels(reason=_reason)

DECISION_RETRIES: Final = Counter(
    "qianmian_decision_retries_total",
    "Decisions made again because a cool-down started while they were being made",
)
#: How many times a decision is made before giving up on a customer whose cool-downs keep changing.
MAX_ATTEMPTS: Final = 3
#: Candidate sets whose offer parts are kept (a warm customer's set per channel and moment).
PARTS_MEMO_MAX: Final = WARM_ENTRIES
#: Pipeline runs kept (a warm customer's run per channel, placement and variant; see _kept_run).
RUNS_MEMO_MAX: Final = WARM_ENTRIES

#: A moment from the customer's activity features triggers rules for this long after it happened.
DEFAULT_MOMENT_WINDOW: Final = timedelta(days=7)


class AuditStoreUnavailableError(DependencyUnavailableError):
    """The audit store cannot make the decision durable: answered 503, never unaudited."""

    code = "audit_unavailable"


#: The facts used when profile is unreachable: nothing known, so every rule takes its strictest path
#: (no risk assessment → no risk-rated product; no consent → nothing offered).
UNKNOWN_FACTS: Final[CustomerFacts] = CustomerFacts(age=0, aum=0, region="", lifecycle_stage="unknown")


@dataclass(frozen=True, slots=True)
class DecisionInput:
    """A validated decision request."""

    customer_id: str
    channel: str
    placement: str
    limit: int
    moment_type: str | None = None
    moment_at: datetime | None = None
    client_request_id: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "customer_id": self.customer_id,
            "channel": self.channel,
            "placement": self.placement,
            "limit": self.limit,
            "moment": None
            if self.moment_type is None
            else {
                "type": self.moment_type,
                "at": None if self.moment_at is None else self.moment_at.isoformat(),
            },
            "client_request_id": self.client_request_id,
        }


def _store_down(exc: Exception) -> AuditStoreUnavailableError:
    # The contact history lives with the audit log: without it no decision can be made or audited.
    log.error("decision_store_failed", error_type=type(exc).__name__)
    return AuditStoreUnavailableError("the decision store is unavailable")


def render_variant(
    content: ContentEntry,
    product: CatalogueProduct,
    segments: frozenset[str] | None,
    lifecycle: str | None,
) -> dict[str, Any]:
    """The channel variant with its placeholders filled as content-hub's render fills them.

    Only a salutation and segment name (neutral without ``segments``: non-personalised and fallback
    answers say nothing about the customer) and the product's own facts; never personal data.
    """
    values = {
        **customer_values(segments, lifecycle, content.segments),
        **product_values(product.name, product.attributes),
    }
    return {k: fill(v, values)[0] if isinstance(v, str) else v for k, v in content.variant.items()}


#: A feature snapshot's model tokens (a cached read's snapshot serves many decisions).
_TOKENS: IdentityMemo[tuple[str, ...]] = IdentityMemo(WARM_ENTRIES)


def feature_tokens(features: FeatureSnapshot, *, keep: bool = False) -> tuple[str, ...]:
    """The customer's model feature tokens from the snapshot's fresh profile values; once per
    snapshot when ``keep`` (a cached read's snapshot, which later decisions see again)."""
    tokens = _TOKENS.get((features,)) if keep else None
    if tokens is None:
        tokens = tuple(serving_feature_tokens(profile_values(features)))
        if keep:
            _TOKENS.put((features,), None, tokens)
    return tokens


class RenderOnce:
    """A content variant's rendering, made at the first call and kept: offer parts are kept for a
    warm customer, and their served bundles render the same fields every time."""

    __slots__ = ("_fields", "_make")

    def __init__(self, make: Callable[[], dict[str, Any]]) -> None:
        self._make = make
        self._fields: dict[str, Any] | None = None

    def __call__(self) -> dict[str, Any]:
        fields = self._fields
        if fields is None:
            fields = self._fields = self._make()
        return fields


def profile_values(features: FeatureSnapshot) -> dict[str, Any]:
    """The fresh ``customer_profile`` features by column name (for the model's feature tokens)."""
    prefix = "customer_profile:"
    return {k.removeprefix(prefix): v for k, v in features.fresh.items() if k.startswith(prefix)}


def _pick_right(
    content: ContentEntry | None, candidate: Candidate, rights: Mapping[str, RightEntry]
) -> tuple[RightEntry | None, bool | None]:
    """The bundle's right and whether it is affordable (None: no right attached).

    ``rights``: the affordable rights by id, in the hub's order.
    """
    if content is not None and content.right_id is not None:
        right = rights.get(content.right_id)
        return (right, True) if right is not None else (None, False)
    if candidate.right_type is not None:
        for right in rights.values():
            if right.right_type == candidate.right_type:
                return right, True
    return None, None


#: The experiment id and arm of the global holdout's decisions.
HOLDOUT: Final = "holdout"

EXPERIMENT_ARM_FAILURES: Final = Counter(
    "qianmian_experiment_arm_failures_total",
    "Decisions served by production because their experiment arm could not be (e.g. its model version "
    "is not approved)",
)


@dataclass(frozen=True, slots=True)
class Variant:
    """How a decision is made: production, or an experiment arm's changes applied to it."""

    model: ModelHolder | PinnedModel | None
    arbitration: ArbitrationConfig
    arbitration_json: dict[str, Any]
    no_rights: bool = False
    content_id: str | None = None
    #: The arm ranks without the LightGBM ranker (``changes.ranker == "off"``).
    ranker_off: bool = False
    #: The arm's changes as defined (empty for production).
    changes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ExperimentPlan:
    """The customer's arm in the experiment that shapes the decision, and every arm's variant."""

    experiment_id: str
    arm: str
    variants: Mapping[str, Variant]
    #: The customer's arms in other layers' experiments (recorded, not applied).
    others: tuple[dict[str, str], ...] = ()


#: The global holdout: no personalised marketing, no experiment.
HOLDOUT_PLAN: Final = ExperimentPlan(experiment_id=HOLDOUT, arm=HOLDOUT, variants=MappingProxyType({}))


@dataclass(frozen=True, slots=True)
class _Run:
    """One pass of the pipeline for one variant."""

    mode: Mode
    degraded: list[str]
    #: The context the run was made from: a kept run's contact history is that of the decision that
    #: made it (a decision records its own).
    context: CustomerContext
    catalogue: Mapping[str, CatalogueProduct]
    signals: CustomerSignals
    moment: str | None
    moment_source: str | None
    candidate_set: CandidateSet
    parts: Mapping[str, OfferParts]
    outcome: PipelineOutcome
    personalised: bool
    #: The audit's ``ranker`` entry (None where the ranker stage did not run) and its fallback code.
    ranker: dict[str, Any] | None = None
    ranker_code: str | None = None


def _served(run: _Run) -> list[list[str | None]]:
    """What a run would serve: product, content and right of each ranked offer, in order."""
    out: list[list[str | None]] = []
    for offer in run.outcome.arbitration.ranked:
        part = run.parts[offer.product_id]
        content = part.content["id"] if part.content is not None else None
        right = part.right["id"] if part.right is not None and part.right_affordable else None
        out.append([offer.product_id, content, right])
    return out


class DecisionService:
    """Builds, audits and returns decisions."""

    def __init__(
        self,
        *,
        database: Database,
        audit: GroupCommitAuditWriter,
        hub_cache: HubCache,
        context: CustomerContextSource,
        holder: ModelHolder | None,
        contact_policy: ContactPolicy | None = None,
        arbitration: ArbitrationConfig | None = None,
        moment_window: timedelta = DEFAULT_MOMENT_WINDOW,
        experiments: ExperimentService | None = None,
        ranker: RankerStage | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.database = database
        self.audit = audit
        self.hub_cache = hub_cache
        self.context = context
        self.holder = holder
        self.contact_policy = contact_policy or ContactPolicy()
        self.contacts = ContactService(database, self.contact_policy)
        self.ledger = ContactLedger(database, self.contact_policy)
        self.arbitration = arbitration or ArbitrationConfig()
        self._caps = self.contact_policy.caps()
        self._policy_json = self.contact_policy.model_dump(mode="json")
        self._arbitration_json = self.arbitration.model_dump(mode="json")
        self._production = Variant(
            model=holder, arbitration=self.arbitration, arbitration_json=self._arbitration_json
        )
        self.moment_window = moment_window
        self.now = now
        self.snapshots = SnapshotStore(database)
        self.experiments = experiments
        self.ranker = ranker
        self._generators: dict[tuple[int, int, int], tuple[object, object, CandidateGenerator]] = {}
        self._variants: dict[tuple[str, str], tuple[ArmChanges, Variant]] = {}
        self.cf_cache = CfTopCache()
        #: Offer parts per candidate set, catalogue, hub snapshots and window epoch (see _offer_parts).
        self._parts: IdentityMemo[Mapping[str, OfferParts]] = IdentityMemo(PARTS_MEMO_MAX)
        #: Pipeline runs per everything they read (see _kept_run); None: every run is made afresh.
        self.runs: IdentityMemo[_Run] | None = IdentityMemo(RUNS_MEMO_MAX)
        #: A run's audit feature entries (see _run_features).
        self._run_entries: IdentityMemo[dict[str, Any]] = IdentityMemo(RUNS_MEMO_MAX)

    def _candidate_generator(
        self, catalogue: Mapping[str, CatalogueProduct], model: ModelHolder | PinnedModel | None
    ) -> CandidateGenerator:
        """One generator per (model, catalogue snapshot): popularity is built once, not per call."""
        loaded = model.current if model is not None else None
        key = (id(model), id(loaded), id(catalogue))
        cached = self._generators.get(key)
        if cached is not None and cached[0] is loaded and cached[1] is catalogue:
            return cached[2]
        generator = CandidateGenerator(model, popularity_for(loaded, catalogue), cf_cache=self.cf_cache)
        if len(self._generators) >= 8:
            self._generators.clear()
        self._generators[key] = (loaded, catalogue, generator)
        return generator

    async def decide(self, request: DecisionInput) -> dict[str, Any]:
        """One decision, durable in the audit log before it is returned."""
        if not self.audit.running:
            raise AuditStoreUnavailableError("the audit writer is not running")
        if request.channel not in CHANNELS:  # the API validates; this guards direct callers
            raise ValueError(f"unknown channel {request.channel!r}")
        at = self.now()
        decision_id = f"dec_{time_ordered_hex()}"
        seen = await self.context.customer(request.customer_id, at)
        plan = await self._experiment_plan(request, seen)
        ranker_read: RankerRead | None = None
        if self.ranker is not None and seen.profile is not None and seen.profile.personalised:
            ranker_read = await self.ranker.read(request.customer_id, at)
        for _ in range(MAX_ATTEMPTS):
            try:
                contact_state = await self.ledger.state(request.customer_id, at)
            except SQLAlchemyError as exc:
                raise _store_down(exc) from None
            answer = await self._attempt(request, at, decision_id, seen, contact_state, plan, ranker_read)
            if answer is not None:
                return answer
            # A cool-down started since the ledger was read (a dismiss on another replica): nothing
            # was written; decide again from the stored state.
            DECISION_RETRIES.inc()
            self.ledger.forget(request.customer_id)
        raise AuditStoreUnavailableError("the customer's contact state kept changing; retry")

    # --- experiments -----------------------------------------------------------------------------

    async def _experiment_plan(
        self, request: DecisionInput, seen: CustomerContextView
    ) -> ExperimentPlan | None:
        """The customer's experiment arm and every arm's variant, or the global holdout, or None.

        Only customers known to profile who allow personalisation take part (an opted-out customer
        is answered non-personalised whatever the arm). A decision is shaped by one experiment: the
        first of the customer's arms (layers in name order); the others are recorded in the audit.
        """
        experiments = self.experiments
        view = seen.profile
        if experiments is None or view is None or not view.personalised:
            return None
        try:  # the running experiments, reloaded from the database every few seconds
            assigner = experiments.assigner()
        except SQLAlchemyError as exc:
            raise _store_down(exc) from None
        if assigner.in_holdout(request.customer_id):
            return HOLDOUT_PLAN
        segments = view.facts.segments
        if not assigner.eligible(request.customer_id, request.channel, segments):
            return None
        try:
            assignments = await asyncio.to_thread(
                experiments.assign, request.customer_id, request.channel, segments
            )
        except SQLAlchemyError as exc:
            raise _store_down(exc) from None
        if assignments.holdout:
            return HOLDOUT_PLAN
        if not assignments.arms:
            return None
        first = sorted(assignments.arms, key=lambda a: a.layer)[0]
        variants: dict[str, Variant] = {}
        for arm in experiments.arms_of(first.experiment_id):
            changes = experiments.arm_changes(first.experiment_id, arm)
            if changes is None:  # stopped since it was assigned: production serves
                return None
            try:
                variants[arm] = self._variant(first.experiment_id, arm, changes)
            except PinnedModelError as exc:
                log.error(
                    "experiment_arm_unservable", experiment_id=first.experiment_id, arm=arm, error=str(exc)
                )
                EXPERIMENT_ARM_FAILURES.inc()
                return None
        if first.arm not in variants:
            return None
        return ExperimentPlan(
            experiment_id=first.experiment_id,
            arm=first.arm,
            variants=MappingProxyType(variants),
            others=tuple({"id": a.experiment_id, "arm": a.arm} for a in assignments.arms if a is not first),
        )

    def _variant(self, experiment_id: str, arm: str, changes: ArmChanges) -> Variant:
        key = (experiment_id, arm)
        cached = self._variants.get(key)
        if cached is not None and cached[0] == changes:
            return cached[1]
        arbitration = self.arbitration
        if changes.arbitration is not None:
            arbitration = ArbitrationConfig.model_validate({**self._arbitration_json, **changes.arbitration})
        model: ModelHolder | PinnedModel | None = self.holder
        if changes.model_version is not None:
            if self.holder is None:
                raise PinnedModelError("no model registry is configured")
            model = self.holder.pinned(changes.model_version)
        variant = Variant(
            model=model,
            arbitration=arbitration,
            arbitration_json=arbitration.model_dump(mode="json"),
            no_rights=changes.rights_policy == "no_rights",
            content_id=changes.content_variant,
            ranker_off=changes.ranker == "off",
            changes=changes.model_dump(mode="json", exclude_none=True),
        )
        if len(self._variants) >= 64:
            self._variants.clear()
        self._variants[key] = (changes, variant)
        return variant

    # --- one decision ----------------------------------------------------------------------------

    def _kept_run(
        self,
        request: DecisionInput,
        at: datetime,
        seen: CustomerContextView,
        contact_state: ContactState,
        variant: Variant,
        *,
        holdout: bool,
        ranker_read: RankerRead | None = None,
    ) -> tuple[_Run, bool]:
        """:meth:`_run`, kept for a warm customer while nothing it reads changes; and whether it is a
        kept one (the memo holds it: its decisions may share what they derive from it).

        A warm customer's decisions on a channel read the same cached objects (profile view, feature
        snapshot, ranker read, catalogue and hub snapshots, model, variant) and differ in time and
        contact history, which change the pipeline's outcome rarely. The run is kept per those objects
        (identity) and per every value through which time and contact history enter it:

        - the request's fields (the customer, channel, placement, limit and moment);
        - what is degraded (the view's and the hubs'; feature staleness is in the snapshot's identity,
          which is kept per freshness epoch);
        - the sale windows' epoch (the on-sale ids, one tuple per epoch), the content and rights
          windows' epoch, the campaigns' epoch;
        - quiet hours, the caps that are full, the products cooling down, the products shown within
          the no-repeat window, whether the risk assessment has expired, and the moment (the
          request's, or the features' last one while it is within the moment window).

        A kept run is returned as it was made: its context holds the contact history of the decision
        that made it, and each decision's audit records its own (``_attempt``). Only cached reads
        are kept (``seen.features_kept`` and a profile view): a fresh read's objects are never seen
        again. ``test_kept_runs`` holds kept runs to fresh ones over time.
        """
        runs = self.runs
        view = seen.profile
        if runs is None or view is None or not seen.features_kept:
            made = self._run(
                request, at, seen, contact_state, variant, holdout=holdout, ranker_read=ranker_read
            )
            return made, False
        model = variant.model
        hubs = self.hub_cache
        catalogue = hubs.catalogue
        sources = hubs.offer_sources(at)
        policy = self.contact_policy
        channel = request.channel
        contact = contact_state
        since = at - variant.arbitration.no_repeat_window
        shown = contact.shown
        objects = (
            view,
            seen.features,
            ranker_read,
            variant,
            None if model is None else model.current,
            None if self.ranker is None else self.ranker.current,
            catalogue,
            on_sale_ids(catalogue, at),
            sources.content,
            sources.rights,
        )
        key = (
            request.customer_id,
            channel,
            request.placement,
            request.limit,
            request.moment_type,
            request.moment_at,
            holdout,
            seen.degraded,
            hubs.degraded_reasons,
            sources.epoch,
            campaign_epoch(variant.arbitration, at),
            policy.in_quiet_hours(channel, at),
            tuple([cap.code for cap in policy.caps_for(channel) if contact.count(cap, at) >= cap.limit]),
            frozenset([p for p, until in contact.cooldowns.items() if until > at]),
            frozenset([p for p, last in shown.items() if last > since]) if shown else frozenset(),
            assessment_expired(view.facts, at),
            self._moment(request, seen.features, at),
        )
        kept = runs.get(objects, key)
        if kept is None:
            kept = self._run(
                request, at, seen, contact_state, variant, holdout=holdout, ranker_read=ranker_read
            )
            runs.put(objects, key, kept)
        return kept, True

    def _run(
        self,
        request: DecisionInput,
        at: datetime,
        seen: CustomerContextView,
        contact_state: ContactState,
        variant: Variant,
        *,
        holdout: bool,
        ranker_read: RankerRead | None = None,
    ) -> _Run:
        """The pure pipeline for one variant: mode, candidates, offer parts, policies, arbitration."""
        view = seen.profile
        degraded: list[str] = list(seen.degraded)
        facts = view.facts if view is not None else UNKNOWN_FACTS
        consents: Mapping[str, bool] = view.consents if view is not None else MappingProxyType({})
        opt_out = view is not None and not view.personalised
        degraded.extend(self.hub_cache.degraded_reasons)
        if variant.model is None or variant.model.current is None:
            degraded.append("model_unavailable")
        context = CustomerContext(
            facts=facts, consents=consents, personalised_opt_out=opt_out, contact=contact_state
        )
        if opt_out or holdout:
            mode = Mode.NON_PERSONALISED
        else:
            mode = Mode.FALLBACK if degraded else Mode.PERSONALISED
        catalogue = self.hub_cache.catalogue
        moment, moment_source = self._moment(request, seen.features, at)
        signals = CustomerSignals(
            customer_id=request.customer_id,
            segments=facts.segments,
            tokens=feature_tokens(seen.features, keep=seen.features_kept),
            moment=moment,
        )
        generator = self._candidate_generator(catalogue, variant.model)
        candidate_set = generator.generate(signals, catalogue, mode=mode, at=at)
        if candidate_set.cf_skipped == "model_error" and mode is Mode.PERSONALISED:
            degraded.append("model_error")
            mode = Mode.FALLBACK
        ranker_entry: dict[str, Any] | None = None
        ranker_code: str | None = None
        # The ranker re-scores production's candidates (an arm that pins a model version is that
        # model's ranking, compared as such; an arm may switch it off to measure it); fallback and
        # non-personalised modes never use it.
        if (
            mode is Mode.PERSONALISED
            and self.ranker is not None
            and ranker_read is not None
            and variant.model is self.holder
            and not variant.ranker_off
        ):
            candidate_set, ranker_entry, ranker_code = self.ranker.apply(candidate_set, ranker_read)
        personalised = mode is not Mode.NON_PERSONALISED
        parts = self._offer_parts(
            candidate_set.candidates,
            catalogue,
            request.channel,
            at,
            facts,
            personalised,
            no_rights=variant.no_rights,
            content_id=variant.content_id,
        )
        outcome = rank(
            request=DecisionRequest(channel=request.channel, placement=request.placement, at=at),
            limit=request.limit,
            context=context,
            mode=mode,
            degraded=bool(degraded),
            candidates=candidate_set.candidates,
            parts=parts,
            catalogue=catalogue,
            contact_policy=self.contact_policy,
            arbitration=variant.arbitration,
        )
        return _Run(
            mode=mode,
            degraded=degraded,
            context=context,
            catalogue=catalogue,
            signals=signals,
            moment=moment,
            moment_source=moment_source,
            candidate_set=candidate_set,
            parts=parts,
            outcome=outcome,
            personalised=personalised,
            ranker=ranker_entry,
            ranker_code=ranker_code,
        )

    async def _attempt(
        self,
        request: DecisionInput,
        at: datetime,
        decision_id: str,
        seen: CustomerContextView,
        contact_state: ContactState,
        plan: ExperimentPlan | None,
        ranker_read: RankerRead | None = None,
    ) -> dict[str, Any] | None:
        """Make and audit the decision; None when its slot met a cool-down it did not know of."""
        holdout = plan is HOLDOUT_PLAN
        variant = plan.variants[plan.arm] if plan is not None and not holdout else self._production
        run, kept = self._kept_run(
            request, at, seen, contact_state, variant, holdout=holdout, ranker_read=ranker_read
        )
        experiment_json: dict[str, Any] | None = None
        exposed = False
        if plan is not None and not holdout:
            # Exposure only where the arm changed what is served: the other arms' answers, made from
            # the same inputs, are compared with this one (for control and treatment alike).
            served = _served(run)
            counterfactual = {}
            for arm, other in plan.variants.items():
                if arm != plan.arm:
                    counterfactual[arm] = _served(
                        self._kept_run(
                            request, at, seen, contact_state, other, holdout=False, ranker_read=ranker_read
                        )[0]
                    )
            exposed = any(answer != served for answer in counterfactual.values())
            experiment_json = {
                "id": plan.experiment_id,
                "arm": plan.arm,
                "changes": variant.changes,
                "served": served,
                "counterfactual": counterfactual,
                "exposed": exposed,
                "other_assignments": list(plan.others),
            }
        elif holdout:
            experiment_json = {"id": HOLDOUT, "arm": HOLDOUT}
        experiment = None if plan is None else {"id": HOLDOUT if holdout else plan.experiment_id}
        if experiment is not None:
            experiment["arm"] = HOLDOUT if holdout or plan is None else plan.arm
        mode, degraded, outcome, parts = run.mode, run.degraded, run.outcome, run.parts
        candidate_set, catalogue, personalised = run.candidate_set, run.catalogue, run.personalised
        model_version = candidate_set.model_version if personalised else None
        snapshot = await self.snapshots.key_of(catalogue)
        run_features = self._run_features(
            run,
            variant,
            snapshot,
            None if seen.profile is None else seen.profile.personalised,
            keep=kept,
        )
        claim = (
            SlotClaim(
                slot=SlotRequest(request.customer_id, request.channel, at, decision_id),
                caps=self._caps,
                offered=tuple(o.product_id for o in outcome.arbitration.ranked),
            )
            if outcome.arbitration.ranked
            else None
        )

        def build(reservation: Reservation | None) -> tuple[AuditRecord, dict[str, Any]]:
            # Runs in the audit writer's transaction, once the slot is settled.
            reason_codes = list(outcome.reason_codes)
            ranked_outcome = outcome
            reservation_json: dict[str, Any] | None = None
            if reservation is not None:
                reservation_json = reservation.as_json()
                if not reservation.granted:
                    ranked_outcome = without_offers(outcome)
                    reason_codes = ["contact_cap", *reservation.blocked_by]
            if holdout:
                reason_codes.append("experiment_holdout")
            if run.ranker_code is not None:
                reason_codes.append(run.ranker_code)
            offered = offers(
                ranked_outcome, candidate_set.candidates, parts, catalogue, personalised=personalised
            )
            response: dict[str, Any] = {
                "decision_id": decision_id,
                "mode": mode.value,
                "experiment": experiment,
                "model_version": model_version,
                "bundles": offered.bundles,
                "reason_codes": list(dict.fromkeys(reason_codes)),
                "degraded_reasons": degraded,
            }
            candidates_json = audit_candidates(candidate_set.candidates, outcome, parts)
            record = AuditRecord(
                decision_id=decision_id,
                created_at=at,
                customer_id=request.customer_id,
                channel=request.channel,
                placement=request.placement,
                mode=mode.value,
                model_version=model_version,
                experiment_id=None if experiment is None else experiment["id"],
                experiment_arm=None if experiment is None else experiment["arm"],
                request=request.as_json(),
                features={
                    "feast": shared_part(seen.features, seen.features.as_json)
                    if seen.features_kept
                    else seen.features.as_json(),
                    "sources": dict(seen.sources),
                    "context": context_to_json(run.context, contact_state),
                    **run_features,
                    "contact_reservation": reservation_json,
                    "experiment": experiment_json,
                },
                candidates=candidates_json,
                response={**response, "bundles": offered.bundles_part, "ranking": offered.ranking_part},
            )
            return record, response

        # Written in the audit record's transaction when its slot is granted: an exposure exists
        # exactly when its decision served what the arm changed.
        exposure = (
            {
                "experiment_id": plan.experiment_id,
                "arm": plan.arm,
                "customer_id": request.customer_id,
                "decision_id": decision_id,
                "channel": request.channel,
                "at": at,
            }
            if plan is not None and exposed
            else None
        )
        try:
            settled = await self.audit.write_decision(request.customer_id, build, claim, exposure=exposure)
        except AuditUnavailableError as exc:
            raise AuditStoreUnavailableError(str(exc)) from None
        if settled.window is not None:
            self.ledger.remember(request.customer_id, settled.window)
        if settled.record is None:
            return None
        record_policy_blocks(outcome.policies)
        if mode is Mode.FALLBACK:
            for reason in degraded:
                DECISION_FALLBACKS.labels(reason=reason).inc()
        if run.ranker_code is not None:
            RANKER_FALLBACKS.labels(reason=run.ranker_code).inc()
        response: dict[str, Any] = settled.answer
        return response

    def _run_features(
        self, run: _Run, variant: Variant, snapshot: str, personalised: bool | None, *, keep: bool
    ) -> dict[str, Any]:
        """The audit's feature entries that the run, its variant and the catalogue's snapshot make
        (from ``personalised`` to ``ranker``, in the record's order). ``keep``: the run is a kept one
        (as ``_kept_run`` says): they are made once for all its decisions, which record them as they are, so
        never modify them."""
        key = (snapshot, personalised)
        made = self._run_entries.get((run, variant), key) if keep else None
        if made is None:
            candidate_set = run.candidate_set
            ranker = run.ranker
            made = {
                "personalised": personalised,
                "signals": {
                    "segments": sorted(run.signals.segments),
                    "tokens": list(run.signals.tokens),
                    "moment": run.moment,
                    "moment_source": run.moment_source,
                },
                "catalogue_snapshot": snapshot,
                "arbitration_config": shared_part(variant.arbitration_json, lambda: variant.arbitration_json),
                "contact_policy": shared_part(self._policy_json, lambda: self._policy_json),
                "served_model_version": candidate_set.model_version,
                "cf_skipped": candidate_set.cf_skipped,
                "ranker": None if ranker is None else shared_part(ranker, lambda: ranker),
            }
            if keep:
                self._run_entries.put((run, variant), key, made)
        return made

    def _moment(
        self, request: DecisionInput, features: FeatureSnapshot, at: datetime
    ) -> tuple[str | None, str | None]:
        """The request's moment, else the customer's last moment from Feast when it is recent enough."""
        if request.moment_type is not None:
            return request.moment_type, "request"
        kind = features.get("customer_activity:last_moment_type")
        stamp = features.get("customer_activity:last_moment_ts")
        if not kind or not stamp:
            return None, None
        when = datetime.fromtimestamp(int(stamp), UTC)
        if timedelta(0) <= at - when <= self.moment_window and kind in MOMENT_TYPES:
            return str(kind), "features"
        return None, None

    def _offer_parts(
        self,
        candidates: tuple[Candidate, ...],
        catalogue: Mapping[str, CatalogueProduct],
        channel: str,
        at: datetime,
        facts: CustomerFacts,
        personalised: bool,
        *,
        no_rights: bool = False,
        content_id: str | None = None,
    ) -> Mapping[str, OfferParts]:
        """Each candidate's best approved content for the channel and its right, from the hub caches.

        ``no_rights``: attach no right (an experiment arm's rights policy); ``content_id``: show that
        content where it is approved for the product and channel (an arm's content variant).
        """
        segments = facts.segments if personalised else None
        lifecycle = facts.lifecycle_stage if personalised else None
        sources = self.hub_cache.offer_sources(at)
        # What the parts are made of: the candidates, the catalogue, the two snapshots (identity) and
        # the rest of the arguments (value); time only through the snapshots' window epoch.
        objects = (candidates, catalogue, sources.content, sources.rights)
        key = (channel, segments, lifecycle, no_rights, content_id, sources.epoch)
        kept = self._parts.get(objects, key)
        if kept is not None:
            return kept
        rights = {} if no_rights else {r.right_id: r for r in sources.affordable_rights(segments, lifecycle)}
        parts: dict[str, OfferParts] = {}
        for candidate in candidates:
            contents = sources.content_for(candidate.product_id, channel, segments)
            chosen = [c for c in contents if c.content_id == content_id] if content_id is not None else []
            content = chosen[0] if chosen else (contents[0] if contents else None)
            right, affordable = (None, None) if no_rights else _pick_right(content, candidate, rights)
            parts[candidate.product_id] = OfferParts(
                content_approved=bool(contents),
                right_affordable=affordable,
                content=None
                if content is None
                else {"id": content.content_id, "version": content.version, "channel": content.channel},
                right=None if right is None else {"id": right.right_id, "type": right.right_type},
                render=None
                if content is None
                else RenderOnce(
                    partial(render_variant, content, catalogue[candidate.product_id], segments, lifecycle)
                ),
            )
        kept = MappingProxyType(parts)
        self._parts.put(objects, key, kept)
        return kept

    async def get(self, decision_id: str) -> dict[str, Any]:
        """The audit record of one decision (404 when unknown)."""

        def read() -> AuditRecord | None:
            with self.database.session() as session:
                return AuditRepository(session).get(decision_id)

        record = await asyncio.to_thread(read)
        if record is None:
            raise NotFoundError(f"decision {decision_id} not found", code="decision_not_found")
        return {
            "decision_id": record.decision_id,
            "created_at": record.created_at,
            "customer_id": record.customer_id,
            "channel": record.channel,
            "placement": record.placement,
            "mode": record.mode,
            "model_version": record.model_version,
            "experiment": None
            if record.experiment_id is None
            else {"id": record.experiment_id, "arm": record.experiment_arm},
            "request": record.request,
            "features": record.features,
            "candidates": record.candidates,
            "response": record.response,
            "schema_version": record.schema_version,
        }


__all__ = [
    "DECISION_FALLBACKS",
    "AuditStoreUnavailableError",
    "DecisionInput",
    "DecisionService",
]
