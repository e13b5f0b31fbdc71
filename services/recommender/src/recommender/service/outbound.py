"""Outbound lists (batch mode): push/SMS campaigns and remote-banking call lists with call scripts.

``POST /v1/outbound/lists`` builds a list in one request and answers when its file is ready. Every
row is an ordinary decision, made by the live path's own code on the same inputs, so the rules that
never bend hold for lists exactly as for ``POST /v1/decisions``:

1. **Request.** ``channel`` (push, sms, remote_agent); optional ``segments`` (customers in any of
   them; all customers when empty); optional scope ``product_ids`` / ``product_types`` (only the
   products they name may be offered: the union of both; the whole active catalogue when both are
   empty; an unknown product id, or a scope with no product sold in the channel, is a 422);
   ``max_contacts``; optional ``rights_budget_fen``; for ``remote_agent`` the required
   ``agent_capacity_per_day`` and ``days``; optional ``start_date`` and ``scheduled_at``.
2. **Schedule.** ``scheduled_at`` is when the list is sent (push/SMS) or its calls start
   (remote_agent). Default: the next 10:00 in the bank's time zone (Asia/Shanghai) on or after
   ``start_date``, or now when ``start_date`` is today and 10:00 has passed. A time in the quiet
   hours of the channel (21:00-08:00) or in the past is a 422; so is a ``start_date`` on another day
   than ``scheduled_at``. ``start_date`` defaults to the day of ``scheduled_at``. Every rule is
   evaluated at ``scheduled_at``, the time of the contact: quiet hours, caps and cool-downs, sale
   and content windows, the validity of the risk assessment.
3. **Scan.** Profile's customers page by page (``GET /v1/customers/facts``, in customer id order,
   one scan per segment, each customer once) with their eligibility facts and consents; per page
   one query reads every customer's contact windows and cool-downs from the recommender's database,
   and one Feast read (:meth:`FeastFeatureReader.read`) their online features, whose freshness is
   checked at ``scheduled_at`` as a live decision checks it.
4. **Per customer**, as :class:`~recommender.service.decisions.DecisionService` does for one: the
   same :class:`CustomerContext`; the mode (opt-out → ``non_personalised``, ranked by segment-free
   popularity only; stale or missing features, a degraded hub or no model → ``fallback``); the
   candidates of :class:`CandidateGenerator` over the scope's products (the CF stage scores the
   page's customers in one model call, :meth:`CandidateGenerator.cf_batch`); each candidate's
   content and right from the hub caches; then the pure pipeline
   (:func:`recommender.service.pipeline.rank` with ``limit=1``): every policy on every candidate,
   arbitration, the best offer and its priority. A customer without an offer is counted under one
   reason code (``excluded``): a request-wide one when it failed (``quiet_hours``, ``cap_weekly_push``
   …), else ``consent_refused`` when the channel has no consent, else a code every candidate failed
   on (in rule order), ``no_candidates`` when the scope has nothing on sale, else
   ``no_allowed_offer``. Customers no product of the scope can reach are found before their
   features are read (the verdicts do not depend on features), by the same policy functions.
5. **Selection.** The offers by priority (ties by customer id), at most ``max_contacts`` rows and,
   for remote_agent, at most ``agent_capacity_per_day × days``: row ``i`` is called on
   ``start_date + i // capacity`` at the time of day of ``scheduled_at``, and its offer is checked
   again at that time with the same policies (a risk assessment that expires before the call, a sale
   or content window that closes) or the customer is left out (the code of the failed rule).
   Customers beyond the bounds are ``over_max_contacts`` / ``over_agent_capacity``.
6. **Rights.** In row order, each row's right costs its ``unit_cost_fen``; a row whose right would
   take the list beyond ``rights_budget_fen``, or beyond the right's remaining count, keeps its
   product and loses the right: the pipeline is run again with that right unaffordable, so the
   audit record says ``right_unaffordable`` exactly as a live decision would.
7. **Text.** content-hub renders each content item of the list once for the channel
   (non-personalised: neutral salutation, product facts filled, the SMS signature and opt-out, the
   agent script's risk statement); a row whose content can no longer be rendered, or is rendered
   at another version than the decision chose, is left out (``content_not_renderable``,
   ``content_changed``).
8. **Contact slots and audit.** In batches of ``outbound_batch_size`` rows, in ONE transaction per
   batch: :meth:`ContactRepository.reserve_many` takes the rows' contact slots (the exact caps, as a
   live decision's ``reserve``) and the granted rows' audit records are inserted. A refused slot (a
   contact made meanwhile) drops its row (its cap code is counted). Rows dropped after the call
   dates were given out (steps 7 and 8) leave their call unused: a day never gets more calls than
   the capacity, and the file's row numbers stay consecutive. Each row's audit record is a
   decision like a live one (mode, inputs, every candidate with its rule outcomes, the response, the
   catalogue snapshot), ``placement = outbound_list``, ``created_at = scheduled_at`` (the time it
   was decided for, so replay re-runs it as made, and feedback after the contact is accepted); its
   request names the list, the contact time and the call date. ``GET /v1/decisions/{id}`` and
   ``POST /v1/feedback`` work for every row.
9. **File.** A CSV (UTF-8 with BOM, for Excel) under ``outbound_dir``: row, customer_id,
   decision_id, product_id, product_name, product_type, risk_rating, content_id, content_version,
   ``message`` (push/SMS) or ``call_script`` (remote_agent), right_id, right_type, right_cost_fen,
   score, call_date, reason_codes, explanation_zh. Customers appear by pseudonymous id only: the
   agent system joins names and phone numbers on its side.

Lists are built one at a time per process (a second request waits), and the metadata lives in
``outbound_lists``: ``building`` while the request runs, then ``ready`` or ``failed``.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import gc
import os
import time
from collections import Counter
from collections.abc import AsyncGenerator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, TypeVar
from zoneinfo import ZoneInfo

import orjson
from prometheus_client import Counter as PromCounter
from qianmian_core.errors import DependencyUnavailableError, NotFoundError, UnprocessableError
from qianmian_core.ids import random_hex, time_ordered_hex
from qianmian_core.logging import get_logger
from qianmian_core.memo import transient
from qianmian_features.freshness import FeatureValue
from qianmian_rules import CustomerFacts
from sqlalchemy.exc import SQLAlchemyError

from recommender.ml.data import serving_feature_tokens
from recommender.repository.audit import AuditRecord, AuditRepository, inline_part
from recommender.repository.contacts import ContactRepository, ContactWindow, SlotRequest
from recommender.repository.outbound import OutboundListRecord, OutboundListRepository
from recommender.service.candidates import (
    Candidate,
    CandidateGenerator,
    CandidateSet,
    CustomerSignals,
    popularity_for,
)
from recommender.service.context import UNREAD_FEATURES, FeatureSnapshot, snapshot_features
from recommender.service.decisions import DecisionInput, DecisionService, profile_values
from recommender.service.hub_cache import CatalogueProduct, RightEntry
from recommender.service.outbound_sources import (
    ContentNotRenderableError,
    ContentRenderer,
    CustomerFactsWire,
    CustomerPages,
)
from recommender.service.pipeline import (
    OfferParts,
    PipelineOutcome,
    audit_candidates,
    bundles,
    context_from_json,
    context_to_json,
    policy_input,
    rank,
)
from recommender.service.policies import (
    CandidateVerdict,
    ContactRecord,
    ContactState,
    CustomerContext,
    DecisionRequest,
    Mode,
    evaluate_candidate,
    evaluate_policies,
    request_outcomes,
)

log = get_logger(__name__)

OUTBOUND_CHANNELS: Final[tuple[str, ...]] = ("push", "sms", "remote_agent")
#: The placement of every outbound decision (audit records, feedback).
OUTBOUND_PLACEMENT: Final[str] = "outbound_list"
#: The default send / call start time of day, in the bank's time zone.
DEFAULT_SEND_TIME: Final[dtime] = dtime(10, 0)
#: How far in the past an explicit ``scheduled_at`` may lie (clock skew of the caller).
SCHEDULE_SKEW: Final[timedelta] = timedelta(minutes=1)
#: Leave out customers no product of the scope can reach before reading their features
#: (``OutboundService._precheck``; it changes no row, only what is read).
PRECHECK: Final[bool] = True
#: The CSV's columns; the text column is ``message`` or ``call_script`` by channel.
CSV_COLUMNS: Final[tuple[str, ...]] = (
    "row",
    "customer_id",
    "decision_id",
    "product_id",
    "product_name",
    "product_type",
    "risk_rating",
    "content_id",
    "content_version",
    "{text}",
    "right_id",
    "right_type",
    "right_cost_fen",
    "score",
    "call_date",
    "reason_codes",
    "explanation_zh",
)

OUTBOUND_LISTS: Final = PromCounter(
    "qianmian_outbound_lists_total",
    "Outbound lists built, by channel and final status",
    ["channel", "status"],
)
OUTBOUND_ROWS: Final = PromCounter(
    "qianmian_outbound_rows_total", "Rows (decisions with a contact slot) of outbound lists", ["channel"]
)
for _channel in OUTBOUND_CHANNELS:
    OUTBOUND_ROWS.labels(channel=_channel)
    for _status in ("ready", "failed"):
        OUTBOUND_LISTS.labels(channel=_channel, status=_status)


class OutboundRequestError(UnprocessableError):
    """A well-formed list request that cannot be built as asked (422)."""

    code = "outbound_invalid"


class OutboundListNotFoundError(NotFoundError):
    code = "outbound_list_not_found"


class OutboundStoreUnavailableError(DependencyUnavailableError):
    """The recommender's database failed while the list was built (503; the list is ``failed``)."""

    code = "outbound_store_unavailable"


@dataclass(frozen=True, slots=True)
class OutboundSpec:
    """A validated list request (the API's body)."""

    name: str
    channel: str
    max_contacts: int
    segments: tuple[str, ...] = ()
    product_ids: tuple[str, ...] = ()
    product_types: tuple[str, ...] = ()
    rights_budget_fen: int | None = None
    agent_capacity_per_day: int | None = None
    days: int | None = None
    start_date: date | None = None
    scheduled_at: datetime | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "channel": self.channel,
            "segments": list(self.segments),
            "product_ids": list(self.product_ids),
            "product_types": list(self.product_types),
            "max_contacts": self.max_contacts,
            "rights_budget_fen": self.rights_budget_fen,
            "agent_capacity_per_day": self.agent_capacity_per_day,
            "days": self.days,
            "start_date": None if self.start_date is None else self.start_date.isoformat(),
            "scheduled_at": None if self.scheduled_at is None else self.scheduled_at.isoformat(),
        }


@dataclass(slots=True)
class _Scored:
    """A customer with an offer, kept small until selection: the row's audit parts as JSON bytes.

    A list may keep tens of thousands of these; as bytes they cost no garbage-collector scans.
    """

    priority: float
    customer_id: str
    mode: Mode
    model_version: str | None
    product_id: str
    #: The chosen bundle's content item and version (rendered once per list).
    content: tuple[str, int]
    #: ``{"features", "candidates", "response"}`` of the audit record (orjson).
    audit: bytes
    #: The chosen right, its unit cost and what was left of it when the customer was ranked.
    right_id: str | None = None
    right_cost_fen: int = 0
    right_remaining: int = 0
    #: ``{"candidates", "response"}`` of the same decision with the right unaffordable (over budget).
    without_right: bytes | None = None


@dataclass(slots=True)
class _Row:
    """A selected row before its contact slot is taken."""

    scored: _Scored
    contact_at: datetime
    call_date: date
    decision_id: str
    #: The right was over the list's budget: the row is the decision without it.
    right_dropped: bool
    right_cost_fen: int
    text: str = ""

    def audit(self) -> dict[str, Any]:
        """The audit record's parts, decoded (only a batch of rows at a time is held decoded)."""
        audit: dict[str, Any] = orjson.loads(self.scored.audit)
        if self.right_dropped:
            assert self.scored.without_right is not None
            audit.update(orjson.loads(self.scored.without_right))
        return audit


@dataclass(slots=True)
class _Run:
    """One list being built."""

    list_id: str
    spec: OutboundSpec
    at: datetime
    start_date: date
    catalogue: Mapping[str, CatalogueProduct]
    generator: CandidateGenerator
    request: DecisionRequest
    moment_request: DecisionInput
    degraded: tuple[str, ...]
    #: Every product of the scope on sale as a neutral candidate (the pre-check's probes), those sold
    #: in the channel first (they are the likelier to pass).
    probes: tuple[Candidate, ...]
    arbitration_json: dict[str, Any]
    policy_json: dict[str, Any]
    snapshot: str = ""
    scanned: int = 0
    excluded: Counter[str] = field(default_factory=Counter)
    seen: set[str] = field(default_factory=set)
    scored: list[_Scored] = field(default_factory=list)
    rights_cost_fen: int = 0
    #: Rows that lost their right to the list's rights budget or the right's remaining count.
    rights_dropped: int = 0
    written: int = 0


def _exclusion_code(
    reason_codes: Sequence[str],
    verdicts: Sequence[CandidateVerdict],
    dropped: Mapping[str, str] | None = None,
) -> str:
    """The one reason a customer got no offer (see the module docstring, step 4), from the pipeline's
    request-wide reason codes, every candidate's verdict and what arbitration dropped."""
    request_wide = [c for c in reason_codes if c != "contact_cap"] or list(reason_codes)
    if request_wide:
        return request_wide[0]
    if not verdicts:
        return "no_candidates"
    if not any(v.allowed for v in verdicts):
        first, *rest = (v.reason_codes for v in verdicts)
        shared = [code for code in first if all(code in other for other in rest)]
        # The customer's own refusal of the channel says more than a product rule they also fail.
        shared.sort(key=lambda code: code != "consent_refused")
        return shared[0] if shared else "no_allowed_offer"
    return next(iter((dropped or {}).values()), "no_allowed_offer")


def _excluded(outcome: PipelineOutcome) -> str:
    return _exclusion_code(outcome.reason_codes, outcome.policies.verdicts, outcome.arbitration.dropped)


@contextlib.contextmanager
def _fewer_collections() -> Iterator[None]:
    """Run the cyclic garbage collector less often while a list is built (restored afterwards).

    A list keeps a page of customers, their features and a batch of audit records alive for a
    second or more at a time; with CPython's default thresholds every such generation is promoted
    and then rescanned by full collections again and again, which measured as more than half of a
    list's CPU. Reference counting still frees everything acyclic at once; cycles wait a little.
    """
    old = gc.get_threshold()
    gc.set_threshold(max(old[0], 50_000), max(old[1], 20), max(old[2], 100))
    try:
        yield
    finally:
        gc.set_threshold(*old)


def _context(item: CustomerFactsWire, window: ContactWindow) -> CustomerContext:
    return CustomerContext(
        facts=item.facts,
        consents=MappingProxyType(dict(item.consents)),
        personalised_opt_out=not item.personalised,
        contact=ContactState(
            contacts=tuple(ContactRecord(channel=c, at=t) for c, t in window.decisions),
            cooldowns=window.cooldowns,
            shown=window.shown,
        ),
    )


T = TypeVar("T")


def _keeping_nothing(work: Callable[..., T], *args: Any) -> T:
    """``work(*args)`` keeping nothing in the decision path's memos (:func:`qianmian_core.memo.transient`):
    a list scores each customer once, and kept entries would evict what live decisions share."""
    with transient():
        return work(*args)


class OutboundService:
    """Builds outbound lists with the live decision path's own parts (see the module docstring)."""

    def __init__(
        self,
        *,
        decisions: DecisionService,
        pages: CustomerPages,
        renderer: ContentRenderer,
        outbound_dir: Path,
        page_size: int = 2000,
        batch_size: int = 500,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.decisions = decisions
        self.now = now
        self.database = decisions.database
        self.hub_cache = decisions.hub_cache
        self.policy = decisions.contact_policy
        self.pages = pages
        self.renderer = renderer
        self.outbound_dir = outbound_dir
        self.page_size = page_size
        self.batch_size = batch_size
        self._lock = asyncio.Lock()
        self._zone = ZoneInfo(self.policy.quiet_timezone)

    # -- the request ---------------------------------------------------------------------------

    def schedule(self, spec: OutboundSpec, now: datetime) -> tuple[datetime, date]:
        """``(scheduled_at, start_date)`` of a request at ``now`` (step 2 of the module docstring)."""
        today = now.astimezone(self._zone).date()
        if spec.scheduled_at is not None:
            at = spec.scheduled_at.astimezone(UTC)
            if at < now - SCHEDULE_SKEW:
                raise OutboundRequestError("scheduled_at is in the past", code="scheduled_in_past")
            day = at.astimezone(self._zone).date()
            if spec.start_date is not None and spec.start_date != day:
                raise OutboundRequestError(
                    "start_date must be the day of scheduled_at", code="start_date_mismatch"
                )
        else:
            day = spec.start_date or today
            if day < today:
                raise OutboundRequestError("start_date is in the past", code="start_date_in_past")
            at = datetime.combine(day, DEFAULT_SEND_TIME, self._zone).astimezone(UTC)
            if at < now:
                if spec.start_date is None:  # the next 10:00 is tomorrow's
                    day = today + timedelta(days=1)
                    at = datetime.combine(day, DEFAULT_SEND_TIME, self._zone).astimezone(UTC)
                else:  # today was asked for and 10:00 has passed: start now
                    at = now.replace(microsecond=0)
        if self.policy.in_quiet_hours(spec.channel, at):
            raise OutboundRequestError(
                f"scheduled_at falls in the quiet hours of {spec.channel} "
                f"({self.policy.quiet_start:%H:%M}-{self.policy.quiet_end:%H:%M} "
                f"{self.policy.quiet_timezone})",
                code="scheduled_in_quiet_hours",
                details={"scheduled_at": at.isoformat()},
            )
        return at, day

    def scope(self, spec: OutboundSpec) -> dict[str, CatalogueProduct]:
        """The products the list may offer (a 422 for unknown ids or nothing sold in the channel)."""
        catalogue = self.hub_cache.catalogue
        if not catalogue:
            raise DependencyUnavailableError(
                "the product catalogue has not been loaded from product-hub", code="product_catalogue_missing"
            )
        unknown = sorted(set(spec.product_ids) - set(catalogue))
        if unknown:
            raise OutboundRequestError(
                "unknown or inactive products in the scope", code="unknown_products", details=unknown
            )
        ids, types = set(spec.product_ids), set(spec.product_types)
        scoped = {
            pid: p
            for pid, p in catalogue.items()
            if (not ids and not types) or pid in ids or p.product_type in types
        }
        if not any(spec.channel in p.channels for p in scoped.values()):
            raise OutboundRequestError(
                f"no product of the scope is sold in {spec.channel}", code="scope_not_sold_in_channel"
            )
        return scoped

    # -- building a list -----------------------------------------------------------------------

    async def create(self, spec: OutboundSpec, *, created_by: str) -> dict[str, Any]:
        """Build a list and its file; returns its metadata (``status`` ready)."""
        if spec.channel not in OUTBOUND_CHANNELS:
            raise OutboundRequestError(f"outbound lists are for {', '.join(OUTBOUND_CHANNELS)}")
        if spec.channel == "remote_agent" and (spec.agent_capacity_per_day is None or spec.days is None):
            raise OutboundRequestError(
                "remote_agent lists need agent_capacity_per_day and days", code="agent_capacity_required"
            )
        async with self._lock:
            now = self.now()
            run = self._new_run(spec, now)
            try:
                await asyncio.to_thread(self._begin, run, now, created_by)
                with _fewer_collections():
                    await self._build(run)
            except SQLAlchemyError as exc:
                log.error("outbound_store_failed", list_id=run.list_id, error_type=type(exc).__name__)
                raise OutboundStoreUnavailableError("the recommender's database is unavailable") from None
        return await self.get(run.list_id)

    def _new_run(self, spec: OutboundSpec, now: datetime) -> _Run:
        """The list's schedule, scope and pipeline parts (422 when the request cannot be built)."""
        at, start_date = self.schedule(spec, now)
        catalogue = MappingProxyType(self.scope(spec))
        holder = self.decisions.holder
        loaded = holder.current if holder is not None else None
        degraded = list(self.hub_cache.degraded_reasons)
        if loaded is None:
            degraded.append("model_unavailable")
        return _Run(
            list_id=f"obl_{random_hex()}",
            spec=spec,
            at=at,
            start_date=start_date,
            catalogue=catalogue,
            # Popularity over the scope, as a replay regenerates it from the recorded snapshot.
            generator=CandidateGenerator(holder, popularity_for(loaded, catalogue)),
            request=DecisionRequest(channel=spec.channel, placement=OUTBOUND_PLACEMENT, at=at),
            moment_request=DecisionInput(
                customer_id="", channel=spec.channel, placement=OUTBOUND_PLACEMENT, limit=1
            ),
            degraded=tuple(degraded),
            probes=tuple(
                Candidate(pid, p.product_type, 0.0, ())
                for pid, p in sorted(catalogue.items(), key=lambda item: spec.channel not in item[1].channels)
                if p.on_sale(at)
            ),
            arbitration_json=self.decisions.arbitration.model_dump(mode="json"),
            policy_json=self.policy.model_dump(mode="json"),
        )

    async def _build(self, run: _Run) -> None:
        """Steps 3 to 9 of the module docstring; the list's row ends ``ready`` or ``failed``."""
        started = time.perf_counter()
        phases: dict[str, float] = {}
        mark = started

        def lap(phase: str) -> None:
            nonlocal mark
            phases[phase] = round(time.perf_counter() - mark, 3)
            mark = time.perf_counter()

        try:
            run.snapshot = await self.decisions.snapshots.key_of(run.catalogue)
            await self._scan(run)
            lap("scan_s")
            rows = await asyncio.to_thread(self._select, run)
            lap("select_s")
            rows = await self._render(run, rows)
            lap("render_s")
            file_name = await self._write(run, rows)
            lap("write_s")
        except BaseException as exc:
            await asyncio.shield(asyncio.to_thread(self._finish, run, started, None, type(exc).__name__))
            OUTBOUND_LISTS.labels(channel=run.spec.channel, status="failed").inc()
            raise
        await asyncio.to_thread(self._finish, run, started, file_name, None)
        OUTBOUND_LISTS.labels(channel=run.spec.channel, status="ready").inc()
        OUTBOUND_ROWS.labels(channel=run.spec.channel).inc(run.written)
        log.info(
            "outbound_list_ready",
            list_id=run.list_id,
            channel=run.spec.channel,
            rows=run.written,
            scanned=run.scanned,
            seconds=round(time.perf_counter() - started, 2),
            **phases,
        )

    def _begin(self, run: _Run, now: datetime, created_by: str) -> None:
        with self.database.session() as session:
            OutboundListRepository(session).create(
                list_id=run.list_id,
                name=run.spec.name,
                channel=run.spec.channel,
                created_at=now,
                created_by=created_by,
                scheduled_at=run.at,
                request={**run.spec.as_json(), "start_date": run.start_date.isoformat()},
            )

    def _finish(self, run: _Run, started: float, file_name: str | None, error: str | None) -> None:
        with self.database.session() as session:
            OutboundListRepository(session).finish(
                run.list_id,
                status="failed" if error else "ready",
                row_count=run.written,
                scanned=run.scanned,
                excluded=dict(sorted(run.excluded.items())),
                rights_cost_fen=run.rights_cost_fen,
                rights_dropped=run.rights_dropped,
                file_name=file_name,
                seconds=round(time.perf_counter() - started, 3),
                finished_at=datetime.now(UTC),
                error_code=error,
            )

    # -- step 3 and 4: scan and score ----------------------------------------------------------

    async def _customer_pages(self, run: _Run) -> AsyncGenerator[list[CustomerFactsWire], None]:
        for segment in run.spec.segments or (None,):
            after: str | None = None
            while True:
                page = await self.pages.facts_page(segment=segment, after=after, limit=self.page_size)
                fresh = page.customers
                if len(run.spec.segments) > 1:  # a customer of two segments is scanned once
                    fresh = [c for c in fresh if c.customer_id not in run.seen]
                    run.seen.update(c.customer_id for c in fresh)
                if fresh:
                    yield fresh
                if page.next_after is None:
                    break
                after = page.next_after

    async def _scan(self, run: _Run) -> None:
        pages = self._customer_pages(run)

        async def following() -> list[CustomerFactsWire] | None:
            return await anext(pages, None)

        upcoming = asyncio.ensure_future(following())
        scoring: asyncio.Future[Counter[str]] | None = None
        since = run.at - self.policy.longest_window()
        try:
            while True:
                page = await upcoming
                if page is None:
                    break
                upcoming = asyncio.ensure_future(following())  # the next page is read meanwhile
                windows = await asyncio.to_thread(self._windows, [c.customer_id for c in page], since, run.at)
                contexts, left_out = await asyncio.to_thread(
                    _keeping_nothing, self._precheck, run, page, windows
                )
                run.scanned += len(page)
                run.excluded.update(left_out)
                raw = await self._features(contexts)
                # This page is scored while the next one is read (Feast's SQLite reads release the GIL).
                if scoring is not None:
                    run.excluded.update(await scoring)
                scoring = asyncio.ensure_future(
                    asyncio.to_thread(_keeping_nothing, self._score_page, run, contexts, raw)
                )
            if scoring is not None:
                run.excluded.update(await scoring)
        finally:
            for task in (upcoming, scoring):
                if task is not None and not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
            await pages.aclose()

    async def _features(
        self, contexts: Sequence[tuple[CustomerFactsWire, CustomerContext]]
    ) -> Mapping[str, Mapping[str, FeatureValue]] | None:
        """The Feast online features of a page's customers (None when Feast cannot be read)."""
        reader = self.decisions.context.features
        if reader is None or not contexts:
            return None
        try:
            return await asyncio.to_thread(reader.read, [item.customer_id for item, _ in contexts])
        except Exception as exc:  # Feast down: the fallback path, as for a live decision
            log.warning("features_unavailable", error_type=type(exc).__name__)
            return None

    def _windows(self, ids: Sequence[str], since: datetime, at: datetime) -> dict[str, ContactWindow]:
        with self.database.session() as session:
            return ContactRepository(session).contact_windows(ids, since, at)

    def _precheck(
        self, run: _Run, page: Sequence[CustomerFactsWire], windows: Mapping[str, ContactWindow]
    ) -> tuple[list[tuple[CustomerFactsWire, CustomerContext]], Counter[str]]:
        """The page's customers with their context, less those no product of the scope can reach.

        A rule's verdict on a product depends on the customer's context and the product's content and
        right, never on the features or on where the candidate came from, and every candidate is a
        product of the scope on sale. So a customer for whom the policies allow no such product gets
        no offer whatever the features say: they are left out here, before their features are read,
        by the pipeline's own functions (request-wide rules once, then the scope's products one by
        one until one is allowed). Returns the others and the left-out customers by reason code (it
        runs beside the scoring of the previous page, so it keeps its own counts).
        """
        contexts = [(item, _context(item, windows[item.customer_id])) for item in page]
        excluded: Counter[str] = Counter()
        if not PRECHECK:
            return contexts, excluded
        kept: list[tuple[CustomerFactsWire, CustomerContext]] = []
        for item, context in contexts:
            shared = request_outcomes(context, run.request, self.policy)
            failed = [code for o in shared if not o.passed for code in o.codes]
            if failed:  # quiet hours or a full cap: no product passes
                excluded[failed[0]] += 1
                continue
            parts = self.decisions._offer_parts(
                run.probes, run.catalogue, run.spec.channel, run.at, item.facts, item.personalised
            )
            verdicts: list[CandidateVerdict] = []
            for probe in run.probes:
                product = policy_input(run.catalogue[probe.product_id], parts[probe.product_id])
                verdicts.append(evaluate_candidate(product, context, run.request, self.policy, shared))
                if verdicts[-1].allowed:
                    kept.append((item, context))
                    break
            else:
                excluded[_exclusion_code((), verdicts)] += 1
        return kept, excluded

    def _score_page(
        self,
        run: _Run,
        page: Sequence[tuple[CustomerFactsWire, CustomerContext]],
        raw: Mapping[str, Mapping[str, FeatureValue]] | None,
    ) -> Counter[str]:
        """Step 4 of the module docstring for one page: mode, candidates, parts, the pure pipeline.

        Adds the customers with an offer to ``run.scored``; returns the others by reason code."""
        excluded: Counter[str] = Counter()
        reader = self.decisions.context.features
        source = "none" if reader is None else "error" if raw is None else "remote"
        prepared: list[tuple[CustomerFactsWire, CustomerContext, FeatureSnapshot, CustomerSignals, Mode]] = []
        moments: list[str | None] = []
        for item, context in page:
            features = UNREAD_FEATURES
            if reader is not None and raw is not None:
                features = snapshot_features(raw.get(item.customer_id, {}), reader.ttl_by_view, run.at)
            degraded = bool(features.problems or run.degraded)
            mode = (
                Mode.NON_PERSONALISED
                if not item.personalised
                else (Mode.FALLBACK if degraded else Mode.PERSONALISED)
            )
            moment, moment_source = self.decisions._moment(run.moment_request, features, run.at)
            signals = CustomerSignals(
                customer_id=item.customer_id,
                segments=item.facts.segments,
                tokens=tuple(serving_feature_tokens(profile_values(features))),
                moment=moment,
            )
            prepared.append((item, context, features, signals, mode))
            moments.append(moment_source)
        cf = run.generator.cf_batch([p[3] for p in prepared if p[4] is Mode.PERSONALISED])
        for (item, context, features, signals, mode), moment_source in zip(prepared, moments, strict=True):
            degraded_reasons = [*features.problems, *run.degraded]
            candidate_set = run.generator.generate(signals, run.catalogue, mode=mode, at=run.at, cf=cf)
            if candidate_set.cf_skipped == "model_error" and mode is Mode.PERSONALISED:
                degraded_reasons.append("model_error")
                mode = Mode.FALLBACK
            personalised = mode is not Mode.NON_PERSONALISED
            parts = self.decisions._offer_parts(
                candidate_set.candidates, run.catalogue, run.spec.channel, run.at, item.facts, personalised
            )
            outcome = self._rank(run, context, mode, degraded_reasons, candidate_set.candidates, parts)
            if not outcome.arbitration.ranked:
                excluded[_excluded(outcome)] += 1
                continue
            best = outcome.arbitration.ranked[0]
            features_json = {
                "feast": features.as_json(),
                "sources": {"features": source, "profile": "outbound_scan"},
                "context": context_to_json(context),
                "personalised": item.personalised,
                "signals": {
                    "segments": sorted(signals.segments),
                    "tokens": list(signals.tokens),
                    "moment": signals.moment,
                    "moment_source": moment_source,
                },
                "catalogue_snapshot": run.snapshot,
                "arbitration_config": run.arbitration_json,
                "contact_policy": run.policy_json,
                "served_model_version": candidate_set.model_version,
                "cf_skipped": candidate_set.cf_skipped,
            }
            content = parts[best.product_id].content
            assert content is not None, "the content rule lets no offer without content pass"
            scored = _Scored(
                priority=best.priority,
                customer_id=item.customer_id,
                mode=mode,
                model_version=candidate_set.model_version if personalised else None,
                product_id=best.product_id,
                content=(str(content["id"]), int(content["version"])),
                audit=orjson.dumps(
                    {
                        "features": features_json,
                        **self._decision_json(run, candidate_set, parts, outcome, mode, degraded_reasons),
                    },
                    default=inline_part,  # a list's customers rarely share candidate entries
                ),
            )
            right = self._right_of(run, item.facts, personalised, parts[best.product_id], outcome)
            if right is not None:
                # The same decision with the right over the list's budget, made now by the pipeline
                # (the right rule is soft: same ranking, no right in the bundle, right_unaffordable).
                parts = {**parts, best.product_id: replace(parts[best.product_id], right_affordable=False)}
                dropped = self._rank(run, context, mode, degraded_reasons, candidate_set.candidates, parts)
                scored.right_id = right.right_id
                scored.right_cost_fen = right.unit_cost_fen
                scored.right_remaining = right.remaining_count
                scored.without_right = orjson.dumps(
                    self._decision_json(run, candidate_set, parts, dropped, mode, degraded_reasons),
                    default=inline_part,
                )
            run.scored.append(scored)
        return excluded

    def _rank(
        self,
        run: _Run,
        context: CustomerContext,
        mode: Mode,
        degraded: Sequence[str],
        candidates: Sequence[Candidate],
        parts: Mapping[str, OfferParts],
    ) -> PipelineOutcome:
        return rank(
            request=run.request,
            limit=1,
            context=context,
            mode=mode,
            degraded=bool(degraded),
            candidates=candidates,
            parts=parts,
            catalogue=run.catalogue,
            contact_policy=self.policy,
            arbitration=self.decisions.arbitration,
        )

    def _decision_json(
        self,
        run: _Run,
        candidate_set: CandidateSet,
        parts: Mapping[str, OfferParts],
        outcome: PipelineOutcome,
        mode: Mode,
        degraded: list[str],
    ) -> dict[str, Any]:
        """The audit record's candidates and response, as ``DecisionService.decide`` writes them."""
        personalised = mode is not Mode.NON_PERSONALISED
        return {
            "candidates": audit_candidates(candidate_set.candidates, outcome, parts),
            "response": {
                "mode": mode.value,
                "experiment": None,
                "model_version": candidate_set.model_version if personalised else None,
                "bundles": bundles(
                    outcome, candidate_set.candidates, parts, run.catalogue, personalised=personalised
                ),
                "reason_codes": list(outcome.reason_codes),
                "degraded_reasons": degraded,
                "ranking": [o.as_json() for o in outcome.arbitration.ranked],
            },
        }

    def _right_of(
        self,
        run: _Run,
        facts: CustomerFacts,
        personalised: bool,
        part: OfferParts,
        outcome: PipelineOutcome,
    ) -> RightEntry | None:
        """The right the chosen bundle carries, as the rights snapshot describes it (cost, count)."""
        chosen = outcome.arbitration.ranked[0].product_id
        verdict = next(v for v in outcome.policies.verdicts if v.product.product_id == chosen)
        if part.right is None or not verdict.offer_right:
            return None
        for right in self.hub_cache.affordable_rights(
            at=run.at,
            segments=facts.segments if personalised else None,
            lifecycle_stage=facts.lifecycle_stage if personalised else None,
        ):
            if right.right_id == part.right["id"]:
                return right
        return None

    # -- steps 5 and 6: selection, call dates, rights ------------------------------------------

    def _row_limit(self, spec: OutboundSpec) -> tuple[int, str]:
        if spec.channel == "remote_agent":
            assert spec.agent_capacity_per_day is not None
            assert spec.days is not None
            capacity = spec.agent_capacity_per_day * spec.days
            if capacity < spec.max_contacts:
                return capacity, "over_agent_capacity"
        return spec.max_contacts, "over_max_contacts"

    def _select(self, run: _Run) -> list[_Row]:
        spec = run.spec
        limit, over = self._row_limit(spec)
        per_day = spec.agent_capacity_per_day or limit
        run.scored.sort(key=lambda s: (-s.priority, s.customer_id))
        rows: list[_Row] = []
        budget_left = spec.rights_budget_fen
        grants_left: dict[str, int] = {}
        for n, scored in enumerate(run.scored):
            if len(rows) >= limit:
                run.excluded[over] += len(run.scored) - n
                break
            day = len(rows) // per_day if spec.channel == "remote_agent" else 0
            contact_at = run.at + timedelta(days=day)
            if day:
                failed = self._recheck(run, scored, contact_at)
                if failed is not None:
                    run.excluded[failed] += 1
                    continue
            cost = 0
            dropped = False
            if scored.right_id is not None and scored.without_right is not None:
                left = grants_left.setdefault(scored.right_id, scored.right_remaining)
                if left <= 0 or (budget_left is not None and scored.right_cost_fen > budget_left):
                    dropped = True
                    run.rights_dropped += 1
                else:
                    grants_left[scored.right_id] = left - 1
                    cost = scored.right_cost_fen
                    if budget_left is not None:
                        budget_left -= cost
            rows.append(
                _Row(
                    scored=scored,
                    contact_at=contact_at,
                    call_date=run.start_date + timedelta(days=day),
                    decision_id=f"dec_{time_ordered_hex()}",
                    right_dropped=dropped,
                    right_cost_fen=cost,
                )
            )
        run.scored = []  # what was not selected is not kept
        return rows

    def _recheck(self, run: _Run, scored: _Scored, at: datetime) -> str | None:
        """The reason the chosen offer no longer holds at a later call time, or None (same policies)."""
        product = run.catalogue[scored.product_id]
        if not product.on_sale(at):
            return "not_on_sale"
        audit = orjson.loads(scored.audit)
        recorded = next(c for c in audit["candidates"] if c["product_id"] == scored.product_id)
        part = OfferParts.from_json(recorded["inputs"])
        context = context_from_json(audit["features"]["context"])
        if part.content is not None:
            personalised = scored.mode is not Mode.NON_PERSONALISED
            segments = context.facts.segments if personalised else None
            live = self.hub_cache.content_for(product.product_id, run.spec.channel, at=at, segments=segments)
            chosen = (part.content["id"], part.content["version"])
            if not any((e.content_id, e.version) == chosen for e in live):
                return "content_out_of_window"
        result = evaluate_policies(
            [policy_input(product, part)], context, replace(run.request, at=at), self.policy
        )
        (verdict,) = result.verdicts
        return None if verdict.allowed else (verdict.reason_codes or ("no_allowed_offer",))[0]

    # -- step 7: the channel text --------------------------------------------------------------

    async def _render(self, run: _Run, rows: list[_Row]) -> list[_Row]:
        """Each content item rendered once; rows whose item cannot be rendered as decided are left out."""
        texts: dict[tuple[str, int], tuple[str | None, str]] = {}
        wanted = sorted({r.scored.content for r in rows})
        for content_id, version in wanted:
            try:
                rendered = await self.renderer.render(content_id, run.spec.channel, run.at.isoformat())
            except ContentNotRenderableError:
                texts[(content_id, version)] = ("content_not_renderable", "")
                continue
            changed = rendered.version != version
            texts[(content_id, version)] = ("content_changed", "") if changed else (None, rendered.text)
        kept: list[_Row] = []
        for row in rows:
            refused, text = texts[row.scored.content]
            if refused is not None:
                run.excluded[refused] += 1
                continue
            row.text = text
            kept.append(row)
        return kept

    # -- steps 8 and 9: contact slots, audit, file ---------------------------------------------

    async def _write(self, run: _Run, rows: list[_Row]) -> str:
        self.outbound_dir.mkdir(parents=True, exist_ok=True)
        file_name = f"{run.list_id}.csv"
        final = self.outbound_dir / file_name
        partial = final.with_suffix(".csv.part")
        text_column = "call_script" if run.spec.channel == "remote_agent" else "message"
        with partial.open("w", encoding="utf-8-sig", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow([c.format(text=text_column) for c in CSV_COLUMNS])
            for start in range(0, len(rows), self.batch_size):
                batch = rows[start : start + self.batch_size]
                granted = await asyncio.to_thread(self._reserve_and_audit, run, batch)
                for row, _ in granted:  # live decisions read these customers' new slots afresh
                    self.decisions.ledger.forget(row.scored.customer_id)
                for row, bundle in granted:
                    run.written += 1
                    run.rights_cost_fen += row.right_cost_fen
                    writer.writerow(self._csv_row(run.written, row, bundle))
        os.replace(partial, final)
        return file_name

    def _reserve_and_audit(self, run: _Run, batch: Sequence[_Row]) -> list[tuple[_Row, dict[str, Any]]]:
        """One transaction: the batch's contact slots (exact caps) and the granted rows' audit records."""
        caps = self.policy.caps_for(run.spec.channel)
        audits = [row.audit() for row in batch]
        records = [self._audit_record(run, r, a) for r, a in zip(batch, audits, strict=True)]
        with self.database.session() as session:
            reservations = ContactRepository(session).reserve_many(
                [
                    SlotRequest(
                        customer_id=row.scored.customer_id,
                        channel=run.spec.channel,
                        at=row.contact_at,
                        decision_id=row.decision_id,
                        product_id=row.scored.product_id,
                    )
                    for row in batch
                ],
                caps,
            )
            granted: list[tuple[_Row, dict[str, Any]]] = []
            durable: list[AuditRecord] = []
            for row, audit, record, reservation in zip(batch, audits, records, reservations, strict=True):
                if not reservation.granted:
                    run.excluded[reservation.blocked_by[0]] += 1
                    continue
                record.features["contact_reservation"]["counts"] = dict(reservation.counts)
                granted.append((row, audit["response"]["bundles"][0]))
                durable.append(record)
            AuditRepository(session).append_many(durable)
        return granted

    def _audit_record(self, run: _Run, row: _Row, audit: Mapping[str, Any]) -> AuditRecord:
        s = row.scored
        return AuditRecord(
            decision_id=row.decision_id,
            created_at=run.at,
            customer_id=s.customer_id,
            channel=run.spec.channel,
            placement=OUTBOUND_PLACEMENT,
            mode=s.mode.value,
            model_version=s.model_version,
            experiment_id=None,
            experiment_arm=None,
            request={
                "customer_id": s.customer_id,
                "channel": run.spec.channel,
                "placement": OUTBOUND_PLACEMENT,
                "limit": 1,
                "moment": None,
                "client_request_id": None,
                "outbound": {
                    "list_id": run.list_id,
                    "contact_at": row.contact_at.isoformat(),
                    "call_date": row.call_date.isoformat(),
                },
            },
            features={
                **audit["features"],
                "contact_reservation": {"granted": True, "blocked_by": [], "counts": {}},
            },
            candidates=audit["candidates"],
            response={"decision_id": row.decision_id, **audit["response"]},
        )

    def _csv_row(self, number: int, row: _Row, bundle: Mapping[str, Any]) -> list[object]:
        product, content, right = bundle["product"], bundle["content"], bundle["right"]
        return [
            number,
            row.scored.customer_id,
            row.decision_id,
            product["id"],
            product["name"],
            product["type"],
            "" if product["risk_rating"] is None else f"R{product['risk_rating']}",
            content["id"],
            content["version"],
            row.text,
            "" if right is None else right["id"],
            "" if right is None else right["type"],
            row.right_cost_fen if right is not None else "",
            f"{bundle['score']:.6f}",
            row.call_date.isoformat(),
            "|".join(bundle["reason_codes"]),
            bundle["explanation"]["zh"],
        ]

    # -- reading -------------------------------------------------------------------------------

    def _read(self, list_id: str) -> OutboundListRecord:
        with self.database.session() as session:
            record = OutboundListRepository(session).get(list_id)
        if record is None:
            raise OutboundListNotFoundError(f"outbound list {list_id} not found")
        return record

    async def get(self, list_id: str) -> dict[str, Any]:
        """A list's metadata (404 when unknown)."""
        record = await asyncio.to_thread(self._read, list_id)
        return {
            "list_id": record.list_id,
            "name": record.name,
            "channel": record.channel,
            "status": record.status,
            "created_at": record.created_at,
            "created_by": record.created_by,
            "scheduled_at": record.scheduled_at,
            "request": record.request,
            "rows": record.row_count,
            "scanned": record.scanned,
            "excluded": record.excluded,
            "rights_cost_fen": record.rights_cost_fen,
            "rights_dropped": record.rights_dropped,
            "file": f"/v1/outbound/lists/{record.list_id}/file" if record.status == "ready" else None,
            "seconds": record.seconds,
            "error_code": record.error_code,
            "finished_at": record.finished_at,
        }

    async def file(self, list_id: str) -> Path:
        """The path of a ready list's CSV (404 when the list or its file is not there)."""
        record = await asyncio.to_thread(self._read, list_id)
        path = self.outbound_dir / record.file_name if record.file_name else None
        if record.status != "ready" or path is None or not path.is_file():
            raise OutboundListNotFoundError(
                f"outbound list {list_id} has no file", code="outbound_file_not_found"
            )
        return path


__all__ = [
    "CSV_COLUMNS",
    "OUTBOUND_CHANNELS",
    "OUTBOUND_PLACEMENT",
    "OutboundListNotFoundError",
    "OutboundRequestError",
    "OutboundService",
    "OutboundSpec",
    "OutboundStoreUnavailableError",
]
