"""Replay: re-run a recorded decision with its recorded inputs and model version, report differences.

A decision's audit record holds what the pure pipeline (:mod:`recommender.service.pipeline`) used:
the customer context (facts, consents, opt-out, contact history, cool-downs), the candidate signals
(segments, feature tokens, moment), the catalogue snapshot (by hash), each candidate's content and
right as the hubs said, the contact policy, the arbitration configuration, the served model version
and whether the contact slot was granted. The replay

1. loads the recorded model version from the registry (whatever is approved now) and the snapshot,
2. regenerates the candidates and compares them (ids, scores, sources, reason codes),
3. re-runs every policy and arbitration on the recorded inputs and compares the verdicts, the
   request-wide reason codes and the bundles (content by id and version: content-hub archives every
   version, so the text is not copied into every record).

Any difference is reported field by field; an identical replay reports none. Outbound-list rows
were scored in one batched model call per page, which can differ from one customer's scoring in the
last float32 bits: their numbers are compared within a relative 1e-5, everything else exactly.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from qianmian_core.db import Database
from sqlalchemy import select

from recommender.ml.ranker.serving import RankerInputs, ServingRanker, load_serving_ranker
from recommender.ml.registry import ModelRegistry, RegistryError
from recommender.models import Decision
from recommender.repository.audit import KNOWN_SCHEMA_VERSIONS, AuditRecord, AuditRepository
from recommender.repository.snapshots import SnapshotRepository
from recommender.service.arbitration import ArbitrationConfig
from recommender.service.candidates import CandidateGenerator, CustomerSignals, popularity_for
from recommender.service.holder import ModelHolder
from recommender.service.pipeline import (
    OfferParts,
    bundles,
    catalogue_from_json,
    context_from_json,
    rank,
    without_offers,
)
from recommender.service.policies import ContactPolicy, DecisionRequest, Mode
from recommender.service.ranker import product_values_from_json, rescore


@dataclass(frozen=True, slots=True)
class ReplayResult:
    decision_id: str
    differences: tuple[str, ...] = ()

    @property
    def identical(self) -> bool:
        return not self.differences


@dataclass(slots=True)
class ReplaySummary:
    replayed: int = 0
    identical: int = 0
    results: list[ReplayResult] = field(default_factory=list)

    @property
    def differing(self) -> list[ReplayResult]:
        return [r for r in self.results if not r.identical]


def _without_fields(items: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for item in items:
        bundle = dict(item)
        if bundle.get("content") is not None:
            bundle["content"] = {k: v for k, v in bundle["content"].items() if k != "fields"}
        out.append(bundle)
    return out


#: Outbound-list rows were scored in one batched model call per page; a replay scores one customer,
#: which can differ in the last float32 bits. Their numbers are compared within this relative bound.
BATCH_SCORED_REL_TOL: Final[float] = 1e-5
BATCH_SCORED_PLACEMENTS: Final[frozenset[str]] = frozenset({"outbound_list"})


def _close(a: Any, b: Any, rel_tol: float) -> bool:
    """Equal, except that floats may differ by ``rel_tol`` (recursively through lists and dicts)."""
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=rel_tol, abs_tol=1e-12)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k], rel_tol) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_close(x, y, rel_tol) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _diff(what: str, recorded: Any, replayed: Any, into: list[str], rel_tol: float = 0.0) -> None:
    same = recorded == replayed if rel_tol == 0.0 else _close(recorded, replayed, rel_tol)
    if not same:
        into.append(f"{what}: recorded {recorded!r} != replayed {replayed!r}")


class ReplayService:
    """Replays recorded decisions (one database, one model registry)."""

    def __init__(self, database: Database, registry: ModelRegistry) -> None:
        self.database = database
        self.registry = registry
        self._holders: dict[str, ModelHolder] = {}
        self._snapshots: dict[str, list[dict[str, Any]]] = {}
        self._rankers: dict[str, ServingRanker] = {}

    def _ranker_scores(self, entry: Mapping[str, Any]) -> dict[str, float] | str:
        """The recorded ranker's scores recomputed from the recorded inputs, or why they cannot be."""
        version = str(entry["version"])
        ranker = self._rankers.get(version)
        if ranker is None:
            try:
                ranker = load_serving_ranker(self.registry, version)
            except (RegistryError, OSError) as exc:
                return f"ranker {version} cannot be loaded: {exc}"
            self._rankers[version] = ranker
        rows = self._snapshot(str(entry["products"]))
        if rows is None:
            return f"ranker product values {entry['products']} missing"
        return ranker.score(RankerInputs.from_json(entry["inputs"]), product_values_from_json(rows))

    def _holder(self, version: str) -> ModelHolder:
        holder = self._holders.get(version)
        if holder is None:
            holder = ModelHolder(self.registry, self.registry.manifest(version).product_ids)
            holder.reload(version)
            self._holders[version] = holder
        return holder

    def _snapshot(self, key: str) -> list[dict[str, Any]] | None:
        if key not in self._snapshots:
            with self.database.session() as session:
                rows = SnapshotRepository(session).get(key)
            if rows is None:
                return None
            self._snapshots[key] = rows
        return self._snapshots[key]

    def replay(self, record: AuditRecord) -> ReplayResult:
        """Re-run one recorded decision; the differences, empty when it is reproduced exactly."""
        diffs: list[str] = []
        tol = BATCH_SCORED_REL_TOL if record.placement in BATCH_SCORED_PLACEMENTS else 0.0
        if record.schema_version not in KNOWN_SCHEMA_VERSIONS:
            return ReplayResult(record.decision_id, (f"unknown audit schema {record.schema_version}",))
        inputs = record.features
        if "catalogue_snapshot" not in inputs:
            return ReplayResult(record.decision_id, ("record predates replayable inputs",))
        rows = self._snapshot(inputs["catalogue_snapshot"])
        if rows is None:
            return ReplayResult(
                record.decision_id, (f"catalogue snapshot {inputs['catalogue_snapshot']} missing",)
            )
        catalogue = catalogue_from_json(rows)
        version = inputs["served_model_version"]
        holder: ModelHolder | None = None
        if version is not None:
            try:
                holder = self._holder(version)
            except (RegistryError, OSError) as exc:
                return ReplayResult(record.decision_id, (f"model {version} cannot be loaded: {exc}",))
        mode = Mode(record.mode)
        generation_mode = Mode.PERSONALISED if inputs["cf_skipped"] == "model_error" else mode
        signals = inputs["signals"]
        generator = CandidateGenerator(holder, popularity_for(holder.current if holder else None, catalogue))
        candidate_set = generator.generate(
            CustomerSignals(
                customer_id=record.customer_id,
                segments=frozenset(signals["segments"]),
                tokens=tuple(signals["tokens"]),
                moment=signals["moment"],
            ),
            catalogue,
            mode=generation_mode,
            at=record.created_at,
        )
        ranker_entry = inputs.get("ranker")
        ranker_code: str | None = None
        if ranker_entry is not None and ranker_entry["skipped"] is not None:
            ranker_code = str(ranker_entry["skipped"])
        elif ranker_entry is not None:
            scores = self._ranker_scores(ranker_entry)
            if isinstance(scores, str):
                return ReplayResult(record.decision_id, (scores,))
            chosen = {c.product_id: scores.get(c.product_id, 0.0) for c in candidate_set.candidates}
            _diff("ranker.scores", ranker_entry["scores"], dict(sorted(chosen.items())), diffs, tol)
            candidate_set = rescore(candidate_set, chosen)
        recorded_candidates = record.candidates
        assert isinstance(recorded_candidates, list), "records are read back with their parts in place"
        _diff(
            "candidates",
            [(c["product_id"], c["score"], c["sources"], c["reason_codes"]) for c in recorded_candidates],
            [
                (c.product_id, c.score, list(c.sources), list(c.reason_codes))
                for c in candidate_set.candidates
            ],
            diffs,
            tol,
        )
        if diffs:  # the policy inputs are keyed by the recorded candidates: stop here
            return ReplayResult(record.decision_id, tuple(diffs))
        parts = {c["product_id"]: OfferParts.from_json(c["inputs"]) for c in recorded_candidates}
        degraded = record.response.get("degraded_reasons", [])
        request = record.request
        outcome = rank(
            request=DecisionRequest(channel=record.channel, placement=record.placement, at=record.created_at),
            limit=int(request["limit"]),
            context=context_from_json(inputs["context"]),
            mode=mode,
            degraded=bool(degraded),
            candidates=candidate_set.candidates,
            parts=parts,
            catalogue=catalogue,
            contact_policy=ContactPolicy.model_validate(inputs["contact_policy"]),
            arbitration=ArbitrationConfig.model_validate(inputs["arbitration_config"]),
        )
        for candidate, verdict in zip(recorded_candidates, outcome.policies.verdicts, strict=True):
            replayed = verdict.as_json()
            for key, value in replayed.items():
                _diff(f"{candidate['product_id']}.{key}", candidate.get(key), value, diffs)
        reservation = inputs.get("contact_reservation")
        personalised = mode is not Mode.NON_PERSONALISED
        if reservation is not None and not reservation["granted"]:
            outcome = without_offers(outcome)
            codes = list(dict.fromkeys(["contact_cap", *reservation["blocked_by"]]))
        else:
            codes = list(outcome.reason_codes)
        if ranker_code is not None:
            codes.append(ranker_code)
        _diff("reason_codes", record.response["reason_codes"], codes, diffs)
        _diff(
            "ranking",
            record.response.get("ranking"),
            [o.as_json() for o in outcome.arbitration.ranked],
            diffs,
            tol,
        )
        replayed_bundles = bundles(
            outcome, candidate_set.candidates, parts, catalogue, personalised=personalised
        )
        _diff(
            "bundles",
            _without_fields(record.response["bundles"]),
            _without_fields(replayed_bundles),
            diffs,
            tol,
        )
        _diff(
            "model_version",
            record.model_version,
            candidate_set.model_version if personalised else None,
            diffs,
        )
        return ReplayResult(record.decision_id, tuple(diffs))

    def records(
        self, decision_ids: Sequence[str] = (), *, last: int | None = None, since: datetime | None = None
    ) -> list[AuditRecord]:
        """The named decisions, or the ``last`` ones (newest first), optionally since a time."""
        with self.database.session() as session:
            repository = AuditRepository(session)
            if decision_ids:
                found = [repository.get(d) for d in decision_ids]
                return [r for r in found if r is not None]
            stmt = select(Decision.decision_id).order_by(Decision.created_at.desc())
            if since is not None:
                stmt = stmt.where(Decision.created_at >= since)
            if last is not None:
                stmt = stmt.limit(last)
            ids = list(session.scalars(stmt))
            return [r for r in (repository.get(d) for d in ids) if r is not None]

    def replay_many(self, records: Iterable[AuditRecord]) -> ReplaySummary:
        summary = ReplaySummary()
        for record in records:
            result = self.replay(record)
            summary.replayed += 1
            summary.identical += result.identical
            summary.results.append(result)
        return summary


__all__ = ["ReplayResult", "ReplayService", "ReplaySummary"]
