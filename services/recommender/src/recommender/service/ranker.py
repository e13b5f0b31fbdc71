"""The second stage of a personalised decision: the LightGBM ranker's P(add) as each candidate's score.

Candidates come from CF, the moment rules and segment popularity (``candidates.py``) with base scores
that are not probabilities (CF's are min-max scaled over its top-k). When a ranker is approved in
the registry and its feature store is configured (``RECOMMENDER_RANKER_STORE``), each candidate's
score becomes the ranker's probability that the customer adds the product next month, so
arbitration's ``propensity × moment weight × value × levers`` multiplies a real probability by
a value. Products the customer held at the ranker's snapshot get 0 (the ranker has no row for them).

Inputs, read once per customer and cached for ``cache_ttl_s``: the ranker's customer views from its
Feast online store (one ``get_online_features`` call), checked for freshness from their event
timestamps, and the product view (all products, refreshed on the same TTL). The product values are
stored once per distinct content in the snapshot table (as catalogue snapshots are) and the audit
record names them by hash; the customer's values go into the audit record itself, with the ranker
version, so that a replay recomputes the same scores.

Fallback, with a reason code in the response's ``reason_codes``, the audit record and
``qianmian_ranker_fallbacks_total``: ``ranker_unavailable`` (no approved ranker could be loaded),
``ranker_features_missing`` (the store has no row for the customer), ``ranker_features_stale`` (the
newest row is older than its view's TTL) and ``ranker_error`` (the read or the scoring failed). The
candidates then keep their base scores: the decision is still personalised, still audited, and every
policy applies as always.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, Protocol

from prometheus_client import Counter
from qianmian_core.logging import get_logger
from qianmian_core.memo import IdentityMemo, evict_oldest
from qianmian_features.freshness import FeatureValue, view_of

from recommender.bounds import WARM_ENTRIES
from recommender.ml.ranker.serving import (
    RankerInputs,
    ServingRanker,
    load_serving_ranker,
    newest_ranker_version,
    plain_value,
)
from recommender.ml.registry import ModelRegistry
from recommender.service.candidates import Candidate, CandidateSet
from recommender.service.pipeline import snapshot_hash

log = get_logger(__name__)

RANKER_SOURCE: Final = "ranker:lightgbm"
RANKER_REASON: Final = "ranker_next_product"
#: The view whose row says whether the store knows the customer at all.
_HOLDINGS_VIEW: Final = "ranker_holdings"
#: Customer entries kept (about 3 KB each with their scores).
CACHE_MAX_CUSTOMERS: Final = 50_000
#: Rescored candidate sets kept (~12 KB each with the audit entry: ~240 MB at the bound).
APPLIED_MAX: Final = WARM_ENTRIES

RANKER_FALLBACKS = Counter(
    "qianmian_ranker_fallbacks_total",
    "Personalised decisions ranked by the candidates' base scores because the ranker could not score",
    ["reason"],
)


class RankerFeatureStore(Protocol):
    """Online values of the ranker's views (``qianmian_features`` shape)."""

    def customer(self, customer_id: str, refs: Sequence[str]) -> dict[str, FeatureValue]: ...

    def products(
        self, product_ids: Sequence[str], refs: Sequence[str]
    ) -> dict[str, dict[str, FeatureValue]]: ...

    def ttl_by_view(self) -> Mapping[str, timedelta]: ...


class FeastRankerStore:
    """The ranker's Feast repo (``recommender train-ranker --workdir DIR`` leaves it in ``DIR/repo``).

    ``sdk=False`` (the default) reads the online store's rows directly, one
    :class:`qianmian_features.online.OnlineReader` per set of references; ``sdk=True`` calls the SDK's
    ``get_online_features`` every time.
    """

    def __init__(self, repo: Path, *, sdk: bool = False) -> None:
        from recommender.ml.ranker.features import ranker_store

        self.store = ranker_store(repo)
        self.sdk = sdk
        self._readers: dict[tuple[str, tuple[str, ...]], Any] = {}

    def _read(
        self, join_key: str, ids: Sequence[str], refs: Sequence[str]
    ) -> dict[str, dict[str, FeatureValue]]:
        from qianmian_features.online import OnlineReader
        from qianmian_features.store import online_features, online_product_features

        if self.sdk:
            read = online_features if join_key == "customer_id" else online_product_features
            return read(self.store, list(ids), list(refs))
        key = (join_key, tuple(refs))
        reader = self._readers.get(key)
        if reader is None:
            if len(self._readers) >= 16:  # the ranker asks for a few fixed sets
                self._readers.clear()
            reader = self._readers[key] = OnlineReader(self.store, join_key, key[1])
        result: dict[str, dict[str, FeatureValue]] = reader.read(ids)
        return result

    def customer(self, customer_id: str, refs: Sequence[str]) -> dict[str, FeatureValue]:
        return self._read("customer_id", [customer_id], refs)[customer_id]

    def products(self, product_ids: Sequence[str], refs: Sequence[str]) -> dict[str, dict[str, FeatureValue]]:
        return self._read("product_id", product_ids, refs)

    def ttl_by_view(self) -> Mapping[str, timedelta]:
        from qianmian_features.store import ttl_by_view

        return ttl_by_view(self.store)


@dataclass(frozen=True, slots=True)
class RankerRead:
    """What the ranker stage read for one customer: inputs and product values, or why not."""

    version: str | None
    inputs: RankerInputs | None = None
    products_key: str | None = None
    skipped: str | None = None
    #: ``inputs.as_json()``, made once per read (a cached read serves many decisions).
    inputs_json: Mapping[str, Any] | None = None

    def as_json(self, scores: Mapping[str, float] | None = None) -> dict[str, Any]:
        inputs = self.inputs_json
        if inputs is None and self.inputs is not None:
            inputs = self.inputs.as_json()
        return {
            "version": self.version,
            "skipped": self.skipped,
            "inputs": inputs,
            "products": self.products_key,
            "scores": None if scores is None else dict(sorted(scores.items())),
        }


def product_values_to_json(values: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The product view's values as snapshot rows (sorted, JSON-safe)."""
    return [
        {"product_id": pid, "values": {ref: plain_value(v) for ref, v in sorted(values[pid].items())}}
        for pid in sorted(values)
    ]


def product_values_from_json(rows: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    return {str(row["product_id"]): dict(row["values"]) for row in rows}


def rescore(candidates: CandidateSet, scores: Mapping[str, float]) -> CandidateSet:
    """Every candidate scored by the ranker (0 where it has no row: held at its snapshot), best first."""
    rescored = [
        Candidate(
            c.product_id,
            c.product_type,
            float(scores.get(c.product_id, 0.0)),
            (*c.sources, RANKER_SOURCE),
            (*c.reason_codes, RANKER_REASON),
            c.moment,
            c.right_type,
        )
        for c in candidates.candidates
    ]
    rescored.sort(key=lambda c: (-c.score, c.product_id))
    return CandidateSet(tuple(rescored), candidates.model_version, candidates.cf_skipped)


class RankerStage:
    """Loads the newest approved ranker, reads its features, scores customers (with caches)."""

    def __init__(
        self,
        registry: ModelRegistry,
        store: RankerFeatureStore,
        catalogue: Sequence[str],
        *,
        save_products: Callable[[str, list[dict[str, Any]]], None],
        cache_ttl_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.registry = registry
        self.store = store
        self.catalogue = list(catalogue)
        self.save_products = save_products
        self.cache_ttl_s = cache_ttl_s
        self.clock = clock
        self.current: ServingRanker | None = None
        self._ttl: Mapping[str, timedelta] = {}
        self._products: tuple[float, str] | None = None  # (read at, key) of the newest product read
        self._product_sets: dict[str, dict[str, dict[str, Any]]] = {}
        self._stored: set[str] = set()
        self._reads: dict[str, tuple[float, RankerRead]] = {}
        #: (ranker version, customer, snapshot, product values) -> scores
        self._scores: dict[tuple[str, str, str, str], dict[str, float]] = {}
        #: What ``apply`` answered per (candidate set, read): a customer's candidates and read are
        #: kept objects, so their rescoring is made once too.
        self._applied: IdentityMemo[tuple[CandidateSet, dict[str, Any], str | None]] = IdentityMemo(
            APPLIED_MAX
        )

    def reload(self) -> str | None:
        """Load the newest approved ranker (kept as it is when there is none or it fails to load)."""
        try:
            version = newest_ranker_version(self.registry)
            if version is None or (self.current is not None and self.current.version == version):
                return None if self.current is None else self.current.version
            ranker = load_serving_ranker(self.registry, version, catalogue=self.catalogue)
            self._ttl = self.store.ttl_by_view()
        except Exception as exc:
            log.error("ranker_load_failed", error_type=type(exc).__name__, error=str(exc)[:300])
            return None if self.current is None else self.current.version
        self.current = ranker
        self._reads.clear()
        self._applied.clear()
        self._products = None
        self._product_sets.clear()
        log.info("ranker_loaded", version=version)
        return version

    # -- reading (blocking: call from a thread) -----------------------------------------------------

    def _product_values(self, ranker: ServingRanker) -> tuple[str, dict[str, dict[str, Any]]]:
        held = self._products
        now = self.clock()
        if held is not None and now - held[0] < self.cache_ttl_s:
            return held[1], self._product_sets[held[1]]
        raw = self.store.products(ranker.products, ranker.product_refs)
        values = {pid: {ref: fv.value for ref, fv in raw.get(pid, {}).items()} for pid in ranker.products}
        rows = product_values_to_json(values)
        key = snapshot_hash(rows)
        if key not in self._stored:
            self.save_products(key, rows)  # durable before any decision names it
            self._stored.add(key)
        if key not in self._product_sets:
            while len(self._product_sets) >= 4:  # reads cached up to a TTL ago may still name older ones
                evict_oldest(self._product_sets)
            self._product_sets[key] = values
        self._products = (now, key)
        return key, values

    def _cached(self, customer_id: str, ranker: ServingRanker | None) -> RankerRead | None:
        """The customer's read of the current ranker while it is younger than the TTL."""
        cached = self._reads.get(customer_id)
        if (
            ranker is None
            or cached is None
            or self.clock() - cached[0] >= self.cache_ttl_s
            or cached[1].version != ranker.version
        ):
            return None
        return cached[1]

    def read_blocking(self, customer_id: str, at: datetime) -> RankerRead:
        ranker = self.current
        if ranker is None:
            return RankerRead(None, skipped="ranker_unavailable")
        cached = self._cached(customer_id, ranker)
        if cached is not None:
            return cached
        now = self.clock()
        try:
            raw = self.store.customer(customer_id, ranker.customer_refs)
            products_key, _ = self._product_values(ranker)
        except Exception as exc:
            log.error("ranker_read_failed", error_type=type(exc).__name__)
            return RankerRead(ranker.version, skipped="ranker_error")
        stamps = [
            fv.event_timestamp
            for ref, fv in raw.items()
            if view_of(ref) == _HOLDINGS_VIEW and fv.event_timestamp
        ]
        if not stamps:
            read = RankerRead(ranker.version, skipped="ranker_features_missing")
        else:
            newest = max(stamps)
            ttl = self._ttl.get(_HOLDINGS_VIEW) or timedelta(0)
            if ttl > timedelta(0) and newest < at - ttl:
                read = RankerRead(ranker.version, skipped="ranker_features_stale")
            else:
                inputs = RankerInputs(
                    customer_id, newest.astimezone(UTC).date(), {ref: fv.value for ref, fv in raw.items()}
                )
                read = RankerRead(
                    ranker.version, inputs=inputs, products_key=products_key, inputs_json=inputs.as_json()
                )
        if len(self._reads) >= CACHE_MAX_CUSTOMERS:
            evict_oldest(self._reads)
        self._reads[customer_id] = (now, read)
        return read

    async def read(self, customer_id: str, at: datetime) -> RankerRead:
        """The customer's ranker inputs (cached; the store is read in a worker thread)."""
        ranker = self.current
        cached = self._cached(customer_id, ranker)
        if cached is not None:
            return cached
        try:
            return await asyncio.to_thread(self.read_blocking, customer_id, at)
        except Exception as exc:  # the ranker never fails a decision: base scores rank instead
            log.error("ranker_read_failed", error_type=type(exc).__name__)
            return RankerRead(None if ranker is None else ranker.version, skipped="ranker_error")

    # -- scoring (pure given the read) ----------------------------------------------------------------

    def scores(self, read: RankerRead) -> dict[str, float] | None:
        """P(add) per product for a successful read (one LightGBM call per customer and snapshot)."""
        ranker = self.current
        if (
            read.inputs is None
            or read.products_key is None
            or ranker is None
            or ranker.version != read.version
        ):
            return None
        key = (ranker.version, read.inputs.customer_id, read.inputs.snapshot.isoformat(), read.products_key)
        found = self._scores.get(key)
        if found is not None:
            return found
        products = self._product_sets.get(read.products_key)
        if products is None:
            return None  # evicted since the read (four refreshes within one cached read): an error
        scores = ranker.score(read.inputs, products)
        if len(self._scores) >= CACHE_MAX_CUSTOMERS:
            evict_oldest(self._scores)
        self._scores[key] = scores
        return scores

    def apply(
        self, candidates: CandidateSet, read: RankerRead
    ) -> tuple[CandidateSet, dict[str, Any], str | None]:
        """The candidates rescored by the ranker, the audit's ``ranker`` entry and the fallback code
        (None when the ranker scored; the caller counts it in :data:`RANKER_FALLBACKS` once per
        decision, not once per experiment arm run)."""
        kept = self._applied.get((candidates, read))
        if kept is not None:
            return kept
        answer = self._apply(candidates, read)
        if answer[2] is None:  # scored: the same candidates and read give the same answer
            self._applied.put((candidates, read), None, answer)
        return answer

    def _apply(
        self, candidates: CandidateSet, read: RankerRead
    ) -> tuple[CandidateSet, dict[str, Any], str | None]:
        skipped = read.skipped
        scores: dict[str, float] | None = None
        if skipped is None:
            try:
                scores = self.scores(read)
            except Exception as exc:
                log.error("ranker_scoring_failed", version=read.version, error_type=type(exc).__name__)
                skipped = "ranker_error"
            if scores is None and skipped is None:
                skipped = "ranker_error"
        if skipped is not None or scores is None:
            reason = skipped or "ranker_error"
            entry = dataclasses.replace(read, skipped=reason).as_json()
            return candidates, entry, reason
        chosen = {c.product_id: scores.get(c.product_id, 0.0) for c in candidates.candidates}
        return rescore(candidates, chosen), read.as_json(chosen), None
