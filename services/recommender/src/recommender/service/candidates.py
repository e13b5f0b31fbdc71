"""Candidate generation: CF model scores ∪ moment-triggered rules ∪ segment popularity (no I/O).

Sources, each with a base score in [0, 1] (a product found by several keeps the highest score and
lists every source):

- ``cf:<model_type>``: the served model's top-k for a warm customer (products already bought are
  left out by the model), min-max scaled onto [0.05, 1] over the list. A cold customer gets CF candidates
  only when the served model is the LightFM hybrid (it scores from the customer's feature tokens).
- ``moment:<moment>``: the table :data:`MOMENT_RULES` below, keyed by the request's moment.
- ``popularity:segment``: purchase rates in the customer's segments (mean over segments), scaled
  by the best, times :attr:`CandidateConfig.popularity_weight`; always added, so that the
  policies have something to choose from when the model is missing or the customer is cold.
- ``popularity:global``: non-personalised mode only. It uses nothing but segment-free popularity
  (:class:`recommender.service.policies.GlobalPopularity`): no model, no moment, no segment.

Only active products of the catalogue snapshot that are on sale are ever candidates.

Moment rules (:data:`MOMENT_RULES`; reason codes are what ``explain`` turns into text):

====================== ========================================== ==============================
moment                 products                                   reason code
====================== ========================================== ==============================
deposit_maturing       deposits (renewal)                         moment_deposit_renewal
deposit_maturing       wealth management, structured deposits     moment_maturity_wealth
wealth_maturing        deposits (renewal)                         moment_deposit_renewal
wealth_maturing        wealth management, structured deposits     moment_maturity_wealth
salary_credited        payroll services, 代发专享 products          moment_salary_payroll_bundle
salary_credited        deposits                                   moment_salary_deposit
salary_credited        funds                                      moment_salary_fund
large_inbound_transfer wealth management, structured deposits     moment_inbound_wealth
card_bill              consumer loans for spending (bill instal.) moment_card_bill_instalment
aum_drop               deposits, with a rate-boost right          moment_aum_retention
birthday               insurance                                  moment_birthday_insurance
app_login              none                                       —
====================== ========================================== ==============================
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any, Final

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from qianmian_core.logging import get_logger
from qianmian_core.memo import BoundaryEpochs, IdentityMemo
from qianmian_rules import MomentType

from recommender.bounds import WARM_ENTRIES
from recommender.ml.models.popularity import SegmentPopularityRecommender
from recommender.ml.registry import LoadedModel
from recommender.service.holder import ModelHolder, PinnedModel
from recommender.service.hub_cache import CatalogueProduct
from recommender.service.policies import GlobalPopularity, Mode

log = get_logger(__name__)

SEGMENT_TOKEN: Final[str] = "segment="  # noqa: S105 - a feature-token prefix, not a secret
COLD_START_MODEL: Final[str] = "lightfm"


@dataclass(frozen=True, slots=True)
class MomentRule:
    """Products a moment makes timely: any product of ``product_types`` or carrying one of ``tags``."""

    moment: MomentType
    reason_code: str
    product_types: frozenset[str] = frozenset()
    tags: frozenset[str] = frozenset()
    #: Restrict ``product_types`` matches to products with one of these tags (empty: no restriction).
    require_tags: frozenset[str] = frozenset()
    score: float = 0.6
    #: The kind of right the bundle should prefer (e.g. a rate boost for retention).
    right_type: str | None = None

    def matches(self, product: CatalogueProduct) -> bool:
        tags = _tags(product)
        if self.tags & tags:
            return True
        if product.product_type not in self.product_types:
            return False
        return not self.require_tags or bool(self.require_tags & tags)


def _tags(product: CatalogueProduct) -> frozenset[str]:
    raw = product.attributes.get("tags", ())
    return frozenset(raw) if isinstance(raw, list | tuple) else frozenset()


_WEALTH = frozenset({"wealth_management", "structured_deposit"})
_DEPOSIT = frozenset({"deposit"})

#: The moment rules, documented in the module docstring; order is the order of reason codes.
MOMENT_RULES: Final[tuple[MomentRule, ...]] = (
    MomentRule(MomentType.DEPOSIT_MATURING, "moment_deposit_renewal", _DEPOSIT, score=0.7),
    MomentRule(MomentType.DEPOSIT_MATURING, "moment_maturity_wealth", _WEALTH),
    MomentRule(MomentType.WEALTH_MATURING, "moment_deposit_renewal", _DEPOSIT),
    MomentRule(MomentType.WEALTH_MATURING, "moment_maturity_wealth", _WEALTH, score=0.7),
    MomentRule(
        MomentType.SALARY_CREDITED,
        "moment_salary_payroll_bundle",
        frozenset({"payroll_service"}),
        tags=frozenset({"代发专享"}),
        score=0.7,
    ),
    MomentRule(MomentType.SALARY_CREDITED, "moment_salary_deposit", _DEPOSIT, score=0.5),
    MomentRule(MomentType.SALARY_CREDITED, "moment_salary_fund", frozenset({"fund"}), score=0.5),
    MomentRule(MomentType.LARGE_INBOUND_TRANSFER, "moment_inbound_wealth", _WEALTH, score=0.7),
    MomentRule(
        MomentType.CARD_BILL,
        "moment_card_bill_instalment",
        frozenset({"consumer_loan"}),
        require_tags=frozenset({"消费", "账单分期"}),
        score=0.7,
    ),
    MomentRule(MomentType.AUM_DROP, "moment_aum_retention", _DEPOSIT, score=0.7, right_type="rate_boost"),
    MomentRule(MomentType.BIRTHDAY, "moment_birthday_insurance", frozenset({"insurance"}), score=0.6),
    # app_login: no rule, on purpose (a login says nothing about what is timely)
)


class CandidateConfig(BaseModel):
    """How many candidates each source contributes and how much popularity weighs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cf_top_k: int = Field(default=30, ge=1, le=500)
    popularity_top_k: int = Field(default=20, ge=1, le=500)
    popularity_weight: float = Field(default=0.5, ge=0, le=1)


@dataclass(frozen=True, slots=True)
class Candidate:
    """One candidate product, where it came from and its base score (the propensity fallback)."""

    product_id: str
    product_type: str
    score: float
    sources: tuple[str, ...]
    reason_codes: tuple[str, ...] = ()
    moment: str | None = None
    right_type: str | None = None


@dataclass(frozen=True, slots=True)
class CandidateSet:
    """The candidates (best base score first, ties by product id) and what the CF stage did."""

    candidates: tuple[Candidate, ...]
    model_version: str | None
    #: Why no CF candidates came: ``model_unavailable``, ``model_error``, ``cold_customer`` or None.
    cf_skipped: str | None = None


@dataclass(frozen=True, slots=True)
class CfBatch:
    """The CF top-k of many customers from one model call (batch mode: outbound lists).

    ``loaded`` is the model snapshot that scored them: :meth:`CandidateGenerator.generate` uses a
    customer's entry only while that snapshot is still the one served. One matrix product for the
    whole batch can differ from one customer's own scoring in the last float32 bits.
    """

    loaded: LoadedModel | None
    top: Mapping[str, Sequence[tuple[str, float]]]


@dataclass(frozen=True, slots=True)
class SegmentPopularity:
    """Purchase rate per segment and product (the fallback source), plus the segment-free rates."""

    by_segment: Mapping[str, Mapping[str, float]]
    overall: GlobalPopularity

    def scores(self, segments: frozenset[str]) -> dict[str, float]:
        """Mean rate over the customer's known segments; the overall rate when none is known."""
        known = [self.by_segment[s] for s in sorted(segments) if s in self.by_segment]
        if not known:
            return dict(self.overall.by_product)
        products = sorted({p for rates in known for p in rates})
        return {p: sum(r.get(p, 0.0) for r in known) / len(known) for p in products}

    @classmethod
    def from_model(cls, model: SegmentPopularityRecommender) -> SegmentPopularity:
        """From a trained segment-popularity model (its rates and its global popularity)."""
        ids = list(model.products.ids)
        by_segment = {
            token.removeprefix(SEGMENT_TOKEN): MappingProxyType(
                {pid: float(rate) for pid, rate in zip(ids, row, strict=True)}
            )
            for token, row in zip(model.segments, np.asarray(model.rates), strict=True)
        }
        overall = GlobalPopularity(
            MappingProxyType({pid: float(v) for pid, v in zip(ids, model.popularity, strict=True)})
        )
        return cls(MappingProxyType(by_segment), overall)


@dataclass(frozen=True, slots=True)
class CustomerSignals:
    """What candidate generation may know about the customer (personalised and fallback modes)."""

    customer_id: str
    segments: frozenset[str] = frozenset()
    #: Feature tokens for cold-start scoring (``segment=payroll``, ``age=30-39`` …).
    tokens: tuple[str, ...] = ()
    moment: str | None = None


class _Merge:
    """Candidates from several sources, merged by product: best score, every source and reason once,
    the first moment and right type (each candidate is made once, in :meth:`result`)."""

    def __init__(self) -> None:
        # product id -> [product type, score, sources, reason codes, moment, right type]
        self.by_id: dict[str, list[Any]] = {}

    def add(
        self,
        product: CatalogueProduct,
        score: float,
        source: str,
        *,
        reason: str | None = None,
        moment: str | None = None,
        right_type: str | None = None,
    ) -> None:
        score = min(max(float(score), 0.0), 1.0) if math.isfinite(score) else 0.0
        old = self.by_id.get(product.product_id)
        if old is None:
            self.by_id[product.product_id] = [
                product.product_type,
                score,
                [source],
                [reason] if reason else [],
                moment,
                right_type,
            ]
            return
        if score > old[1]:
            old[1] = score
        if source not in old[2]:
            old[2].append(source)
        if reason and reason not in old[3]:
            old[3].append(reason)
        old[4] = old[4] or moment
        old[5] = old[5] or right_type

    def result(self) -> tuple[Candidate, ...]:
        made = [
            Candidate(pid, ptype, score, tuple(sources), tuple(reasons), moment, right_type)
            for pid, (ptype, score, sources, reasons, moment, right_type) in self.by_id.items()
        ]
        made.sort(key=lambda c: (-c.score, c.product_id))
        return tuple(made)


#: A catalogue snapshot's sale-window epochs, and its products on sale per epoch (see _sale).
_SALE_EPOCHS = BoundaryEpochs(16)
_ON_SALE: IdentityMemo[tuple[Mapping[str, CatalogueProduct], tuple[str, ...]]] = IdentityMemo(256)


def _sale(
    catalogue: Mapping[str, CatalogueProduct], at: datetime
) -> tuple[Mapping[str, CatalogueProduct], tuple[str, ...]]:
    """The products on sale at ``at`` (sale window, quota) by id, and their ids in catalogue order.

    For a catalogue snapshot (the hub cache's read-only mapping) both are made once per epoch: how
    many of the snapshot's window boundaries (every ``sale_start`` and ``sale_end``) are at or before
    ``at``. Two moments with the same epoch find every product in or out of its window alike, and the
    quota and sold count are the snapshot's, so the answer is the same.
    """
    if not isinstance(catalogue, MappingProxyType):  # a caller's own dict may change: no memo
        products = {pid: p for pid, p in catalogue.items() if p.on_sale(at)}
        return products, tuple(products)
    epoch = _SALE_EPOCHS.epoch(
        (catalogue,), at, lambda: (b for p in catalogue.values() for b in (p.sale_start, p.sale_end))
    )
    kept = _ON_SALE.get((catalogue,), epoch)
    if kept is None:
        on_sale = MappingProxyType({pid: p for pid, p in catalogue.items() if p.on_sale(at)})
        kept = (on_sale, tuple(on_sale))
        _ON_SALE.put((catalogue,), epoch, kept)
    return kept


def _on_sale(catalogue: Mapping[str, CatalogueProduct], at: datetime) -> Mapping[str, CatalogueProduct]:
    return _sale(catalogue, at)[0]


def on_sale_ids(catalogue: Mapping[str, CatalogueProduct], at: datetime) -> tuple[str, ...]:
    """The ids of the products on sale at ``at``, in catalogue order: for a catalogue snapshot the
    same tuple object for every moment of a sale-window epoch (what the candidates depend on in time)."""
    return _sale(catalogue, at)[1]


def _scaled(pairs: Sequence[tuple[str, float]]) -> list[tuple[str, float]]:
    finite = [(p, s) for p, s in pairs if math.isfinite(s)]
    top = max((s for _, s in finite), default=0.0)
    if top <= 0:
        return [(p, 0.0) for p, _ in finite]
    return [(p, max(s, 0.0) / top) for p, s in finite]


#: The lowest base score a CF candidate gets: the last of the model's top-k still counts.
CF_SCORE_FLOOR: Final[float] = 0.05


def _cf_scaled(pairs: Sequence[tuple[str, float]]) -> list[tuple[str, float]]:
    """Model scores mapped onto [CF_SCORE_FLOOR, 1] by min-max over the top-k, order kept.

    Raw scores are not probabilities and need not be positive (LightFM's usually are not): dividing
    by the best would turn an all-negative list into zeros and leave the ranking to the product ids.
    """
    finite = [(p, s) for p, s in pairs if math.isfinite(s)]
    if not finite:
        return []
    low = min(s for _, s in finite)
    high = max(s for _, s in finite)
    if high <= low:
        return [(p, 1.0) for p, _ in finite]
    span = high - low
    return [(p, CF_SCORE_FLOOR + (1.0 - CF_SCORE_FLOOR) * (s - low) / span) for p, s in finite]


def moment_candidates(
    moment: str | None, products: Mapping[str, CatalogueProduct], rules: Sequence[MomentRule] = MOMENT_RULES
) -> list[tuple[CatalogueProduct, MomentRule]]:
    """The products each rule of ``moment`` selects, in rule order then product id order."""
    if moment is None:
        return []
    return [
        (products[pid], rule)
        for rule in rules
        if rule.moment == moment
        for pid in sorted(products)
        if rule.matches(products[pid])
    ]


def non_personalised_candidates(
    catalogue: Mapping[str, CatalogueProduct], popularity: GlobalPopularity, *, at: datetime
) -> tuple[Candidate, ...]:
    """Every product on sale, scored by segment-free popularity only.

    The signature is the guarantee: no customer, model, moment or segment can reach it.
    """
    merge = _Merge()
    products = _on_sale(catalogue, at)
    scaled = dict(_scaled([(pid, popularity.of(pid)) for pid in products]))
    for pid, product in products.items():
        merge.add(product, scaled.get(pid, 0.0), "popularity:global")
    return merge.result()


#: Customers whose CF top-k a generator keeps (about 2 KB each).
CF_CACHE_MAX_CUSTOMERS: Final = 100_000
#: Customers whose candidate set a generator keeps (~9 KB each: ~180 MB at the bound), oldest first out.
CANDIDATE_MEMO_MAX: Final = WARM_ENTRIES

CfKey = tuple[str, tuple[str, ...]]


class CfTopCache:
    """Customers' CF top-k per served model.

    A customer's top-k depends only on the model and, for a cold customer, the feature tokens (the
    key): it is scored once per model, not per decision (the model call was ~8% of a decision). The
    last few models keep their entries (experiment arms serve several at once); the oldest entries
    of a model go first beyond ``max_customers``.
    """

    MODELS = 4

    def __init__(self, max_customers: int = CF_CACHE_MAX_CUSTOMERS) -> None:
        self.max_customers = max_customers
        self._models: dict[int, tuple[object, dict[CfKey, list[tuple[str, float]]]]] = {}

    def __len__(self) -> int:
        return sum(len(top) for _, top in self._models.values())

    def _of(self, model: object) -> dict[CfKey, list[tuple[str, float]]]:
        held = self._models.get(id(model))
        if held is not None and held[0] is model:
            return held[1]
        while len(self._models) >= self.MODELS:
            del self._models[next(iter(self._models))]
        top: dict[CfKey, list[tuple[str, float]]] = {}
        self._models[id(model)] = (model, top)
        return top

    def get(self, model: object, key: CfKey) -> list[tuple[str, float]] | None:
        return self._of(model).get(key)

    def put(self, model: object, key: CfKey, top: list[tuple[str, float]]) -> None:
        entries = self._of(model)
        if len(entries) >= self.max_customers:
            del entries[next(iter(entries))]  # the oldest entry
        entries[key] = top


class CandidateGenerator:
    """Builds the candidate set of one decision from the model, the moment rules and popularity."""

    def __init__(
        self,
        holder: ModelHolder | PinnedModel | None,
        popularity: SegmentPopularity,
        *,
        rules: Sequence[MomentRule] = MOMENT_RULES,
        config: CandidateConfig | None = None,
        cf_cache: CfTopCache | None = None,
    ) -> None:
        self.holder = holder
        self.popularity = popularity
        self.rules = tuple(rules)
        self.config = config or CandidateConfig()
        self.cf_cache = cf_cache if cf_cache is not None else CfTopCache()
        self._segment_top: dict[frozenset[str], list[tuple[str, float]]] = {}
        #: Candidates per (catalogue snapshot, served model) and (signals, mode, products on sale):
        #: generation is a pure function of these.
        self._memo: IdentityMemo[CandidateSet] = IdentityMemo(CANDIDATE_MEMO_MAX)

    def generate(
        self,
        customer: CustomerSignals,
        catalogue: Mapping[str, CatalogueProduct],
        *,
        mode: Mode,
        at: datetime,
        cf: CfBatch | None = None,
    ) -> CandidateSet:
        """The candidates for ``mode``: non-personalised uses global popularity only; fallback skips CF.

        ``cf``: the customer's CF top-k from :meth:`cf_batch` (batch mode), instead of a model call.
        """
        products, on_sale = _sale(catalogue, at)
        if mode is Mode.NON_PERSONALISED:
            # The same for every customer: made once per catalogue snapshot, popularity and sale set.
            overall = self.popularity.overall
            snapshot = isinstance(catalogue, MappingProxyType)  # a caller's own dict may change
            kept = self._memo.get((catalogue, overall), on_sale) if snapshot else None
            if kept is None:
                kept = CandidateSet(non_personalised_candidates(catalogue, overall, at=at), None)
                if snapshot:
                    self._memo.put((catalogue, overall), on_sale, kept)
            return kept
        loaded = self.holder.current if self.holder is not None else None
        # A customer's candidates are made once while nothing they depend on changes: the customer's
        # signals, the mode, the products on sale (the only way time enters), the catalogue snapshot
        # and the model. Batch mode (``cf``) brings its own scores and is not kept.
        key = None
        if cf is None:
            key = (customer, mode, on_sale)
            kept = self._memo.get((catalogue, loaded), key)
            if kept is not None:
                return kept
        merge = _Merge()
        version: str | None = None
        skipped: str | None = "fallback_mode" if mode is Mode.FALLBACK else None
        if mode is Mode.PERSONALISED:
            version, skipped = self._cf(customer, products, merge, cf, loaded)
        for product, rule in moment_candidates(customer.moment, products, self.rules):
            merge.add(
                product,
                rule.score,
                f"moment:{rule.moment.value}",
                reason=rule.reason_code,
                moment=rule.moment.value,
                right_type=rule.right_type,
            )
        segments = frozenset(customer.segments)
        ordered = self._segment_top.get(segments)
        if ordered is None:
            ordered = sorted(self.popularity.scores(segments).items(), key=lambda ps: (-ps[1], ps[0]))
            if len(self._segment_top) < CF_CACHE_MAX_CUSTOMERS:
                self._segment_top[segments] = ordered
        ranked = [(pid, s) for pid, s in ordered if pid in products][: self.config.popularity_top_k]
        for pid, score in _scaled(ranked):
            merge.add(products[pid], score * self.config.popularity_weight, "popularity:segment")
        result = CandidateSet(merge.result(), version, skipped)
        if key is not None and skipped != "model_error":  # a failed model call is tried again
            self._memo.put((catalogue, loaded), key, result)
        return result

    def cf_batch(self, customers: Sequence[CustomerSignals]) -> CfBatch:
        """The CF top-k of many customers in one model call, for :meth:`generate` (batch mode).

        Customers the served model cannot score (cold, unless it is the hybrid) are left out, as
        ``generate`` leaves them out; if the batch call fails, every customer is left out and
        ``generate`` scores (and fails) each one on its own.
        """
        loaded = self.holder.current if self.holder is not None else None
        if loaded is None or not customers:
            return CfBatch(loaded, {})
        model = loaded.model
        warm = model.customers.indices([c.customer_id for c in customers]) >= 0
        cold_start = loaded.manifest.model_type == COLD_START_MODEL
        chosen = [c for c, w in zip(customers, warm, strict=True) if w or cold_start]
        if not chosen:
            return CfBatch(loaded, {})
        try:
            tops = model.recommend(
                [c.customer_id for c in chosen],
                self.config.cf_top_k,
                customer_tokens=[list(c.tokens) for c in chosen],  # used for the cold ones only
            )
        except Exception as exc:
            log.error(
                "cf_batch_scoring_failed", version=loaded.manifest.version, error_type=type(exc).__name__
            )
            return CfBatch(loaded, {})
        return CfBatch(loaded, {c.customer_id: top for c, top in zip(chosen, tops, strict=True)})

    def _cf(
        self,
        customer: CustomerSignals,
        products: Mapping[str, CatalogueProduct],
        merge: _Merge,
        cf: CfBatch | None,
        loaded: LoadedModel | None,
    ) -> tuple[str | None, str | None]:
        if loaded is None:
            return None, "model_unavailable"
        version = loaded.manifest.version
        model = loaded.model
        warm = bool(model.customers.indices([customer.customer_id])[0] >= 0)
        if not warm and loaded.manifest.model_type != COLD_START_MODEL:
            return version, "cold_customer"
        top = cf.top.get(customer.customer_id) if cf is not None and cf.loaded is loaded else None
        key = (customer.customer_id, () if warm else tuple(customer.tokens))
        if top is None:
            top = self.cf_cache.get(loaded, key)
        if top is None:
            try:
                (scored,) = model.recommend(
                    [customer.customer_id],
                    self.config.cf_top_k,
                    customer_tokens=None if warm else [list(customer.tokens)],
                )
            except Exception as exc:  # a broken model must not fail the decision: popularity serves
                log.error("cf_scoring_failed", version=version, error_type=type(exc).__name__)
                return version, "model_error"
            top = list(scored)
            self.cf_cache.put(loaded, key, top)
        source = f"cf:{loaded.manifest.model_type}"
        for pid, score in _cf_scaled([(p, s) for p, s in top if p in products]):
            merge.add(products[pid], score, source, reason="cf_similar_customers")
        return version, None


def popularity_for(
    loaded: LoadedModel | None, catalogue: Mapping[str, CatalogueProduct]
) -> SegmentPopularity:
    """Segment popularity from a served popularity model, else segment-free sales counts."""
    if loaded is not None and isinstance(loaded.model, SegmentPopularityRecommender):
        return SegmentPopularity.from_model(loaded.model)
    # No popularity model: segment-free popularity from the catalogue's sales counts.
    overall = GlobalPopularity(MappingProxyType({pid: float(p.sold) for pid, p in catalogue.items()}))
    return SegmentPopularity(MappingProxyType({}), overall)
