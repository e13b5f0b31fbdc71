"""The customer context of a decision: profile facts and consents, plus Feast online features.

Where each part comes from:

- **facts and consents** (eligibility facts incl. holdings and risk assessment, per-channel consent,
  the personalised opt-out) from the profile service, the system of record;
- **features** (``customer_profile`` and ``customer_activity`` views) from the shared Feast online
  store, with their event timestamps. Feast does not apply a view's TTL to online reads, so every use
  checks freshness here (:func:`qianmian_features.check_freshness`): a stale or missing feature is
  reported, and the decision switches to the fallback path.

Both are held in a per-customer in-memory cache, because two HTTP calls to profile and a Feast read
per request would cost most of the decision's budget:

- a profile entry is used only while the **change feed** of profile (``GET /v1/changes``) has been
  read successfully within ``max_feed_lag_s``: every consent, risk, holdings, moment or contact
  change of a customer evicts their entry within one poll (``change_poll_s``). When the feed cannot
  be read, the cache is bypassed and every decision reads profile directly, so a consent withdrawal
  is never served from memory for longer than ``max_feed_lag_s`` + ``change_poll_s``. Entries also
  expire after ``profile_ttl_s`` whatever the feed says.
- feature entries expire after ``feature_ttl_s``; ``0`` reads Feast on every request (the "naive"
  variant of ``bench/decisions``). Freshness is checked on every use, cached or not, against the
  decision time, so caching can never make a stale value look fresh.

Concurrent requests for the same uncached customer share one read (single flight).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final, Protocol

from prometheus_client import Counter, Gauge
from pydantic import BaseModel, ConfigDict, Field
from qianmian_core.clients import ServiceClient
from qianmian_core.errors import DependencyUnavailableError
from qianmian_core.logging import get_logger
from qianmian_core.memo import BoundaryEpochs, IdentityMemo
from qianmian_features.freshness import FeatureValue, check_freshness, view_of

from recommender.bounds import WARM_ENTRIES
from recommender.service.profile import ProfileSource, ProfileUnavailableError, ProfileView
from recommender.service.tasks import cancel

log = get_logger(__name__)

#: Consent changes handed to ``on_consent`` per poll of the change feed (the rest wait for the next).
CONSENT_CHECKS_PER_POLL: Final = 200

#: The customer feature views a decision reads (``view:feature`` references are built from them).
CUSTOMER_VIEWS: Final[tuple[str, ...]] = ("customer_profile", "customer_activity")

CONTEXT_READS: Final = Counter(
    "qianmian_context_reads_total",
    "Customer context reads by part (profile, features) and where the answer came from",
    ["part", "source"],
)
#: Each (part, source) series, bound once (``labels`` per read cost 2 % of a warm decision).
_READS: Final = {
    (part, source): CONTEXT_READS.labels(part=part, source=source)
    for part, sources in (
        ("profile", ("cache", "remote", "error")),
        ("features", ("cache", "remote", "error", "none")),
    )
    for source in sources
}
FEED_LAG: Final = Gauge(
    "qianmian_context_change_feed_lag_seconds",
    "Seconds since profile's change feed was last read successfully (cache bypassed beyond the bound)",
)
FEATURE_FRESHNESS: Final = Counter(
    "qianmian_feature_freshness_failures_total",
    "Decisions whose Feast features were stale or missing, by view and kind",
    ["view", "kind"],
)
for _view in CUSTOMER_VIEWS:
    for _kind in ("stale", "missing"):
        FEATURE_FRESHNESS.labels(view=_view, kind=_kind)


class FeatureReader(Protocol):
    """Reads online features of customers with their event timestamps (blocking; run in a thread)."""

    @property
    def ttl_by_view(self) -> Mapping[str, timedelta]: ...

    def read(self, customer_ids: Sequence[str]) -> dict[str, dict[str, FeatureValue]]: ...


class FeastFeatureReader:
    """Online values of :data:`CUSTOMER_VIEWS` from Feast (store opened lazily).

    ``sdk=False`` (the default) reads the online store's rows directly with the views resolved once a
    minute (:class:`qianmian_features.online.OnlineReader`: the SDK's values at about a tenth of its
    work for a batch); ``sdk=True`` calls the SDK's ``get_online_features`` every time.
    """

    def __init__(self, store: Any | None = None, *, sdk: bool = False) -> None:
        self._store = store
        self.sdk = sdk
        self._refs: list[str] = []
        self._ttl: dict[str, timedelta] = {}
        self._reader: Any | None = None

    def open(self) -> None:
        """Open the store and read the views' schemas and TTLs from its registry (blocking, seconds)."""
        from qianmian_features import feature_refs, open_store, ttl_by_view
        from qianmian_features.online import OnlineReader

        if self._store is None:
            self._store = open_store()
        self._refs = feature_refs(self._store, CUSTOMER_VIEWS)
        ttl = ttl_by_view(self._store)
        self._ttl = {view: ttl[view] for view in CUSTOMER_VIEWS}
        if not self.sdk:
            self._reader = OnlineReader(self._store, "customer_id", self._refs)

    @property
    def ttl_by_view(self) -> Mapping[str, timedelta]:
        return self._ttl

    def read(self, customer_ids: Sequence[str]) -> dict[str, dict[str, FeatureValue]]:
        from qianmian_features import online_features

        if not self._refs:
            self.open()
        assert self._store is not None
        if self._reader is not None:
            result: dict[str, dict[str, FeatureValue]] = self._reader.read(customer_ids)
            return result
        return online_features(self._store, list(customer_ids), self._refs)


@dataclass(frozen=True, slots=True)
class FeatureSnapshot:
    """One customer's features as a decision sees them at its time."""

    fresh: Mapping[str, Any]
    #: ``view:feature`` references that were missing or stale at the decision time.
    missing: tuple[str, ...]
    #: Event timestamp of each view's row (ISO 8601), None when the store had no row.
    timestamps: Mapping[str, str | None]
    #: Degraded reasons: ``features_missing`` (no row at all) or ``features_stale`` (past the TTL).
    problems: tuple[str, ...]

    def get(self, name: str, default: Any = None) -> Any:
        """A fresh value by ``view:feature`` (the default when missing or stale)."""
        return self.fresh.get(name, default)

    def as_json(self) -> dict[str, Any]:
        """What the audit record keeps: fresh values, missing references, row timestamps."""
        return {
            "values": dict(self.fresh),
            "missing": list(self.missing),
            "event_timestamps": dict(self.timestamps),
        }


UNREAD_FEATURES: Final[FeatureSnapshot] = FeatureSnapshot({}, (), {}, ("features_unavailable",))


def view_timestamps(raw: Mapping[str, FeatureValue]) -> dict[str, str | None]:
    """The newest event timestamp (ISO) of each view's values in ``raw``; None for a view without."""
    newest: dict[str, datetime | None] = {}
    for ref, value in raw.items():
        view = ref.partition(":")[0]
        stamp = value.event_timestamp
        if stamp is not None:
            held = newest.get(view)
            if held is None or stamp > held:
                newest[view] = stamp
        elif view not in newest:
            newest[view] = None
    # formatted once per view, not once per value
    return {view: None if stamp is None else stamp.isoformat() for view, stamp in newest.items()}


def snapshot_features(
    raw: Mapping[str, FeatureValue],
    ttl_by_view: Mapping[str, timedelta],
    at: datetime,
    timestamps: Mapping[str, str | None] | None = None,
    *,
    keep: bool = False,
) -> FeatureSnapshot:
    """Check ``raw`` values' freshness at ``at`` and say what is wrong, per view.

    ``timestamps``: ``view_timestamps(raw)`` when the caller keeps it with a cached ``raw``.
    ``keep``: ``raw`` is a cached read that later decisions use again (never modified): its snapshot
    is kept per freshness epoch (:func:`_freshness_epoch`), so it is checked once, not per decision.
    """
    if keep:
        snapshot = _SNAPSHOTS.get((raw, ttl_by_view), _freshness_epoch(raw, ttl_by_view, at))
        if snapshot is None:
            snapshot = _snapshot(raw, ttl_by_view, at, timestamps)
            _SNAPSHOTS.put((raw, ttl_by_view), _freshness_epoch(raw, ttl_by_view, at), snapshot)
    else:
        snapshot = _snapshot(raw, ttl_by_view, at, timestamps)
    for view, kind in _problem_views(snapshot.missing, snapshot.timestamps):
        FEATURE_FRESHNESS.labels(view=view, kind=kind).inc()
    return snapshot


_NO_TTL: Final = timedelta(0)
#: Feature snapshots of cached reads per freshness epoch, and the reads' staleness boundaries.
_SNAPSHOTS: IdentityMemo[FeatureSnapshot] = IdentityMemo(WARM_ENTRIES)
_STALE_AFTER = BoundaryEpochs(WARM_ENTRIES, inclusive=False)


def _freshness_epoch(
    raw: Mapping[str, FeatureValue], ttl_by_view: Mapping[str, timedelta], at: datetime
) -> int:
    """How many of ``raw``'s staleness boundaries (event time + the view's TTL) lie before ``at``.

    ``check_freshness`` finds a value stale exactly when ``at`` is past its boundary, so two moments
    with the same epoch split ``raw`` into the same fresh values and missing references.
    """

    def deadlines() -> Iterable[datetime | None]:
        for ref, feature in raw.items():
            stamp = feature.event_timestamp
            if stamp is not None:
                ttl = ttl_by_view.get(view_of(ref))
                if ttl is not None and ttl > _NO_TTL:  # none or zero: the view never goes stale
                    yield stamp + ttl

    return _STALE_AFTER.epoch((raw, ttl_by_view), at, deadlines)


def _snapshot(
    raw: Mapping[str, FeatureValue],
    ttl_by_view: Mapping[str, timedelta],
    at: datetime,
    timestamps: Mapping[str, str | None] | None,
) -> FeatureSnapshot:
    fresh, missing = check_freshness(raw, ttl_by_view, at)
    if timestamps is None:
        timestamps = view_timestamps(raw)
    problems = [f"features_{kind}" for _, kind in _problem_views(missing, timestamps)]
    return FeatureSnapshot(fresh, tuple(missing), timestamps, tuple(dict.fromkeys(problems)))


def _problem_views(missing: Sequence[str], timestamps: Mapping[str, str | None]) -> list[tuple[str, str]]:
    """Each view with missing references and whether its row is ``missing`` or ``stale``."""
    if not missing:
        return []
    return [
        (view, "missing" if timestamps.get(view) is None else "stale")
        for view in sorted({ref.partition(":")[0] for ref in missing})
    ]


class ChangeWire(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    seq: int
    customer_id: str
    #: ``consent``, ``risk``, ``moment``, ``contact`` … (profile's change kinds; empty from old feeds).
    kind: str = ""
    at: datetime | None = None


class ChangesWire(BaseModel):
    """profile's ``GET /v1/changes`` page."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    changes: list[ChangeWire]
    next_after: int
    head: int


class ChangeFeedClient(ServiceClient):
    """Reads profile's change feed: which customers changed after a sequence number."""

    service = "profile"
    unavailable_error = ProfileUnavailableError
    default_timeout_s = 0.5

    async def changes(self, after: int, limit: int = 1000) -> ChangesWire:
        return await self._client.get_model(f"/v1/changes?after={after}&limit={limit}", ChangesWire)


class ChangeSource(Protocol):
    async def changes(self, after: int, limit: int = 1000) -> ChangesWire: ...


class ContextConfig(BaseModel):
    """How long context parts may be served from memory."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    profile_ttl_s: float = Field(default=300.0, ge=0, description="Upper bound on a cached profile entry")
    feature_ttl_s: float = Field(
        default=30.0, ge=0, description="Cached Feast features; 0 reads Feast on every decision"
    )
    change_poll_s: float = Field(default=1.0, gt=0, le=60, description="Change-feed poll interval")
    max_feed_lag_s: float = Field(
        default=5.0, gt=0, le=300, description="Beyond this, the profile cache is bypassed"
    )
    max_entries: int = Field(
        default=50_000, ge=1, description="Customers held in memory (a few KB each: ~250 MB at the bound)"
    )
    #: The feed re-reads this many sequence numbers below its cursor: on PostgreSQL a sequence value
    #: can commit after a higher one, and an extra eviction costs nothing.
    feed_overlap: int = Field(default=64, ge=0)


@dataclass(slots=True)
class _Entry:
    profile: ProfileView | None = None
    profile_at: float = -1.0
    features: dict[str, FeatureValue] | None = None
    features_at: float = -1.0
    #: ``view_timestamps(features)``, made once per read.
    stamps: Mapping[str, str | None] | None = None
    #: Bumped by every eviction: a read that started before it must not be stored.
    generation: int = 0


@dataclass(frozen=True, slots=True)
class CustomerContextView:
    """What one decision knows about the customer."""

    profile: ProfileView | None
    features: FeatureSnapshot
    #: Degraded reasons (``profile_unavailable``, ``features_missing`` …), empty when all is well.
    degraded: tuple[str, ...] = ()
    sources: Mapping[str, str] = field(default_factory=dict)

    @property
    def features_kept(self) -> bool:
        """Whether the features came from the cache: their snapshot is kept and seen again, so what
        is derived from it may be kept with it."""
        return self.sources.get("features") == "cache"


class CustomerContextSource:
    """Per-customer cache of profile facts/consents and Feast features (see the module docstring)."""

    def __init__(
        self,
        profile: ProfileSource,
        features: FeatureReader | None,
        *,
        changes: ChangeSource | None = None,
        config: ContextConfig | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_consent: Callable[[str, datetime | None], Awaitable[None]] | None = None,
    ) -> None:
        self.profile = profile
        #: Awaited once per ``consent`` change of the feed (e.g. to record experiment opt-outs).
        self.on_consent = on_consent
        self._consent_seqs: OrderedDict[int, None] = OrderedDict()
        #: Consent changes waiting for ``on_consent``: at most CONSENT_CHECKS_PER_POLL each poll, so a
        #: bulk consent update never holds up the feed (and the evictions it carries).
        self._consents: deque[ChangeWire] = deque(maxlen=100_000)
        self.features = features
        self.changes = changes
        self.config = config or ContextConfig()
        self._clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._inflight: dict[tuple[str, str], asyncio.Future[Any]] = {}
        self._cursor: int | None = None
        self._feed_ok_at: float | None = None
        self._task: asyncio.Task[None] | None = None

    # -- change feed -------------------------------------------------------------------------------

    @property
    def feed_healthy(self) -> bool:
        """Whether cached profile entries may be used now."""
        if self.changes is None:
            return self.config.profile_ttl_s > 0
        if self._feed_ok_at is None:
            return False
        lag = self._clock() - self._feed_ok_at
        FEED_LAG.set(lag)
        return lag <= self.config.max_feed_lag_s

    async def poll_once(self) -> int:
        """Read the change feed once and evict the customers it names; returns evictions."""
        if self.changes is None:
            return 0
        evicted = 0
        if self._cursor is None:  # start at the head: nothing is cached yet
            page = await self.changes.changes(0, 1)
            self._cursor = page.head
            self._feed_ok_at = self._clock()
            return 0
        after = max(0, self._cursor - self.config.feed_overlap)
        while True:
            page = await self.changes.changes(after, 1000)
            for change in page.changes:
                evicted += self.evict(change.customer_id)
                if change.kind == "consent" and change.seq not in self._consent_seqs:
                    self._consent_seqs[change.seq] = None  # the overlap re-reads changes: once each
                    self._consents.append(change)
            after = page.next_after
            self._cursor = max(self._cursor, page.next_after)
            if not page.changes or page.next_after >= page.head:
                break
        self._feed_ok_at = self._clock()
        while len(self._consent_seqs) > 200_000:
            self._consent_seqs.popitem(last=False)
        for _ in range(min(len(self._consents), CONSENT_CHECKS_PER_POLL)):
            await self._consent_changed(self._consents.popleft())
        return evicted

    async def _consent_changed(self, change: ChangeWire) -> None:
        if self.on_consent is None:
            return
        try:
            await self.on_consent(change.customer_id, change.at)
        except Exception as exc:  # the feed goes on; the handler logs what it could not do
            log.warning("consent_change_not_handled", error_type=type(exc).__name__)

    async def _follow(self) -> None:
        while True:
            try:
                await self.poll_once()
            except DependencyUnavailableError as exc:
                log.warning("change_feed_unavailable", error=exc.code)
            except Exception as exc:  # keep following; the lag bound makes the cache fail safe
                log.error("change_feed_failed", error_type=type(exc).__name__)
            await asyncio.sleep(self.config.change_poll_s)

    async def start(self) -> None:
        """Open the feature store (in a thread) and start following the change feed."""
        opener = getattr(self.features, "open", None)
        if callable(opener):
            try:
                await asyncio.to_thread(opener)
            except Exception as exc:  # decisions fall back until the store can be read
                log.error("feature_store_open_failed", error_type=type(exc).__name__)
        if self.changes is not None and self._task is None:
            self._task = asyncio.create_task(self._follow(), name="context-change-feed")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel(task)

    # -- cache -------------------------------------------------------------------------------------

    def evict(self, customer_id: str) -> int:
        """Forget what is held for a customer (a change happened); 1 when something was held."""
        entry = self._entries.get(customer_id)
        if entry is None:
            return 0
        entry.profile = None
        entry.features = entry.stamps = None
        entry.generation += 1
        return 1

    def clear(self) -> None:
        for customer_id in list(self._entries):
            self.evict(customer_id)

    def _entry(self, customer_id: str) -> _Entry:
        entry = self._entries.get(customer_id)
        if entry is None:
            entry = self._entries[customer_id] = _Entry()
            while len(self._entries) > self.config.max_entries:
                self._entries.popitem(last=False)
        else:
            self._entries.move_to_end(customer_id)
        return entry

    async def _single_flight(self, key: tuple[str, str], load: Callable[[], Awaitable[Any]]) -> Any:
        running = self._inflight.get(key)
        if running is not None:
            return await asyncio.shield(running)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            result = await load()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it, nobody else must
            raise
        else:
            future.set_result(result)
            return result
        finally:
            del self._inflight[key]

    async def _profile(self, customer_id: str) -> tuple[ProfileView, str]:
        cached = self._cached_profile(customer_id)
        if cached is not None:
            return cached, "cache"
        entry = self._entry(customer_id)
        generation = entry.generation

        async def load() -> ProfileView:
            return await self.profile.customer(customer_id)

        view: ProfileView = await self._single_flight(("profile", customer_id), load)
        if entry.generation == generation and self.config.profile_ttl_s > 0:
            entry.profile, entry.profile_at = view, self._clock()
        return view, "remote"

    async def _features(
        self, customer_id: str
    ) -> tuple[dict[str, FeatureValue], str, Mapping[str, str | None]]:
        assert self.features is not None
        reader = self.features
        entry = self._entry(customer_id)
        now = self._clock()
        if entry.features is not None and now - entry.features_at <= self.config.feature_ttl_s:
            if entry.stamps is None:
                entry.stamps = view_timestamps(entry.features)
            return entry.features, "cache", entry.stamps
        generation = entry.generation

        async def load() -> dict[str, FeatureValue]:
            rows = await asyncio.to_thread(reader.read, [customer_id])
            return rows.get(customer_id, {})

        raw: dict[str, FeatureValue] = await self._single_flight(("features", customer_id), load)
        stamps = view_timestamps(raw)
        if entry.generation == generation and self.config.feature_ttl_s > 0:
            entry.features, entry.features_at, entry.stamps = raw, self._clock(), stamps
        return raw, "remote", stamps

    def _cached_profile(self, customer_id: str) -> ProfileView | None:
        """The customer's profile view when the cache may serve it (the feed is healthy and the view
        younger than the profile TTL), else None."""
        entry = self._entries.get(customer_id)
        if entry is None or not self.feed_healthy or entry.profile is None:
            return None
        self._entries.move_to_end(customer_id)
        return entry.profile if self._clock() - entry.profile_at <= self.config.profile_ttl_s else None

    async def customer(self, customer_id: str, at: datetime) -> CustomerContextView:
        """Profile view and feature snapshot at ``at``; a missing customer raises the profile's 404."""
        cached = self._cached_profile(customer_id)
        # Profile is read beside the features only when it must be fetched (a task costs more than
        # the rest of a cached read).
        profile_task = None if cached is not None else asyncio.ensure_future(self._profile(customer_id))
        degraded: list[str] = []
        sources: dict[str, str] = {}
        features = UNREAD_FEATURES
        if self.features is None:
            sources["features"] = "none"
        else:
            try:
                raw, sources["features"], stamps = await self._features(customer_id)
                features = snapshot_features(
                    raw, self.features.ttl_by_view, at, stamps, keep=sources["features"] == "cache"
                )
            except Exception as exc:  # Feast/Redis down: fallback path, counted
                log.warning("features_unavailable", error_type=type(exc).__name__)
                sources["features"] = "error"
        _READS["features", sources["features"]].inc()
        degraded.extend(features.problems)
        profile: ProfileView | None
        try:
            if profile_task is None:
                profile, sources["profile"] = cached, "cache"
            else:
                profile, sources["profile"] = await profile_task
        except DependencyUnavailableError:
            profile, sources["profile"] = None, "error"
            degraded.insert(0, "profile_unavailable")
        _READS["profile", sources["profile"]].inc()
        return CustomerContextView(profile, features, tuple(degraded), sources)


__all__ = [
    "CUSTOMER_VIEWS",
    "ChangeFeedClient",
    "ChangeSource",
    "ContextConfig",
    "CustomerContextSource",
    "CustomerContextView",
    "FeastFeatureReader",
    "FeatureReader",
    "FeatureSnapshot",
    "snapshot_features",
]
