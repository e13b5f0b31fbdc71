"""The decision orchestrator: customer context → candidates → policies → arbitration → bundles → audit.

One call of :meth:`DecisionService.decide` does, in order:

1. refuse at once (:class:`~recommender.service.audit.AuditUnavailableError`, 503) when the audit
   writer is not running: no decision is ever answered without its audit record;
2. read the customer's eligibility facts and consents from the profile service (concurrently). An
   unknown customer is a 404; an unreachable profile switches to the **fallback** path with the most
   conservative facts (no risk assessment, no consent), so every hard rule still holds — in
   practice nothing is offered without the customer's consent;
3. choose the mode: opt-out → ``non_personalised`` (segment-free popularity only); profile, hub
   snapshot or model unavailable → ``fallback`` (degraded_reasons say which); else ``personalised``;
4. generate candidates (:class:`CandidateGenerator`), attach each one's best approved content for the
   channel and its right from the hub cache, evaluate every policy on every candidate, arbitrate;
5. take a contact slot for the channel (exact caps); a full cap empties the bundles (``contact_cap``);
6. write the audit record (group commit) and await its durability, then return the response.

Features from the Feast online store are not read in this slice: the decision uses the profile's
eligibility facts and segments only, and the audit record's ``features`` says exactly that.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Final, Protocol

from prometheus_client import Counter
from pydantic import BaseModel, ConfigDict
from qianmian_core.clients import ServiceClient, path_of
from qianmian_core.db import Database
from qianmian_core.errors import DependencyUnavailableError, NotFoundError
from qianmian_core.logging import get_logger
from qianmian_rules import CustomerFacts
from sqlalchemy.exc import SQLAlchemyError

from recommender.ml.models.popularity import SegmentPopularityRecommender
from recommender.repository.audit import AuditRecord, AuditRepository
from recommender.service.arbitration import ArbitrationCandidate, ArbitrationConfig, arbitrate
from recommender.service.audit import AuditUnavailableError, GroupCommitAuditWriter
from recommender.service.candidates import (
    Candidate,
    CandidateGenerator,
    CustomerSignals,
    SegmentPopularity,
)
from recommender.service.contacts import ContactService
from recommender.service.explain import explain
from recommender.service.holder import ModelHolder
from recommender.service.hub_cache import CatalogueProduct, ContentEntry, HubCache, RightEntry
from recommender.service.metrics import record_policy_blocks
from recommender.service.policies import (
    CHANNELS,
    ContactPolicy,
    CustomerContext,
    DecisionRequest,
    GlobalPopularity,
    Mode,
    evaluate_policies,
)

log = get_logger(__name__)

DECISION_FALLBACKS: Final = Counter(
    "qianmian_decision_fallback_total",
    "Decisions answered on the fallback path, by the reason that forced it",
    ["reason"],
)
#: The reasons a decision falls back (each series exists at 0 from start-up).
FALLBACK_REASONS: Final[tuple[str, ...]] = (
    "profile_unavailable",
    "product_catalogue_missing",
    "product_catalogue_stale",
    "content_index_unavailable",
    "rights_unavailable",
    "model_unavailable",
    "model_error",
)
for _reason in FALLBACK_REASONS:
    DECISION_FALLBACKS.labels(reason=_reason)

#: What the audit record says about features in this slice (no Feast read yet).
FEATURES_NOT_READ: Final[dict[str, Any]] = {"source": "profile", "feast": "not_read"}


class CustomerNotFoundError(NotFoundError):
    """The profile service does not know the customer."""

    code = "customer_not_found"


class ProfileUnavailableError(DependencyUnavailableError):
    """The profile service could not be reached or answered badly."""

    code = "profile_unavailable"


class AuditStoreUnavailableError(DependencyUnavailableError):
    """The audit store cannot make the decision durable: answered 503, never unaudited."""

    code = "audit_unavailable"


class ConsentWire(BaseModel):
    """profile's ``GET /v1/customers/{id}/consents`` (only the fields read here)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    customer_id: str
    channels: dict[str, bool]
    personalised: bool


@dataclass(frozen=True, slots=True)
class ProfileView:
    """The customer as the profile service describes them."""

    facts: CustomerFacts
    consents: Mapping[str, bool]
    personalised: bool


class ProfileSource(Protocol):
    async def customer(self, customer_id: str) -> ProfileView: ...


class ProfileClient(ServiceClient):
    """Reads eligibility facts and consents from the profile service."""

    service = "profile"
    unavailable_error = ProfileUnavailableError
    default_timeout_s = 0.5

    async def customer(self, customer_id: str) -> ProfileView:
        """Facts and consents, fetched concurrently; 404 → CustomerNotFoundError."""
        missing = CustomerNotFoundError(
            f"customer {customer_id} not found", details={"customer_id": customer_id}
        )
        facts, consents = await asyncio.gather(
            self._client.get_model(
                path_of("v1", "customers", customer_id, "eligibility-facts"), CustomerFacts, not_found=missing
            ),
            self._client.get_model(
                path_of("v1", "customers", customer_id, "consents"), ConsentWire, not_found=missing
            ),
        )
        return ProfileView(facts, MappingProxyType(dict(consents.channels)), consents.personalised)


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


def _popularity(holder: ModelHolder | None, catalogue: Mapping[str, CatalogueProduct]) -> SegmentPopularity:
    loaded = holder.current if holder is not None else None
    if loaded is not None and isinstance(loaded.model, SegmentPopularityRecommender):
        return SegmentPopularity.from_model(loaded.model)
    # No popularity model: segment-free popularity from the catalogue's sales counts.
    overall = GlobalPopularity(MappingProxyType({pid: float(p.sold) for pid, p in catalogue.items()}))
    return SegmentPopularity(MappingProxyType({}), overall)


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


class DecisionService:
    """Builds, audits and returns decisions."""

    def __init__(
        self,
        *,
        database: Database,
        audit: GroupCommitAuditWriter,
        hub_cache: HubCache,
        profile: ProfileSource,
        holder: ModelHolder | None,
        contact_policy: ContactPolicy | None = None,
        arbitration: ArbitrationConfig | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.database = database
        self.audit = audit
        self.hub_cache = hub_cache
        self.profile = profile
        self.holder = holder
        self.contact_policy = contact_policy or ContactPolicy()
        self.contacts = ContactService(database, self.contact_policy)
        self.arbitration = arbitration or ArbitrationConfig()
        self.now = now

    async def decide(self, request: DecisionInput) -> dict[str, Any]:
        """One decision, durable in the audit log before it is returned."""
        if not self.audit.running:
            raise AuditStoreUnavailableError("the audit writer is not running")
        if request.channel not in CHANNELS:  # the API validates; this guards direct callers
            raise ValueError(f"unknown channel {request.channel!r}")
        at = self.now()
        decision_id = f"dec_{uuid.uuid4().hex}"
        degraded: list[str] = []

        try:
            view: ProfileView | None = await self.profile.customer(request.customer_id)
        except DependencyUnavailableError:
            view = None
            degraded.append("profile_unavailable")
        facts = view.facts if view is not None else UNKNOWN_FACTS
        consents: Mapping[str, bool] = view.consents if view is not None else MappingProxyType({})
        opt_out = view is not None and not view.personalised
        degraded.extend(self.hub_cache.degraded_reasons)
        if self.holder is None or self.holder.current is None:
            degraded.append("model_unavailable")

        try:
            contact_state = await asyncio.to_thread(self.contacts.state, request.customer_id, at)
        except SQLAlchemyError as exc:
            raise _store_down(exc) from None
        context = CustomerContext(
            facts=facts, consents=consents, personalised_opt_out=opt_out, contact=contact_state
        )
        mode = Mode.NON_PERSONALISED if opt_out else (Mode.FALLBACK if degraded else Mode.PERSONALISED)
        catalogue = self.hub_cache.catalogue
        generator = CandidateGenerator(self.holder, _popularity(self.holder, catalogue))
        signals = CustomerSignals(
            customer_id=request.customer_id,
            segments=facts.segments,
            tokens=tuple(f"segment={s}" for s in sorted(facts.segments)),
            moment=request.moment_type,
        )
        candidate_set = generator.generate(signals, catalogue, mode=mode, at=at)
        if candidate_set.cf_skipped == "model_error" and mode is Mode.PERSONALISED:
            degraded.append("model_error")
            mode = Mode.FALLBACK

        personalised = mode is not Mode.NON_PERSONALISED
        segments = facts.segments if personalised else None
        lifecycle = facts.lifecycle_stage if personalised else None
        rights = {
            r.right_id: r
            for r in self.hub_cache.affordable_rights(at=at, segments=segments, lifecycle_stage=lifecycle)
        }
        bundle_parts: dict[str, tuple[ContentEntry | None, RightEntry | None]] = {}
        policy_inputs = []
        for candidate in candidate_set.candidates:
            product = catalogue[candidate.product_id]
            contents = self.hub_cache.content_for(
                product.product_id, request.channel, at=at, segments=segments
            )
            content = contents[0] if contents else None
            right, affordable = _pick_right(content, candidate, rights)
            bundle_parts[product.product_id] = (content, right)
            policy_inputs.append(
                self.hub_cache.candidate_product(
                    product,
                    request.channel,
                    at=at,
                    segments=segments,
                    right_affordable=affordable,
                    contents=contents,
                )
            )
        result = evaluate_policies(
            policy_inputs,
            context,
            DecisionRequest(channel=request.channel, placement=request.placement, at=at),
            self.contact_policy,
            degraded=bool(degraded),
        )
        record_policy_blocks(result)
        by_id = {c.product_id: c for c in candidate_set.candidates}
        allowed = {v.product.product_id: v for v in result.allowed}
        arbitration = arbitrate(
            [
                ArbitrationCandidate(
                    product_id=pid,
                    product_type=by_id[pid].product_type,
                    propensity=by_id[pid].score,
                    value=catalogue[pid].value if personalised else 1.0,
                    moment=by_id[pid].moment if personalised else None,
                )
                for pid in allowed
            ],
            limit=request.limit,
            at=at,
            config=self.arbitration if personalised else ArbitrationConfig(),
        )

        request_codes = [code for o in result.request_outcomes if not o.passed for code in o.codes]
        reason_codes: list[str] = []
        if any(o.rule == "contact_cap" and not o.passed for o in result.request_outcomes):
            reason_codes.append("contact_cap")
        reason_codes.extend(request_codes)
        ranked = list(arbitration.ranked)
        reservation_json: dict[str, Any] | None = None
        if ranked:
            try:
                reservation = await asyncio.to_thread(
                    self.contacts.reserve, request.customer_id, request.channel, at, decision_id=decision_id
                )
            except SQLAlchemyError as exc:
                raise _store_down(exc) from None
            reservation_json = {
                "granted": reservation.granted,
                "blocked_by": list(reservation.blocked_by),
                "counts": dict(reservation.counts),
            }
            if not reservation.granted:
                ranked = []
                reason_codes = ["contact_cap", *reservation.blocked_by]

        bundles = []
        for offer in ranked:
            candidate = by_id[offer.product_id]
            product = catalogue[offer.product_id]
            content, right = bundle_parts[offer.product_id]
            verdict = allowed[offer.product_id]
            explanation = explain(candidate.reason_codes, candidate.sources, personalised=personalised)
            bundles.append(
                {
                    "product": {
                        "id": product.product_id,
                        "name": product.name,
                        "type": product.product_type,
                        "risk_rating": product.risk_rating,
                    },
                    "content": None
                    if content is None
                    else {
                        "id": content.content_id,
                        "version": content.version,
                        "channel": content.channel,
                        "fields": dict(content.variant),
                    },
                    "right": {"id": right.right_id, "type": right.right_type}
                    if right is not None and verdict.offer_right
                    else None,
                    "score": offer.priority,
                    "reason_codes": list(candidate.reason_codes) or [explanation.code],
                    "explanation": {"zh": explanation.zh, "en": explanation.en},
                }
            )
        for reason in degraded:
            if mode is Mode.FALLBACK:
                DECISION_FALLBACKS.labels(reason=reason).inc()
        model_version = candidate_set.model_version if personalised else None
        response: dict[str, Any] = {
            "decision_id": decision_id,
            "mode": mode.value,
            "experiment": None,
            "model_version": model_version,
            "bundles": bundles,
            "reason_codes": list(dict.fromkeys(reason_codes)),
            "degraded_reasons": degraded,
        }
        candidates_json = [
            {
                **by_id[v.product.product_id].as_json(),
                **v.as_json(),
                "arbitration": arbitration.dropped.get(v.product.product_id),
            }
            for v in result.verdicts
        ]
        record = AuditRecord(
            decision_id=decision_id,
            created_at=at,
            customer_id=request.customer_id,
            channel=request.channel,
            placement=request.placement,
            mode=mode.value,
            model_version=model_version,
            experiment_id=None,
            experiment_arm=None,
            request=request.as_json(),
            features={
                **FEATURES_NOT_READ,
                "facts": None if view is None else view.facts.model_dump(mode="json"),
                "consents": dict(consents),
                "personalised": None if view is None else view.personalised,
                "contact_reservation": reservation_json,
            },
            candidates=candidates_json,
            response={**response, "ranking": [o.as_json() for o in ranked]},
        )
        try:
            await self.audit.write(record)
        except AuditUnavailableError as exc:
            raise AuditStoreUnavailableError(str(exc)) from None
        return response

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
    "CustomerNotFoundError",
    "DecisionInput",
    "DecisionService",
    "ProfileClient",
    "ProfileSource",
    "ProfileUnavailableError",
    "ProfileView",
]
