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
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any, Final

from prometheus_client import Counter
from qianmian_core.db import Database
from qianmian_core.errors import DependencyUnavailableError, NotFoundError
from qianmian_core.logging import get_logger
from qianmian_rules import MOMENT_TYPES, CustomerFacts
from qianmian_rules.placeholders import customer_values, fill, product_values
from sqlalchemy.exc import SQLAlchemyError

from recommender.ml.data import serving_feature_tokens
from recommender.repository.audit import AuditRecord, AuditRepository
from recommender.service.arbitration import ArbitrationConfig
from recommender.service.audit import AuditUnavailableError, GroupCommitAuditWriter
from recommender.service.candidates import Candidate, CandidateGenerator, CustomerSignals, popularity_for
from recommender.service.contacts import ContactService
from recommender.service.context import CustomerContextSource, FeatureSnapshot
from recommender.service.holder import ModelHolder
from recommender.service.hub_cache import CatalogueProduct, ContentEntry, HubCache, RightEntry
from recommender.service.metrics import record_policy_blocks
from recommender.service.pipeline import OfferParts, bundles, context_to_json, rank, without_offers
from recommender.service.policies import (
    CHANNELS,
    ContactPolicy,
    CustomerContext,
    DecisionRequest,
    Mode,
)
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
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.database = database
        self.audit = audit
        self.hub_cache = hub_cache
        self.context = context
        self.holder = holder
        self.contact_policy = contact_policy or ContactPolicy()
        self.contacts = ContactService(database, self.contact_policy)
        self.arbitration = arbitration or ArbitrationConfig()
        self.moment_window = moment_window
        self.now = now
        self.snapshots = SnapshotStore(database)
        self._generator: tuple[object, object, CandidateGenerator] | None = None

    def _candidate_generator(self, catalogue: Mapping[str, CatalogueProduct]) -> CandidateGenerator:
        """One generator per (served model, catalogue snapshot): popularity is built once, not per call."""
        loaded = self.holder.current if self.holder is not None else None
        cached = self._generator
        if cached is not None and cached[0] is loaded and cached[1] is catalogue:
            return cached[2]
        generator = CandidateGenerator(self.holder, popularity_for(loaded, catalogue))
        self._generator = (loaded, catalogue, generator)
        return generator

    async def decide(self, request: DecisionInput) -> dict[str, Any]:
        """One decision, durable in the audit log before it is returned."""
        if not self.audit.running:
            raise AuditStoreUnavailableError("the audit writer is not running")
        if request.channel not in CHANNELS:  # the API validates; this guards direct callers
            raise ValueError(f"unknown channel {request.channel!r}")
        at = self.now()
        decision_id = f"dec_{uuid.uuid4().hex}"

        seen = await self.context.customer(request.customer_id, at)
        view = seen.profile
        degraded: list[str] = list(seen.degraded)
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
        moment, moment_source = self._moment(request, seen.features, at)
        signals = CustomerSignals(
            customer_id=request.customer_id,
            segments=facts.segments,
            tokens=tuple(serving_feature_tokens(profile_values(seen.features))),
            moment=moment,
        )
        candidate_set = self._candidate_generator(catalogue).generate(signals, catalogue, mode=mode, at=at)
        if candidate_set.cf_skipped == "model_error" and mode is Mode.PERSONALISED:
            degraded.append("model_error")
            mode = Mode.FALLBACK

        personalised = mode is not Mode.NON_PERSONALISED
        parts = self._offer_parts(
            candidate_set.candidates, catalogue, request.channel, at, facts, personalised
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
            arbitration=self.arbitration,
        )
        record_policy_blocks(outcome.policies)
        reason_codes = list(outcome.reason_codes)
        ranked_outcome = outcome
        reservation_json: dict[str, Any] | None = None
        if outcome.arbitration.ranked:
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
                ranked_outcome = without_offers(outcome)
                reason_codes = ["contact_cap", *reservation.blocked_by]
        offered = bundles(
            ranked_outcome, candidate_set.candidates, parts, catalogue, personalised=personalised
        )
        if mode is Mode.FALLBACK:
            for reason in degraded:
                DECISION_FALLBACKS.labels(reason=reason).inc()
        model_version = candidate_set.model_version if personalised else None
        response: dict[str, Any] = {
            "decision_id": decision_id,
            "mode": mode.value,
            "experiment": None,
            "model_version": model_version,
            "bundles": offered,
            "reason_codes": list(dict.fromkeys(reason_codes)),
            "degraded_reasons": degraded,
        }
        snapshot = await self.snapshots.key_of(catalogue)
        verdicts = {v.product.product_id: v for v in outcome.policies.verdicts}
        candidates_json = [
            {
                **c.as_json(),
                **verdicts[c.product_id].as_json(),
                "inputs": parts[c.product_id].as_json(),
                "arbitration": outcome.arbitration.dropped.get(c.product_id),
            }
            for c in candidate_set.candidates
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
                "feast": seen.features.as_json(),
                "sources": dict(seen.sources),
                "context": context_to_json(context),
                "personalised": None if view is None else view.personalised,
                "signals": {
                    "segments": sorted(signals.segments),
                    "tokens": list(signals.tokens),
                    "moment": moment,
                    "moment_source": moment_source,
                },
                "catalogue_snapshot": snapshot,
                "arbitration_config": self.arbitration.model_dump(mode="json"),
                "contact_policy": self.contact_policy.model_dump(mode="json"),
                "served_model_version": candidate_set.model_version,
                "cf_skipped": candidate_set.cf_skipped,
                "contact_reservation": reservation_json,
            },
            candidates=candidates_json,
            response={**response, "ranking": [o.as_json() for o in ranked_outcome.arbitration.ranked]},
        )
        try:
            await self.audit.write(record)
        except AuditUnavailableError as exc:
            raise AuditStoreUnavailableError(str(exc)) from None
        return response

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
        candidates: Sequence[Candidate],
        catalogue: Mapping[str, CatalogueProduct],
        channel: str,
        at: datetime,
        facts: CustomerFacts,
        personalised: bool,
    ) -> dict[str, OfferParts]:
        """Each candidate's best approved content for the channel and its right, from the hub caches."""
        segments = facts.segments if personalised else None
        lifecycle = facts.lifecycle_stage if personalised else None
        rights = {
            r.right_id: r
            for r in self.hub_cache.affordable_rights(at=at, segments=segments, lifecycle_stage=lifecycle)
        }
        parts: dict[str, OfferParts] = {}
        for candidate in candidates:
            contents = self.hub_cache.content_for(candidate.product_id, channel, at=at, segments=segments)
            content = contents[0] if contents else None
            right, affordable = _pick_right(content, candidate, rights)
            parts[candidate.product_id] = OfferParts(
                content_approved=bool(contents),
                right_affordable=affordable,
                content=None
                if content is None
                else {
                    "id": content.content_id,
                    "version": content.version,
                    "channel": content.channel,
                    "fields": render_variant(content, catalogue[candidate.product_id], segments, lifecycle),
                },
                right=None if right is None else {"id": right.right_id, "type": right.right_type},
            )
        return parts

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
