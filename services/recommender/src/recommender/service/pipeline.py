"""The pure half of a decision: candidates + policy inputs → verdicts → ranking → bundles (no I/O).

:class:`~recommender.service.decisions.DecisionService` feeds it what it read live (hub caches,
profile, Feast, contact history); :mod:`recommender.service.replay` feeds it what the audit record
says was read. Both call the same functions, so a replay that differs from the recorded decision
points at a changed model, rule or code — never at a second implementation.

Everything a replay needs is made JSON here: the customer context (:func:`context_to_json`), the
per-candidate policy inputs (:class:`OfferParts`) and the catalogue snapshot
(:func:`catalogue_to_json`, stored once per distinct snapshot, by hash).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from types import MappingProxyType
from typing import Any

import orjson
from qianmian_core.memo import BoundaryEpochs, IdentityMemo
from qianmian_rules import CustomerFacts, EligibilityRules

from recommender.bounds import WARM_ENTRIES
from recommender.repository.audit import SharedPart
from recommender.service.arbitration import (
    ArbitrationCandidate,
    ArbitrationConfig,
    ArbitrationResult,
    arbitrate,
)
from recommender.service.candidates import Candidate
from recommender.service.explain import explain
from recommender.service.hub_cache import CatalogueProduct, policy_view
from recommender.service.policies import (
    CandidateProduct,
    CandidateVerdict,
    ContactPolicy,
    ContactRecord,
    ContactState,
    CustomerContext,
    DecisionRequest,
    Mode,
    PolicyMemo,
    PolicyResult,
)


@dataclass(frozen=True, slots=True)
class OfferParts:
    """What the hubs said about one candidate at decision time: its best content and right."""

    content_approved: bool
    #: ``None``: no right attached; ``False``: the attached right is not affordable.
    right_affordable: bool | None
    #: ``{"id", "version", "channel", "fields"}`` of the best approved variant, or None.
    content: Mapping[str, Any] | None
    #: ``{"id", "type"}`` of the right, or None.
    right: Mapping[str, str] | None
    #: The content's rendered fields, made only for the bundles served (a decision weighs ~40
    #: candidates and shows 1–10); None where the caller put ``fields`` in ``content`` or has none.
    render: Callable[[], Mapping[str, Any]] | None = None

    def as_json(self, *, with_fields: bool = False) -> dict[str, Any]:
        content = None
        if self.content is not None:
            content = {k: v for k, v in self.content.items() if with_fields or k != "fields"}
        return {
            "content_approved": self.content_approved,
            "right_affordable": self.right_affordable,
            "content": content,
            "right": None if self.right is None else dict(self.right),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> OfferParts:
        return cls(
            content_approved=bool(data["content_approved"]),
            right_affordable=data["right_affordable"],
            content=data["content"],
            right=data["right"],
        )


#: A catalogue product's policy view per (content approved, right affordable): at most six each.
_POLICY_INPUTS: IdentityMemo[CandidateProduct] = IdentityMemo(8192)


def policy_input(product: CatalogueProduct, parts: OfferParts) -> CandidateProduct:
    """The policy engine's view of a catalogue product and its parts (frozen: made once per view)."""
    key = (parts.content_approved, parts.right_affordable)
    view = _POLICY_INPUTS.get((product,), key)
    if view is None:
        view = policy_view(
            product, content_approved=parts.content_approved, right_affordable=parts.right_affordable
        )
        _POLICY_INPUTS.put((product,), key, view)
    return view


#: Verdicts per customer (facts), candidate views and the other inputs of the rules.
_POLICIES = PolicyMemo(WARM_ENTRIES)
#: The candidates' policy views per (candidates, offer parts, catalogue) of a warm customer.
_INPUTS: IdentityMemo[tuple[CandidateProduct, ...]] = IdentityMemo(WARM_ENTRIES)
#: The audit's candidate entries, encoded, per (candidates, verdicts, parts) and arbitration's drops.
_AUDIT_CANDIDATES: IdentityMemo[SharedPart] = IdentityMemo(WARM_ENTRIES)


@dataclass(frozen=True, slots=True)
class PipelineOutcome:
    """Verdicts and ranking of one decision, before the contact slot is taken."""

    policies: PolicyResult
    arbitration: ArbitrationResult
    #: Request-wide reason codes (quiet hours, caps …) when rules failed for every candidate.
    reason_codes: tuple[str, ...]


#: Arbitration's results (see rank), and the campaign windows' epochs per levers object.
_ARBITRATION: IdentityMemo[ArbitrationResult] = IdentityMemo(WARM_ENTRIES)
_CAMPAIGN_EPOCHS = BoundaryEpochs(64)
#: Non-personalised answers are arbitrated without levers, moment weights or the no-repeat rule.
_NEUTRAL_ARBITRATION = ArbitrationConfig()


def campaign_epoch(config: ArbitrationConfig, at: datetime) -> int:
    """How many of the campaigns' window boundaries are at or before ``at``: two moments with the
    same epoch find every campaign running or not alike, so the levers are the same."""
    levers = config.levers
    if not levers.campaigns:
        return 0
    return _CAMPAIGN_EPOCHS.epoch(
        (levers,), at, lambda: (b for c in levers.campaigns for b in (c.starts_at, c.ends_at))
    )


def rank(
    *,
    request: DecisionRequest,
    limit: int,
    context: CustomerContext,
    mode: Mode,
    degraded: bool,
    candidates: Sequence[Candidate],
    parts: Mapping[str, OfferParts],
    catalogue: Mapping[str, CatalogueProduct],
    contact_policy: ContactPolicy,
    arbitration: ArbitrationConfig,
    recently_shown: Mapping[str, datetime] | None = None,
) -> PipelineOutcome:
    """Every policy on every candidate, then arbitration of the allowed ones (see the modules)."""
    inputs = _INPUTS.get((candidates, parts, catalogue))
    if inputs is None:
        inputs = tuple([policy_input(catalogue[c.product_id], parts[c.product_id]) for c in candidates])
        _INPUTS.put((candidates, parts, catalogue), None, inputs)
    result = _POLICIES.evaluate(
        inputs,
        context,
        request,
        contact_policy,
        degraded=degraded,
    )
    personalised = mode is not Mode.NON_PERSONALISED
    config = arbitration if personalised else _NEUTRAL_ARBITRATION
    shown = (context.contact.shown if recently_shown is None else recently_shown) if personalised else None
    # Arbitration reads the allowed candidates (the policy result, the candidates, the catalogue's
    # values), the configuration, the limit, and time only through the campaigns' windows and the
    # no-repeat window: kept per those, as the policy verdicts are.
    since = request.at - config.no_repeat_window
    recent = frozenset(pid for pid, last in shown.items() if last > since) if shown else frozenset()
    objects = (result, candidates, catalogue, config)
    key = (limit, personalised, campaign_epoch(config, request.at), recent)
    ranked = _ARBITRATION.get(objects, key) if isinstance(candidates, tuple) else None
    if ranked is None:
        by_id = _by_id(candidates)
        ranked = arbitrate(
            [
                ArbitrationCandidate(
                    product_id=pid,
                    product_type=by_id[pid].product_type,
                    propensity=by_id[pid].score,
                    value=catalogue[pid].value if personalised else 1.0,
                    moment=by_id[pid].moment if personalised else None,
                )
                for pid in (v.product.product_id for v in result.allowed)
            ],
            limit=limit,
            at=request.at,
            recently_shown=shown,
            config=config,
        )
        if isinstance(candidates, tuple):
            _ARBITRATION.put(objects, key, ranked)
    codes: list[str] = []
    failed = [o for o in result.request_outcomes if not o.passed]
    if any(o.rule == "contact_cap" for o in failed):
        codes.append("contact_cap")
    codes.extend(code for o in failed for code in o.codes)
    return PipelineOutcome(result, ranked, tuple(dict.fromkeys(codes)))


#: A kept policy result's verdicts by product id, and a kept candidate tuple's candidates by id.
_VERDICTS: IdentityMemo[Mapping[str, CandidateVerdict]] = IdentityMemo(WARM_ENTRIES)
_CANDIDATES_BY_ID: IdentityMemo[Mapping[str, Candidate]] = IdentityMemo(WARM_ENTRIES)


def verdicts_by_id(policies: PolicyResult) -> Mapping[str, CandidateVerdict]:
    """The verdicts by product id, once per policy result (the policy memo shares results)."""
    kept = _VERDICTS.get((policies,))
    if kept is None:
        kept = MappingProxyType({v.product.product_id: v for v in policies.verdicts})
        _VERDICTS.put((policies,), None, kept)
    return kept


def _by_id(candidates: Sequence[Candidate]) -> Mapping[str, Candidate]:
    if not isinstance(candidates, tuple):  # only a tuple is known not to change
        return {c.product_id: c for c in candidates}
    kept = _CANDIDATES_BY_ID.get((candidates,))
    if kept is None:
        kept = MappingProxyType({c.product_id: c for c in candidates})
        _CANDIDATES_BY_ID.put((candidates,), None, kept)
    return kept


def bundles(
    outcome: PipelineOutcome,
    candidates: Sequence[Candidate],
    parts: Mapping[str, OfferParts],
    catalogue: Mapping[str, CatalogueProduct],
    *,
    personalised: bool,
) -> list[dict[str, Any]]:
    """The response's bundles, best first."""
    by_id = _by_id(candidates)
    verdicts = verdicts_by_id(outcome.policies)
    out = []
    for offer in outcome.arbitration.ranked:
        candidate = by_id[offer.product_id]
        product = catalogue[offer.product_id]
        part = parts[offer.product_id]
        explanation = explain(candidate.reason_codes, candidate.sources, personalised=personalised)
        right = part.right if part.right is not None and verdicts[offer.product_id].offer_right else None
        out.append(
            {
                "product": {
                    "id": product.product_id,
                    "name": product.name,
                    "type": product.product_type,
                    "risk_rating": product.risk_rating,
                },
                "content": _content(part),
                "right": None if right is None else {"id": right["id"], "type": right["type"]},
                "score": offer.priority,
                "reason_codes": list(candidate.reason_codes) or [explanation.code],
                "explanation": {"zh": explanation.zh, "en": explanation.en},
            }
        )
    return out


def _content(part: OfferParts) -> dict[str, Any] | None:
    if part.content is None:
        return None
    content = dict(part.content)
    if part.render is not None:
        content["fields"] = dict(part.render())
    return content


def audit_candidates(
    candidates: Sequence[Candidate], outcome: PipelineOutcome, parts: Mapping[str, OfferParts]
) -> SharedPart:
    """The audit record's ``candidates``, encoded: each candidate's score and sources, its verdict as
    stored (failed rules only: :meth:`~recommender.service.policies.CandidateVerdict.stored_json`),
    its policy inputs and why arbitration dropped it. Read back, the repository lists every rule.

    Kept per (candidates, verdicts, parts) and drops, as the bytes: a warm customer's decisions
    share them (a third of the memory of the entries as objects, and no encoding per decision)."""
    dropped = outcome.arbitration.dropped
    objects = (candidates, outcome.policies, parts)
    key = tuple(dropped.items())
    encoded = _AUDIT_CANDIDATES.get(objects, key)
    if encoded is None:
        verdicts = verdicts_by_id(outcome.policies)
        entries = []
        for c in candidates:
            # The candidate, its verdict as stored (CandidateVerdict.stored_json) and its inputs.
            verdict = verdicts[c.product_id]
            entries.append(
                {
                    "product_id": c.product_id,
                    "score": c.score,
                    "sources": c.sources,
                    "reason_codes": c.reason_codes,
                    "allowed": verdict.allowed,
                    "failed": verdict.failed_json(),
                    "inputs": parts[c.product_id].as_json(),
                    "arbitration": dropped.get(c.product_id),
                }
            )
        encoded = SharedPart(orjson.dumps(entries))
        _AUDIT_CANDIDATES.put(objects, key, encoded)
    return encoded


@dataclass(frozen=True, slots=True)
class Offers:
    """A decision's bundles (the response's, shared: never modify them), and the audit record's
    bundles and ranking as shared parts (checked for identifiers and encoded once)."""

    bundles: list[dict[str, Any]]
    bundles_part: SharedPart
    ranking_part: SharedPart


#: Offers per (arbitration, verdicts, candidates, parts, catalogue) and mode: a warm customer's
#: decisions show the same offers, built, checked and encoded once.
_OFFERS: IdentityMemo[Offers] = IdentityMemo(WARM_ENTRIES)


def offers(
    outcome: PipelineOutcome,
    candidates: Sequence[Candidate],
    parts: Mapping[str, OfferParts],
    catalogue: Mapping[str, CatalogueProduct],
    *,
    personalised: bool,
) -> Offers:
    """:func:`bundles` and the ranking, kept per inputs (see :class:`Offers`)."""
    objects = (outcome.arbitration, outcome.policies, candidates, parts, catalogue)
    kept = _OFFERS.get(objects, personalised)
    if kept is None:
        offered = bundles(outcome, candidates, parts, catalogue, personalised=personalised)
        kept = Offers(
            bundles=offered,
            bundles_part=SharedPart.checked(offered),
            ranking_part=SharedPart.checked([o.as_json() for o in outcome.arbitration.ranked]),
        )
        _OFFERS.put(objects, personalised, kept)
    return kept


def without_offers(outcome: PipelineOutcome) -> PipelineOutcome:
    """The outcome with its ranking emptied (the contact slot was refused)."""
    return replace(outcome, arbitration=ArbitrationResult(ranked=(), dropped=outcome.arbitration.dropped))


# -- what the audit record keeps for a replay ------------------------------------------------------


#: A customer's facts as JSON, per facts object: a cached profile view serves many decisions.
_FACTS_JSON: IdentityMemo[dict[str, Any]] = IdentityMemo(65_536)


def facts_json(facts: CustomerFacts) -> dict[str, Any]:
    """``facts.model_dump(mode="json")``, made once per facts object; shared by the records that
    hold it, so never modify it."""
    dumped = _FACTS_JSON.get((facts,))
    if dumped is None:
        dumped = facts.model_dump(mode="json")
        _FACTS_JSON.put((facts,), None, dumped)
    return dumped


def context_to_json(context: CustomerContext, contact: ContactState | None = None) -> dict[str, Any]:
    """The policy-relevant customer context (facts, consents, opt-out, contact history, cool-downs,
    products shown: the no-repeat rule's input), for the audit record; ``contact``: the contact
    state to record instead of ``context.contact`` (a kept run's decision records its own).

    Its times are left as (time-zone aware) datetimes: orjson writes them as ``isoformat()`` would,
    byte for byte, without a Python call per time (a customer's contact history is read into every
    decision); :func:`context_from_json` reads them back."""
    state = context.contact if contact is None else contact
    return {
        "facts": facts_json(context.facts),
        "consents": dict(context.consents),
        "personalised_opt_out": context.personalised_opt_out,
        "contacts": [[c.channel, c.at] for c in state.contacts],
        "cooldowns": dict(state.cooldowns),
        "shown": dict(sorted(state.shown.items())),
    }


def context_from_json(data: Mapping[str, Any]) -> CustomerContext:
    return CustomerContext(
        facts=CustomerFacts.model_validate(data["facts"]),
        consents=MappingProxyType(dict(data["consents"])),
        personalised_opt_out=bool(data["personalised_opt_out"]),
        contact=ContactState(
            contacts=tuple(ContactRecord(ch, datetime.fromisoformat(at)) for ch, at in data["contacts"]),
            cooldowns={pid: datetime.fromisoformat(u) for pid, u in data["cooldowns"].items()},
            shown={pid: datetime.fromisoformat(t) for pid, t in data.get("shown", {}).items()},
        ),
    )


def _dt(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _parse_dt(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def catalogue_to_json(catalogue: Mapping[str, CatalogueProduct]) -> list[dict[str, Any]]:
    """Every field of every product, sorted by id (the stored snapshot)."""
    return [
        {
            "product_id": p.product_id,
            "name": p.name,
            "name_en": p.name_en,
            "product_type": p.product_type,
            "risk_rating": p.risk_rating,
            "eligibility": p.eligibility.model_dump(mode="json"),
            "channels": sorted(p.channels),
            "sale_start": _dt(p.sale_start),
            "sale_end": _dt(p.sale_end),
            "quota": p.quota,
            "sold": p.sold,
            "margin_rate": p.margin_rate,
            "value": p.value,
            "attributes": dict(p.attributes),
        }
        for p in sorted(catalogue.values(), key=lambda p: p.product_id)
    ]


def catalogue_from_json(rows: Sequence[Mapping[str, Any]]) -> dict[str, CatalogueProduct]:
    return {
        row["product_id"]: CatalogueProduct(
            product_id=row["product_id"],
            name=row["name"],
            name_en=row["name_en"],
            product_type=row["product_type"],
            risk_rating=row["risk_rating"],
            eligibility=EligibilityRules.model_validate(row["eligibility"]),
            channels=frozenset(row["channels"]),
            sale_start=_parse_dt(row["sale_start"]),
            sale_end=_parse_dt(row["sale_end"]),
            quota=row["quota"],
            sold=row["sold"],
            margin_rate=row["margin_rate"],
            value=row["value"],
            attributes=MappingProxyType(dict(row["attributes"])),
        )
        for row in rows
    }


def snapshot_hash(rows: Sequence[Mapping[str, Any]]) -> str:
    """Content hash of a catalogue snapshot (stable key ordering)."""
    return hashlib.sha256(orjson.dumps(list(rows), option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]


__all__ = [
    "OfferParts",
    "PipelineOutcome",
    "audit_candidates",
    "bundles",
    "catalogue_from_json",
    "catalogue_to_json",
    "context_from_json",
    "context_to_json",
    "offers",
    "policy_input",
    "rank",
    "snapshot_hash",
    "without_offers",
]
