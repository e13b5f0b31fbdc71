"""In-memory snapshots of the three hubs the decision path reads (DESIGN.md section 6).

The recommender never calls a hub synchronously per decision. It holds:

- the **product catalogue** (active products with their eligibility rules), from product-hub's
  ``GET /v1/products?status=active``;
- the **approved content index** per (product, channel) with each version's validity window, from
  content-hub's ``GET /v1/content?status=approved&include_out_of_window=true`` (windows are checked
  at lookup time, so content whose window opens or closes between refreshes is right at once);
- the **affordable rights** list, from rights-hub's ``GET /v1/rights?affordable=true``.

A background asyncio task refreshes all three every ``ttl_s`` (≤ 30 s) concurrently; each snapshot
is built completely and then published by one reference assignment, so a reader sees the old or the
new snapshot, never a mix. A failed refresh keeps the last snapshot while it is younger than
``max_staleness_s`` (≤ 30 s as well). Beyond that bound:

- content is treated as unavailable (no content at all: the recommender cannot know what was
  retired meanwhile, and content must never be served longer than the bound after it stops being
  approved);
- rights are treated as unavailable (no right is offered; the ledger is the truth at grant time);
- the product catalogue keeps serving the last good snapshot, flagged degraded.

A content item absent from the latest successful snapshot is gone at once, so retired content is
served at most one refresh interval after retirement while content-hub answers, and at most
``max_staleness_s`` after the last successful refresh when it does not.

``degraded_reasons`` names what is degraded (stable codes for the decision's audit record):
``product_catalogue_missing`` (never loaded), ``product_catalogue_stale``, ``content_index_unavailable``,
``rights_unavailable``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Final, Generic, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator
from qianmian_core.clients import ServiceClient, path_of
from qianmian_core.logging import get_logger
from qianmian_core.memo import BoundaryEpochs
from qianmian_rules import EligibilityRules

from recommender.service.policies import CandidateProduct
from recommender.service.tasks import cancel

log = get_logger(__name__)

#: The hard bound of DESIGN.md section 6 on how long the hot path may trust a hub snapshot.
MAX_TTL_S: Final[float] = 30.0
PAGE: Final[int] = 500


class HubCacheConfig(BaseModel):
    """How often the hub snapshots refresh and how long a failing hub's last snapshot may serve."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ttl_s: float = Field(default=15.0, gt=0, le=MAX_TTL_S, description="Refresh interval (≤ 30 s)")
    max_staleness_s: float = Field(
        default=MAX_TTL_S,
        gt=0,
        le=MAX_TTL_S,
        description="Age beyond which content and rights are unavailable and products degraded (≤ 30 s)",
    )

    @model_validator(mode="after")
    def _bound_covers_one_refresh(self) -> HubCacheConfig:
        if self.max_staleness_s < self.ttl_s:
            raise ValueError("max_staleness_s must be at least ttl_s (one refresh interval)")
        return self


# --- what the hubs answer (only the fields the recommender reads; extra fields are ignored) ---


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class ProductWire(_Wire):
    """A product of product-hub's listing."""

    product_id: str
    name: str
    name_en: str | None = None
    product_type: str
    risk_rating: int | None = None
    eligibility: EligibilityRules = Field(default_factory=EligibilityRules)
    channels: list[str]
    sale_start: datetime | None = None
    sale_end: datetime | None = None
    quota: int | None = None
    sold: int = 0
    margin_rate: float = 0.0
    value: float = 0.0
    attributes: dict[str, Any] = Field(default_factory=dict)
    status: str


class ProductPageWire(_Wire):
    """One page of product-hub's listing."""

    items: list[ProductWire]
    total: int


class ContentWire(_Wire):
    """An approved content version of content-hub's search."""

    content_id: str
    version: int
    status: str
    product_id: str | None = None
    right_id: str | None = None
    segments: list[str] = Field(default_factory=list)
    variants: dict[str, dict[str, Any] | None]
    valid_from: datetime | None = None
    valid_until: datetime | None = None


class ContentPageWire(_Wire):
    """One page of content-hub's search."""

    items: list[ContentWire]
    total: int


class RightWire(_Wire):
    """A right of rights-hub's listing."""

    right_id: str
    name: str
    right_type: str
    status: str
    segments: list[str] = Field(default_factory=list)
    lifecycle_stages: list[str] = Field(default_factory=list)
    valid_from: datetime
    valid_until: datetime
    unit_cost_fen: int = 0
    remaining_count: int
    per_customer_limit: int = 1


class RightPageWire(_Wire):
    """One page of rights-hub's listing."""

    items: list[RightWire]
    total: int


class BudgetWire(_Wire):
    """rights-hub's budget status of one right."""

    right_id: str
    remaining_count: int
    remaining_money_fen: int


P = TypeVar("P", ProductPageWire, ContentPageWire, RightPageWire)


async def _all_pages(fetch: Callable[[int], Awaitable[P]]) -> list[Any]:
    items: list[Any] = []
    offset = 0
    while True:
        page = await fetch(offset)
        items.extend(page.items)
        offset += PAGE
        if not page.items or offset >= page.total:
            return items


class ProductHubClient(ServiceClient):
    """Reads the active catalogue from product-hub."""

    service = "product-hub"

    async def active_products(self) -> list[ProductWire]:
        """Every active product (all pages)."""
        return await _all_pages(
            lambda offset: self._client.get_model(
                f"/v1/products?status=active&limit={PAGE}&offset={offset}", ProductPageWire
            )
        )


class ContentHubClient(ServiceClient):
    """Reads approved content from content-hub."""

    service = "content-hub"

    async def approved_content(self) -> list[ContentWire]:
        """Every approved version, inside its validity window or not (windows are checked locally)."""
        return await _all_pages(
            lambda offset: self._client.get_model(
                f"/v1/content?status=approved&include_out_of_window=true&limit={PAGE}&offset={offset}",
                ContentPageWire,
            )
        )


class RightsHubClient(ServiceClient):
    """Reads affordable rights and budgets from rights-hub."""

    service = "rights-hub"

    async def affordable_rights(self) -> list[RightWire]:
        """Active rights inside their window with budget for one more grant (all pages)."""
        return await _all_pages(
            lambda offset: self._client.get_model(
                f"/v1/rights?affordable=true&limit={PAGE}&offset={offset}", RightPageWire
            )
        )

    async def budget(self, right_id: str) -> BudgetWire:
        """The budget status of one right (a re-check at grant time; the ledger is the truth)."""
        return await self._client.get_model(path_of("v1", "rights", right_id, "budget"), BudgetWire)


class ProductSource(Protocol):
    async def active_products(self) -> list[ProductWire]: ...


class ContentSource(Protocol):
    async def approved_content(self) -> list[ContentWire]: ...


class RightsSource(Protocol):
    async def affordable_rights(self) -> list[RightWire]: ...


# --- the snapshots ---


@dataclass(frozen=True, slots=True)
class CatalogueProduct:
    """An active product as the hot path needs it."""

    product_id: str
    name: str
    name_en: str | None
    product_type: str
    risk_rating: int | None
    eligibility: EligibilityRules
    channels: frozenset[str]
    sale_start: datetime | None
    sale_end: datetime | None
    quota: int | None
    sold: int
    margin_rate: float
    value: float
    attributes: Mapping[str, Any]

    def on_sale(self, at: datetime) -> bool:
        """Inside the sale window (start inclusive, end exclusive) and within quota."""
        if self.sale_start is not None and at < self.sale_start:
            return False
        if self.sale_end is not None and at >= self.sale_end:
            return False
        return self.quota is None or self.sold < self.quota

    @classmethod
    def from_wire(cls, wire: ProductWire) -> CatalogueProduct:
        return cls(
            product_id=wire.product_id,
            name=wire.name,
            name_en=wire.name_en,
            product_type=wire.product_type,
            risk_rating=wire.risk_rating,
            eligibility=wire.eligibility,
            channels=frozenset(wire.channels),
            sale_start=wire.sale_start,
            sale_end=wire.sale_end,
            quota=wire.quota,
            sold=wire.sold,
            margin_rate=wire.margin_rate,
            value=wire.value,
            attributes=MappingProxyType(dict(wire.attributes)),
        )


def _in_window(valid_from: datetime | None, valid_until: datetime | None, at: datetime) -> bool:
    return (valid_from is None or valid_from <= at) and (valid_until is None or at < valid_until)


def policy_view(
    product: CatalogueProduct, *, content_approved: bool, right_affordable: bool | None
) -> CandidateProduct:
    """The policy engine's view of a catalogue product, given what the content and rights caches
    say of it."""
    return CandidateProduct(
        product_id=product.product_id,
        product_type=product.product_type,
        risk_rating=product.risk_rating,
        eligibility=product.eligibility,
        channels=product.channels,
        value=product.value,
        content_approved=content_approved,
        right_affordable=right_affordable,
    )


@dataclass(frozen=True, slots=True)
class ContentEntry:
    """One approved content version's variant for one channel."""

    content_id: str
    version: int
    product_id: str | None
    right_id: str | None
    channel: str
    segments: frozenset[str]
    valid_from: datetime | None
    valid_until: datetime | None
    variant: Mapping[str, Any]

    def in_window(self, at: datetime) -> bool:
        """Inside ``[valid_from, valid_until)``."""
        return _in_window(self.valid_from, self.valid_until, at)

    def targets(self, segments: frozenset[str] | None) -> bool:
        """Content with no segments targets everyone; ``None`` (non-personalised) only such content."""
        if not self.segments:
            return True
        return segments is not None and bool(self.segments & segments)


@dataclass(frozen=True, slots=True)
class RightEntry:
    """A right that was affordable at the last refresh."""

    right_id: str
    name: str
    right_type: str
    segments: frozenset[str]
    lifecycle_stages: frozenset[str]
    valid_from: datetime
    valid_until: datetime
    unit_cost_fen: int
    remaining_count: int

    def open_to(self, segments: frozenset[str] | None, lifecycle_stage: str | None) -> bool:
        """Whether the right's audience includes the customer (empty lists mean everyone)."""
        if self.segments and (segments is None or not self.segments & segments):
            return False
        return not self.lifecycle_stages or lifecycle_stage in self.lifecycle_stages


#: The window boundaries of a content index or rights list, per snapshot object.
_WINDOW_EPOCHS = BoundaryEpochs(16)


def window_epoch(data: ContentIndex | tuple[RightEntry, ...] | None, at: datetime) -> int:
    """How many of the snapshot's validity boundaries (every ``valid_from`` and ``valid_until``) are
    at or before ``at``.

    Two moments with the same epoch find every entry of the snapshot in or out of its window alike
    (``[valid_from, valid_until)``): what is read from it can be kept for the epoch.
    """
    if data is None:
        return 0

    def boundaries() -> Iterable[datetime | None]:
        entries: Iterable[ContentEntry | RightEntry] = (
            data if isinstance(data, tuple) else (e for variants in data.values() for e in variants)
        )
        return (b for e in entries for b in (e.valid_from, e.valid_until))

    return _WINDOW_EPOCHS.epoch((data,), at, boundaries)


@dataclass(frozen=True, slots=True)
class OfferSources:
    """What one decision reads from the content and rights caches, at one moment.

    ``epoch``: the content index's and the rights list's :func:`window_epoch` at ``at``. The same
    snapshot objects and epoch give the same answers, so a caller may keep what it derives from them
    per (snapshots, epoch).
    """

    content: ContentIndex | None
    rights: tuple[RightEntry, ...] | None
    at: datetime
    epoch: tuple[int, int]

    def content_for(
        self, product_id: str, channel: str, segments: frozenset[str] | None
    ) -> tuple[ContentEntry, ...]:
        """Approved variants of ``product_id`` for ``channel`` in window, targeting ``segments``."""
        if self.content is None:
            return ()
        at = self.at
        return tuple(
            e for e in self.content.get((product_id, channel), ()) if e.in_window(at) and e.targets(segments)
        )

    def affordable_rights(
        self, segments: frozenset[str] | None, lifecycle_stage: str | None
    ) -> tuple[RightEntry, ...]:
        """Rights affordable at the last refresh, in window, open to the customer."""
        if self.rights is None:
            return ()
        at = self.at
        return tuple(
            r
            for r in self.rights
            if _in_window(r.valid_from, r.valid_until, at)
            and r.remaining_count > 0
            and r.open_to(segments, lifecycle_stage)  # None, None: only rights open to everyone
        )


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Snapshot(Generic[T]):
    """One immutable snapshot of a hub and when (monotonic seconds) it was fetched."""

    data: T
    fetched_at: float


@dataclass(slots=True)
class HubState(Generic[T]):
    """The last good snapshot of one hub and the outcome of its latest refresh."""

    name: str
    snapshot: Snapshot[T] | None = None
    last_error: str | None = None
    failures: int = 0

    def age(self, now: float) -> float | None:
        return None if self.snapshot is None else now - self.snapshot.fetched_at


ContentIndex = Mapping[tuple[str, str], tuple[ContentEntry, ...]]
Catalogue = Mapping[str, CatalogueProduct]


def build_content_index(items: Sequence[ContentWire]) -> ContentIndex:
    """(product id, channel) → the approved variants, ordered by content id (deterministic)."""
    index: dict[tuple[str, str], list[ContentEntry]] = {}
    for item in sorted(items, key=lambda i: (i.content_id, i.version)):
        if item.status != "approved" or item.product_id is None:
            continue
        for channel, variant in sorted(item.variants.items()):
            if variant is None:
                continue
            entry = ContentEntry(
                content_id=item.content_id,
                version=item.version,
                product_id=item.product_id,
                right_id=item.right_id,
                channel=channel,
                segments=frozenset(item.segments),
                valid_from=item.valid_from,
                valid_until=item.valid_until,
                variant=MappingProxyType(dict(variant)),
            )
            index.setdefault((item.product_id, channel), []).append(entry)
    return MappingProxyType({key: tuple(entries) for key, entries in index.items()})


@dataclass(frozen=True, slots=True)
class RefreshReport:
    """Which hubs refreshed and which failed (with the error type)."""

    refreshed: tuple[str, ...]
    failed: Mapping[str, str] = field(default_factory=dict)


class HubCache:
    """The three hub snapshots, refreshed in the background, read lock-free by decisions."""

    PRODUCTS: Final = "product-hub"
    CONTENT: Final = "content-hub"
    RIGHTS: Final = "rights-hub"

    def __init__(
        self,
        products: ProductSource,
        content: ContentSource,
        rights: RightsSource,
        config: HubCacheConfig | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.config = config or HubCacheConfig()
        self._products_source = products
        self._content_source = content
        self._rights_source = rights
        self._clock = clock
        self._now = now
        self._products: HubState[Catalogue] = HubState(self.PRODUCTS)
        self._content: HubState[ContentIndex] = HubState(self.CONTENT)
        self._rights: HubState[tuple[RightEntry, ...]] = HubState(self.RIGHTS)
        self._task: asyncio.Task[None] | None = None

    # --- refreshing ---

    async def refresh(self) -> RefreshReport:
        """Fetch all three hubs concurrently; publish each snapshot that came back whole."""
        started = self._clock()
        results = await asyncio.gather(
            self._products_source.active_products(),
            self._content_source.approved_content(),
            self._rights_source.affordable_rights(),
            return_exceptions=True,
        )
        refreshed: list[str] = []
        failed: dict[str, str] = {}
        products, content, rights = results
        if self._publish(self._products, products, started, _build_catalogue):
            refreshed.append(self.PRODUCTS)
        if self._publish(self._content, content, started, build_content_index):
            refreshed.append(self.CONTENT)
        if self._publish(self._rights, rights, started, _build_rights):
            refreshed.append(self.RIGHTS)
        for state in (self._products, self._content, self._rights):
            if state.name not in refreshed and state.last_error is not None:
                failed[state.name] = state.last_error
        return RefreshReport(tuple(refreshed), MappingProxyType(failed))

    def _publish(
        self,
        state: HubState[Any],
        result: object,
        started: float,
        build: Callable[[Any], Any],
    ) -> bool:
        if isinstance(result, BaseException):
            if not isinstance(result, Exception):  # CancelledError, KeyboardInterrupt: not ours to eat
                raise result
            state.failures += 1
            state.last_error = type(result).__name__
            log.warning("hub_cache_refresh_failed", hub=state.name, error_type=state.last_error)
            return False
        try:
            data = build(result)
        except Exception as exc:  # a shape we cannot index is a failed refresh, not a crash
            state.failures += 1
            state.last_error = type(exc).__name__
            log.error("hub_cache_build_failed", hub=state.name, error_type=state.last_error)
            return False
        previous = state.snapshot
        if previous is not None and data == previous.data:
            # Unchanged: keep the same object, so what is built per snapshot (the candidate generator,
            # the catalogue snapshot's hash, cached CF scores) is not rebuilt every refresh.
            data = previous.data
        # The snapshot's age counts from when the fetch started: what it says was true by then.
        state.snapshot = Snapshot(data, started)  # one reference assignment: the atomic swap
        state.last_error = None
        state.failures = 0
        return True

    async def run(self) -> None:
        """Refresh every ``ttl_s`` until cancelled; a failing hub never stops the loop."""
        while True:
            try:
                await self.refresh()
            except Exception as exc:  # pragma: no cover - refresh already isolates hub failures
                log.error("hub_cache_refresh_crashed", error_type=type(exc).__name__)
            await asyncio.sleep(self.config.ttl_s)

    async def start(self) -> None:
        """Load the first snapshots (failures tolerated), then refresh in a background task."""
        if self._task is not None:
            return
        await self.refresh()

        async def loop() -> None:
            await asyncio.sleep(self.config.ttl_s)
            await self.run()

        self._task = asyncio.create_task(loop(), name="hub-cache-refresh")

    async def stop(self) -> None:
        """Cancel the background refresh."""
        task, self._task = self._task, None
        await cancel(task)

    # --- reading (lock-free: one reference read per snapshot) ---

    def _fresh(self, state: HubState[T]) -> T | None:
        snapshot = state.snapshot
        if snapshot is None or self._clock() - snapshot.fetched_at > self.config.max_staleness_s:
            return None
        return snapshot.data

    @property
    def catalogue(self) -> Catalogue:
        """The last good catalogue snapshot, even when stale (then degraded); empty if never loaded."""
        snapshot = self._products.snapshot
        return MappingProxyType({}) if snapshot is None else snapshot.data

    def product(self, product_id: str) -> CatalogueProduct | None:
        """One active product of the catalogue snapshot."""
        return self.catalogue.get(product_id)

    def offer_sources(self, at: datetime | None = None) -> OfferSources:
        """The content index and rights list one decision reads, each None when unavailable (never
        loaded, or older than the staleness bound), with their window epoch at ``at``."""
        at = at or self._now()
        content = self._fresh(self._content)
        rights = self._fresh(self._rights)
        return OfferSources(content, rights, at, (window_epoch(content, at), window_epoch(rights, at)))

    def content_for(
        self,
        product_id: str,
        channel: str,
        *,
        at: datetime | None = None,
        segments: frozenset[str] | None = None,
    ) -> tuple[ContentEntry, ...]:
        """Approved variants of ``product_id`` for ``channel``, in window at ``at``, targeting ``segments``.

        Empty when the content index is unavailable (never loaded, or older than the staleness bound).
        """
        return self.offer_sources(at).content_for(product_id, channel, segments)

    def affordable_rights(
        self,
        *,
        at: datetime | None = None,
        segments: frozenset[str] | None = None,
        lifecycle_stage: str | None = None,
    ) -> tuple[RightEntry, ...]:
        """Rights affordable at the last refresh, in window at ``at``, open to the customer.

        Empty when the rights list is unavailable. ``segments=None`` and ``lifecycle_stage=None``
        (non-personalised): only rights limited to no segment and no lifecycle stage.
        """
        return self.offer_sources(at).affordable_rights(segments, lifecycle_stage)

    def candidate_product(
        self,
        product: CatalogueProduct,
        channel: str,
        *,
        at: datetime | None = None,
        segments: frozenset[str] | None = None,
        right_affordable: bool | None = None,
        contents: Sequence[ContentEntry] | None = None,
    ) -> CandidateProduct:
        """The policy engine's view of ``product`` for a request in ``channel``.

        ``contents``: the caller's own :meth:`content_for` answer for the same product, channel, time
        and segments, so the hot path looks the content index up once per candidate.
        """
        if contents is None:
            contents = self.content_for(product.product_id, channel, at=at, segments=segments)
        return policy_view(product, content_approved=bool(contents), right_affordable=right_affordable)

    @property
    def degraded_reasons(self) -> tuple[str, ...]:
        """Stable codes of what is degraded now, in a fixed order; empty when all is fresh."""
        now = self._clock()
        bound = self.config.max_staleness_s
        reasons: list[str] = []
        products_age = self._products.age(now)
        if products_age is None:
            reasons.append("product_catalogue_missing")
        elif products_age > bound:
            reasons.append("product_catalogue_stale")
        content_age = self._content.age(now)
        if content_age is None or content_age > bound:
            reasons.append("content_index_unavailable")
        rights_age = self._rights.age(now)
        if rights_age is None or rights_age > bound:
            reasons.append("rights_unavailable")
        return tuple(reasons)

    @property
    def degraded(self) -> bool:
        """Whether any snapshot is missing or beyond the staleness bound."""
        return bool(self.degraded_reasons)

    def status(self) -> dict[str, dict[str, object]]:
        """Per hub: snapshot age in seconds (None if never loaded), consecutive failures, last error."""
        now = self._clock()
        return {
            s.name: {"age_s": s.age(now), "failures": s.failures, "last_error": s.last_error}
            for s in (self._products, self._content, self._rights)
        }


def _build_catalogue(items: Sequence[ProductWire]) -> Catalogue:
    active = sorted((p for p in items if p.status == "active"), key=lambda p: p.product_id)
    return MappingProxyType({p.product_id: CatalogueProduct.from_wire(p) for p in active})


def _build_rights(items: Sequence[RightWire]) -> tuple[RightEntry, ...]:
    return tuple(
        RightEntry(
            right_id=r.right_id,
            name=r.name,
            right_type=r.right_type,
            segments=frozenset(r.segments),
            lifecycle_stages=frozenset(r.lifecycle_stages),
            valid_from=r.valid_from,
            valid_until=r.valid_until,
            unit_cost_fen=r.unit_cost_fen,
            remaining_count=r.remaining_count,
        )
        for r in sorted(items, key=lambda r: r.right_id)
        if r.status == "active"
    )
