"""A/B experiments: definitions and their approval workflow, sticky assignment, exposures, attributed
conversions and the fixed-horizon analysis.

**Workflow.** ``draft → pending_approval → approved → running → stopped`` by the actions ``submit``,
``approve``, ``start`` and ``stop`` (``stop`` also closes an experiment that never ran). Approval is the
checker's act: it must come from a principal other than the author (``403 approver_is_author``).
Starting reserves the experiment's share of its layer's buckets (``409 layer_full`` when the running
experiments of the layer leave no room). Weights may change in ``draft`` and, to ramp up, while
``running``; every change is kept in the history.

**Assignment** (:meth:`ExperimentService.assign`, on the decision path) uses the pure
:class:`~recommender.experiments.assignment.Assigner` over the running experiments, cached in memory
(refreshed after ``cache_ttl_s`` and at once after a change made through this service). A customer's
first arm in an experiment is stored (``INSERT … ON CONFLICT DO NOTHING``, then read back), so
concurrent first assignments end with one stored arm, and a later weight change never moves a
customer: the stored arm wins. Stored arms never change, so they are also cached (bounded LRU).

**Content bandits.** An experiment with ``allocation: thompson`` (content variants only, primary metric
``ctr``) is not sticky: each day a customer gets the arm :func:`~recommender.experiments.bandit.choose`
draws from the Thompson-sampling shares of the exposures and attributed clicks so far (recomputed every
``bandit_refresh_s``; every arm keeps ``exploration_floor``). Its analysis adds the bandit report
(posterior, 95 % credible interval, P(best) and share per arm); the SRM check does not apply there.

**Exposure** (:meth:`ExperimentService.record_exposure`) is logged by the decision pipeline when an
arm shaped what a customer was served, for the customer's stored arm only. **Conversions**
(:meth:`ExperimentService.record_conversion`: clicks, conversions with their value and rights cost,
opt-outs, complaints) count for an experiment only when the customer had an exposure in it within the
attribution window (default 7 days) before the event; they go to that exposure's arm.

**Analysis** (:meth:`ExperimentService.analysis`) per arm: exposed customers, impressions, clicks,
CTR, conversion rate per exposed customer, AUM per exposed customer (its difference to control is the
AUM uplift, also CUPED-adjusted with the customers' converted amounts in the 28 days before the start),
rights cost per conversion, opt-out and complaint rates; intervals, p-values with Holm's correction
across treatment arms, the sample-ratio-mismatch check (a flagged SRM blocks the verdict), guardrail
flags, the minimum detectable effect at the current size and a verdict. Fixed-horizon: see
:mod:`recommender.experiments.stats`.
"""

from __future__ import annotations

import asyncio
import bisect
import dataclasses
import hashlib
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import numpy as np
from prometheus_client import Counter
from pydantic import ValidationError
from qianmian_core.db import Database
from qianmian_core.errors import ConflictError, ForbiddenError, NotFoundError, UnprocessableError
from qianmian_core.ids import random_hex
from qianmian_core.logging import get_logger
from sqlalchemy.orm import Session

from recommender.experiments import stats
from recommender.experiments.assignment import (
    HELD_OUT,
    NO_ASSIGNMENT,
    Arm,
    Assigner,
    Assignment,
    Assignments,
    BucketRange,
    ExperimentSpec,
    Holdout,
    Population,
    allocate_range,
    buckets_for_share,
)
from recommender.experiments.bandit import ThompsonAllocator, VariantCounts, choose
from recommender.experiments.definition import LOWER_IS_BETTER, METRICS, ArmChanges, ExperimentDefinition
from recommender.models import CHANNELS, CONVERSION_KINDS, Experiment, ExperimentArm
from recommender.repository.experiments import (
    CustomerExposure,
    CustomerOutcome,
    ExperimentRecord,
    ExperimentRepository,
    HistoryRecord,
)
from recommender.service.arbitration import ArbitrationConfig
from recommender.service.profile import ProfileSource

log = get_logger(__name__)

#: For each action: the statuses it may start from and the status it leads to.
TRANSITIONS: Final[Mapping[str, tuple[frozenset[str], str]]] = {
    "submit": (frozenset({"draft"}), "pending_approval"),
    "approve": (frozenset({"pending_approval"}), "approved"),
    "start": (frozenset({"approved"}), "running"),
    "stop": (frozenset({"draft", "pending_approval", "approved", "running"}), "stopped"),
}
ACTIONS: Final[tuple[str, ...]] = tuple(TRANSITIONS)
#: Statuses in which the weights may change (a draft, or a running experiment being ramped up).
WEIGHTS_EDITABLE: Final[frozenset[str]] = frozenset({"draft", "running"})
DEFAULT_ATTRIBUTION_WINDOW: Final = timedelta(days=7)
DEFAULT_CUPED_LOOKBACK: Final = timedelta(days=28)
RUNNING_WARNING: Final = (
    "The experiment is still running: the verdict is provisional until it stops at its planned size."
)
ADAPTIVE_WARNING: Final = (
    "Thompson-sampling allocation: arms get more traffic as they do better, so the fixed-horizon "
    "intervals and p-values are approximate and the SRM check does not apply; decide on the bandit "
    "report's P(best)."
)
WEIGHTS_CHANGED_WARNING: Final = (
    "Weights changed while running: the SRM check tests each period against its own weights, and the "
    "comparisons pool the periods (a trend over time may bias them)."
)


class ExperimentNotFoundError(NotFoundError):
    """No experiment with this id."""

    code = "experiment_not_found"


class IllegalTransitionError(ConflictError):
    """The action is not allowed from the experiment's status."""

    code = "illegal_transition"


class ApproverIsAuthorError(ForbiddenError):
    """An experiment must be approved by someone other than its author."""

    code = "approver_is_author"


class LayerFullError(ConflictError):
    """The running experiments of the layer leave too few buckets for this one."""

    code = "layer_full"


class ConcurrentChangeError(ConflictError):
    """The experiment changed while this change was being made; read it again and retry."""

    code = "experiment_changed_concurrently"


class WeightsLockedError(ConflictError):
    """Weights are frozen once submitted, until the experiment runs, and after it stopped."""

    code = "weights_locked"


class InvalidWeightsError(UnprocessableError):
    """New weights must name exactly the experiment's arms, be >= 0 and not all 0."""

    code = "invalid_weights"


class InvalidArmChangesError(UnprocessableError):
    """An arm's changes are not valid (e.g. arbitration settings the service would refuse)."""

    code = "invalid_arm_changes"


class ExperimentNotRunningError(ConflictError):
    """Exposures are recorded only for running experiments."""

    code = "experiment_not_running"


class ArmMismatchError(ConflictError):
    """The exposure names an arm other than the customer's stored arm (or the customer has none)."""

    code = "arm_mismatch"


@dataclass(frozen=True, slots=True)
class Attribution:
    """A conversion attributed to an experiment: the arm of the customer's latest exposure in it."""

    experiment_id: str
    arm: str
    exposed_at: datetime


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _spec(record: ExperimentRecord) -> ExperimentSpec:
    assert record.bucket_start is not None
    assert record.bucket_end is not None
    return ExperimentSpec(
        experiment_id=record.experiment_id,
        salt=record.salt,
        layer=record.layer,
        buckets=BucketRange(record.bucket_start, record.bucket_end),
        arms=tuple(Arm(a.name, a.weight) for a in record.arms),
        population=Population(
            segments=frozenset(record.population.get("segments", ())),
            channels=frozenset(record.population.get("channels", ())),
        ),
        allocation=record.allocation,
    )


def _allocator(record: ExperimentRecord) -> ThompsonAllocator:
    """The content bandit of a ``thompson`` experiment, seeded by its salt (same counts, same shares)."""
    seed = int.from_bytes(hashlib.sha256(record.salt.encode()).digest()[:4], "big")
    return ThompsonAllocator(
        [a.name for a in record.arms], floor=record.exploration_floor, seed=seed, draws=4_000
    )


def _variant_counts(counts: Mapping[str, tuple[int, int]]) -> dict[str, VariantCounts]:
    # A click can be attributed after its exposure's arm lost traffic; never more clicks than exposures.
    return {arm: VariantCounts(n, min(clicks, n)) for arm, (n, clicks) in counts.items()}


class ExperimentService:
    """Experiments over the recommender's database; thread-safe (the decision path calls it from
    worker threads)."""

    def __init__(
        self,
        database: Database,
        *,
        holdout: Holdout | None = None,
        attribution_window: timedelta = DEFAULT_ATTRIBUTION_WINDOW,
        cache_ttl_s: float = 30.0,
        alpha: float = stats.ALPHA,
        cuped_lookback: timedelta = DEFAULT_CUPED_LOOKBACK,
        assignment_cache_size: int = 100_000,
        bandit_refresh_s: float = 300.0,
        now: Callable[[], datetime] = _utcnow,
    ) -> None:
        if attribution_window <= timedelta(0):
            raise ValueError("the attribution window must be positive")
        if cache_ttl_s < 0 or assignment_cache_size < 0 or bandit_refresh_s < 0:
            raise ValueError("cache sizes and times must be >= 0")
        self.database = database
        self.holdout = holdout or Holdout()
        self.attribution_window = attribution_window
        self.cache_ttl_s = cache_ttl_s
        self.alpha = alpha
        self.cuped_lookback = cuped_lookback
        self.now = now
        self._lock = threading.Lock()
        self._assigner: Assigner | None = None
        self._loaded_at = 0.0
        self._changes: dict[tuple[str, str], ArmChanges] = {}
        self._arms: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._arms_max = assignment_cache_size
        self.bandit_refresh_s = bandit_refresh_s
        #: Running ``thompson`` experiments (as last loaded) and their shares (computed when, shares).
        self._bandits: dict[str, ExperimentRecord] = {}
        self._shares: dict[str, tuple[float, dict[str, float]]] = {}

    # --- the running experiments, cached ---

    def refresh(self) -> Assigner:
        """Reload the running experiments now (also called after every change made here)."""
        with self.database.session() as session:
            running = ExperimentRepository(session).list_by_status("running")
        assigner = Assigner((_spec(r) for r in running), self.holdout)
        changes = {
            (r.experiment_id, a.name): ArmChanges.model_validate(a.changes) for r in running for a in r.arms
        }
        bandits = {r.experiment_id: r for r in running if r.allocation == "thompson"}
        with self._lock:
            self._assigner, self._loaded_at, self._changes = assigner, time.monotonic(), changes
            self._bandits = bandits
        return assigner

    def bandit_shares(self, experiment_id: str) -> dict[str, float]:
        """The current Thompson-sampling shares of a running ``thompson`` experiment's arms (recomputed
        from the stored exposures and clicks every ``bandit_refresh_s``)."""
        self.assigner()  # load the running experiments when stale
        with self._lock:
            record = self._bandits.get(experiment_id)
            cached = self._shares.get(experiment_id)
        if record is None:
            raise ExperimentNotRunningError(
                f"experiment {experiment_id} is not a running Thompson-sampling experiment",
                details={"experiment_id": experiment_id},
            )
        if cached is not None and time.monotonic() - cached[0] <= self.bandit_refresh_s:
            return cached[1]
        with self.database.session() as session:
            counts = ExperimentRepository(session).arm_counts(experiment_id)
        shares = _allocator(record).allocation(_variant_counts(counts))
        with self._lock:
            self._shares[experiment_id] = (time.monotonic(), shares)
        return shares

    def arm_changes(self, experiment_id: str, arm: str) -> ArmChanges | None:
        """What ``arm`` of a running experiment changes (None: not running, as last loaded)."""
        self.assigner()  # reload when stale
        with self._lock:
            return self._changes.get((experiment_id, arm))

    def arms_of(self, experiment_id: str) -> tuple[str, ...]:
        """The arm names of a running experiment, control first (empty: not running)."""
        with self._lock:
            return tuple(a for (e, a) in self._changes if e == experiment_id)

    def assigner(self) -> Assigner:
        """The assigner over the running experiments (reloaded when older than ``cache_ttl_s``)."""
        with self._lock:
            assigner, loaded_at = self._assigner, self._loaded_at
        if assigner is None or time.monotonic() - loaded_at > self.cache_ttl_s:
            return self.refresh()
        return assigner

    def _cached_arm(self, experiment_id: str, customer_id: str) -> str | None:
        with self._lock:
            arm = self._arms.get((experiment_id, customer_id))
            if arm is not None:
                self._arms.move_to_end((experiment_id, customer_id))
            return arm

    def _remember(self, experiment_id: str, customer_id: str, arm: str) -> None:
        if self._arms_max == 0:
            return
        with self._lock:
            self._arms[(experiment_id, customer_id)] = arm
            self._arms.move_to_end((experiment_id, customer_id))
            while len(self._arms) > self._arms_max:
                self._arms.popitem(last=False)

    # --- the decision path ---

    def assign(self, customer_id: str, channel: str, segments: Iterable[str]) -> Assignments:
        """The customer's arms (at most one per layer) for a request in ``channel``, or the holdout.

        The same customer gets the same arms in every channel of an experiment's population, in every
        process; a first assignment is stored before it is returned, and a stored arm is kept when
        weights change.
        """
        assigner = self.assigner()
        if assigner.in_holdout(customer_id):
            return HELD_OUT
        segments = tuple(segments)
        eligible = assigner.eligible(customer_id, channel, segments)
        if not eligible:
            return NO_ASSIGNMENT
        known: dict[str, str] = {}
        today = self.now().date()
        for spec in eligible:
            if spec.allocation == "thompson":  # not sticky: the day's draw from the bandit's shares
                known[spec.experiment_id] = choose(
                    self.bandit_shares(spec.experiment_id), spec.salt, customer_id, today
                )
                continue
            arm = self._cached_arm(spec.experiment_id, customer_id)
            if arm is not None:
                known[spec.experiment_id] = arm
        before = set(known)
        missing = [s for s in eligible if s.experiment_id not in known]
        if missing:
            with self.database.session() as session:
                repo = ExperimentRepository(session)
                stored = repo.stored_arms(customer_id, [s.experiment_id for s in missing])
                known |= stored
                before |= set(stored)
                at = self.now()
                for spec in missing:
                    if spec.experiment_id not in known:
                        proposed = spec.hashed_arm(customer_id)
                        known[spec.experiment_id] = repo.store_first_arm(
                            spec.experiment_id, customer_id, proposed, at
                        )
            for spec in missing:
                self._remember(spec.experiment_id, customer_id, known[spec.experiment_id])
        return Assignments(
            holdout=False,
            arms=tuple(
                Assignment(s.experiment_id, known[s.experiment_id], s.layer, stored=s.experiment_id in before)
                for s in eligible
            ),
        )

    def record_exposure(
        self,
        experiment_id: str,
        arm: str,
        customer_id: str,
        *,
        channel: str,
        decision_id: str | None = None,
        at: datetime | None = None,
    ) -> None:
        """Log that ``arm`` of a running experiment shaped what the customer was served (one
        impression). The arm must be the customer's stored arm (``409 arm_mismatch``)."""
        if channel not in CHANNELS:
            raise UnprocessableError(f"unknown channel {channel!r}", details={"channel": channel})
        at = at or self.now()
        if at.tzinfo is None:
            raise ValueError("the exposure time must carry a time zone")
        # Not in the cache: started a moment ago in another process (refresh), or not running at all.
        spec = next((s for s in self.assigner().experiments if s.experiment_id == experiment_id), None)
        if spec is None:
            spec = next((s for s in self.refresh().experiments if s.experiment_id == experiment_id), None)
        if spec is None:
            raise ExperimentNotRunningError(
                f"experiment {experiment_id} is not running", details={"experiment_id": experiment_id}
            )
        bandit = spec.allocation == "thompson"
        with self.database.session() as session:
            repo = ExperimentRepository(session)
            if bandit:  # a bandit's arm is the day's draw: any of its arms
                stored = arm if arm in spec.arm_names else None
            else:
                stored = self._cached_arm(experiment_id, customer_id) or repo.stored_arms(
                    customer_id, [experiment_id]
                ).get(experiment_id)
            if stored != arm:
                raise ArmMismatchError(
                    f"the customer's arm in {experiment_id} is {stored or 'not assigned'}, not {arm}",
                    details={"experiment_id": experiment_id, "arm": arm, "stored_arm": stored},
                )
            repo.add_exposure(
                experiment_id=experiment_id,
                arm=arm,
                customer_id=customer_id,
                decision_id=decision_id,
                channel=channel,
                at=at,
            )
        if not bandit:
            self._remember(experiment_id, customer_id, arm)

    def record_conversion(
        self,
        customer_id: str,
        kind: str,
        *,
        at: datetime | None = None,
        value: int | None = None,
        cost_fen: int | None = None,
        decision_id: str | None = None,
        experiment_id: str | None = None,
        margin_fen: int | None = None,
    ) -> tuple[Attribution, ...]:
        """Attribute an outcome (``click``, ``convert``, ``opt_out``, ``complaint``) to every experiment
        (or only ``experiment_id``) in which the customer had an exposure within the attribution
        window before ``at``; the attributions made (none: the event counts for no experiment).

        ``value`` is e.g. the converted amount in fen, ``cost_fen`` the cost of the right granted with
        it, ``margin_fen`` what the converted product is worth to the bank (product-hub's ``value``).
        The caller records each event once (feedback is idempotent upstream).
        """
        with self.database.session() as session:
            return self.attribute(
                session,
                customer_id,
                kind,
                at=at or self.now(),
                value=value,
                cost_fen=cost_fen,
                decision_id=decision_id,
                experiment_id=experiment_id,
                margin_fen=margin_fen,
            )

    def attribute(
        self,
        session: Session,
        customer_id: str,
        kind: str,
        *,
        at: datetime,
        value: int | None = None,
        cost_fen: int | None = None,
        decision_id: str | None = None,
        experiment_id: str | None = None,
        margin_fen: int | None = None,
    ) -> tuple[Attribution, ...]:
        """:meth:`record_conversion` inside the caller's transaction (the feedback that reports the
        event), so the event and its attributions are stored together or not at all."""
        if kind not in CONVERSION_KINDS:
            raise UnprocessableError(f"unknown conversion kind {kind!r}", details={"kind": kind})
        if cost_fen is not None and cost_fen < 0:
            raise UnprocessableError("cost_fen must be >= 0", details={"cost_fen": cost_fen})
        if margin_fen is not None and margin_fen < 0:
            raise UnprocessableError("margin_fen must be >= 0", details={"margin_fen": margin_fen})
        if at.tzinfo is None:
            raise ValueError("the conversion time must carry a time zone")
        attributions: list[Attribution] = []
        repo = ExperimentRepository(session)
        exposures = repo.latest_exposures(
            customer_id, since=at - self.attribution_window, until=at, experiment_id=experiment_id
        )
        for exposure in exposures:
            repo.add_conversion(
                experiment_id=exposure.experiment_id,
                arm=exposure.arm,
                customer_id=customer_id,
                decision_id=decision_id or exposure.decision_id,
                kind=kind,
                value=value,
                cost_fen=cost_fen,
                margin_fen=margin_fen,
                at=at,
            )
            attributions.append(Attribution(exposure.experiment_id, exposure.arm, exposure.at))
        return tuple(attributions)

    # --- definitions and the workflow ---

    def create(self, definition: ExperimentDefinition, *, author: str) -> dict[str, Any]:
        """Store a new experiment as a draft authored by ``author``."""
        for arm in definition.arms:
            if arm.changes.arbitration is not None:
                try:
                    ArbitrationConfig.model_validate(arm.changes.arbitration)
                except ValidationError as exc:
                    raise InvalidArmChangesError(
                        f"arm {arm.name}: invalid arbitration settings",
                        details=[
                            {"arm": arm.name, "loc": [str(p) for p in e["loc"]], "msg": e["msg"]}
                            for e in exc.errors()
                        ],
                    ) from None
        now = self.now()
        experiment_id = f"exp_{random_hex()}"
        weights = {a.name: a.weight for a in definition.arms}
        with self.database.session() as session:
            repo = ExperimentRepository(session)
            repo.create(
                Experiment(
                    experiment_id=experiment_id,
                    name=definition.name,
                    hypothesis=definition.hypothesis,
                    primary_metric=definition.primary_metric,
                    guardrail_metrics=[g.model_dump() for g in definition.guardrails],
                    layer=definition.layer,
                    traffic=definition.traffic,
                    bucket_start=None,
                    bucket_end=None,
                    population=definition.population.model_dump(),
                    salt=definition.salt or experiment_id,
                    allocation=definition.allocation,
                    exploration_floor=definition.exploration_floor,
                    status="draft",
                    author=author,
                    approver=None,
                    created_at=now,
                    updated_at=now,
                    started_at=None,
                    stopped_at=None,
                    version=1,
                ),
                [
                    ExperimentArm(
                        experiment_id=experiment_id,
                        name=arm.name,
                        position=position,
                        weight=arm.weight,
                        changes=arm.changes.model_dump(),
                    )
                    for position, arm in enumerate(definition.arms)
                ],
            )
            repo.append_history(
                experiment_id,
                action="create",
                from_status=None,
                to_status="draft",
                actor=author,
                at=now,
                detail={"weights": weights},
            )
            view = self._view(repo, experiment_id)
        log.info("experiment_created", experiment_id=experiment_id, author=author, layer=definition.layer)
        return view

    def list_experiments(self, status: str | None = None) -> list[dict[str, Any]]:
        """Experiments, newest first (optionally only those of ``status``), without their history."""
        with self.database.session() as session:
            return [_summary(r) for r in ExperimentRepository(session).list_by_status(status)]

    def get(self, experiment_id: str) -> dict[str, Any]:
        """One experiment with its arms and history."""
        with self.database.session() as session:
            return self._view(ExperimentRepository(session), experiment_id)

    def transition(
        self, experiment_id: str, action: str, *, actor: str, note: str | None = None
    ) -> dict[str, Any]:
        """Apply a workflow action (``submit``, ``approve``, ``start``, ``stop``) by ``actor``."""
        if action not in TRANSITIONS:
            raise UnprocessableError(f"unknown action {action!r}", details={"actions": list(ACTIONS)})
        allowed_from, target = TRANSITIONS[action]
        now = self.now()
        with self.database.session() as session:
            repo = ExperimentRepository(session)
            current = _require(repo, experiment_id)
            if current.status not in allowed_from:
                raise IllegalTransitionError(
                    f"cannot {action} experiment {experiment_id} in status {current.status}",
                    details={"status": current.status, "action": action},
                )
            values: dict[str, Any] = {"status": target, "updated_at": now}
            if action == "approve":
                if actor == current.author:
                    raise ApproverIsAuthorError(
                        "an experiment must be approved by someone other than its author",
                        details={"author": current.author},
                    )
                values["approver"] = actor
            elif action == "start":
                repo.lock_layer(current.layer)
                taken = [BucketRange(s, e) for s, e in repo.taken_ranges(current.layer)]
                size = max(1, buckets_for_share(current.traffic))
                buckets = allocate_range(size, taken)
                if buckets is None:
                    raise LayerFullError(
                        f"layer {current.layer} has no free range of {size} buckets",
                        details={
                            "layer": current.layer,
                            "buckets_needed": size,
                            "taken": [{"start": r.start, "end": r.end} for r in taken],
                        },
                    )
                values |= {"bucket_start": buckets.start, "bucket_end": buckets.end, "started_at": now}
            elif action == "stop":
                values["stopped_at"] = now
            if not repo.update_if(experiment_id, version=current.version, values=values):
                raise ConcurrentChangeError(
                    f"experiment {experiment_id} changed concurrently",
                    details={"experiment_id": experiment_id},
                )
            repo.append_history(
                experiment_id,
                action=action,
                from_status=current.status,
                to_status=target,
                actor=actor,
                at=now,
                note=note,
            )
            view = self._view(repo, experiment_id)
        log.info("experiment_status", experiment_id=experiment_id, action=action, actor=actor, to=target)
        if action in {"start", "stop"}:
            self.refresh()
        return view

    def update_weights(
        self, experiment_id: str, weights: Mapping[str, float], *, actor: str, note: str | None = None
    ) -> dict[str, Any]:
        """New allocation weights (of a draft, or of a running experiment): customers assigned before
        keep their arm; only new customers follow the new weights."""
        now = self.now()
        with self.database.session() as session:
            repo = ExperimentRepository(session)
            current = _require(repo, experiment_id)
            if current.status not in WEIGHTS_EDITABLE:
                raise WeightsLockedError(
                    f"weights of a {current.status} experiment cannot change",
                    details={"status": current.status, "editable_in": sorted(WEIGHTS_EDITABLE)},
                )
            names = [a.name for a in current.arms]
            if set(weights) != set(names):
                raise InvalidWeightsError("give a weight for every arm and no other", details={"arms": names})
            if (
                any(not (math.isfinite(w) and w >= 0) for w in weights.values())
                or math.fsum(weights.values()) <= 0
            ):
                raise InvalidWeightsError(
                    "weights must be finite, >= 0 and not all 0", details={"arms": names}
                )
            if not repo.update_if(experiment_id, version=current.version, values={"updated_at": now}):
                raise ConcurrentChangeError(
                    f"experiment {experiment_id} changed concurrently",
                    details={"experiment_id": experiment_id},
                )
            ordered = {name: float(weights[name]) for name in names}
            repo.set_weights(experiment_id, ordered)
            repo.append_history(
                experiment_id,
                action="weights",
                from_status=current.status,
                to_status=current.status,
                actor=actor,
                at=now,
                note=note,
                detail={"weights": ordered},
            )
            view = self._view(repo, experiment_id)
        if current.status == "running":
            self.refresh()
        return view

    def _view(self, repo: ExperimentRepository, experiment_id: str) -> dict[str, Any]:
        record = _require(repo, experiment_id)
        return {**_summary(record), "history": [_history_json(h) for h in repo.history(experiment_id)]}

    # --- analysis ---

    def analysis(self, experiment_id: str) -> dict[str, Any]:
        """Per-arm figures, comparisons with control, SRM, guardrails and the verdict."""
        with self.database.session() as session:
            repo = ExperimentRepository(session)
            record = _require(repo, experiment_id)
            history = repo.history(experiment_id)
            exposed = repo.exposed_customers(experiment_id)
            outcomes = repo.outcomes(experiment_id)
            assigned = repo.assignment_counts(experiment_id)
            counts = repo.arm_counts(experiment_id) if record.allocation == "thompson" else None
            pre: dict[str, int] = {}
            if record.started_at is not None:
                pre = repo.pre_period_values(
                    experiment_id, since=record.started_at - self.cuped_lookback, until=record.started_at
                )
        result = _Analysis(record, history, exposed, outcomes, assigned, pre, self).result()
        if counts is not None:
            result["bandit"] = _allocator(record).report(_variant_counts(counts)).as_json()
        return result


def _require(repo: ExperimentRepository, experiment_id: str) -> ExperimentRecord:
    record = repo.get(experiment_id)
    if record is None:
        raise ExperimentNotFoundError(
            f"experiment {experiment_id} not found", details={"experiment_id": experiment_id}
        )
    return record


def _summary(record: ExperimentRecord) -> dict[str, Any]:
    total = math.fsum(a.weight for a in record.arms)
    return {
        "experiment_id": record.experiment_id,
        "name": record.name,
        "hypothesis": record.hypothesis,
        "primary_metric": record.primary_metric,
        "guardrails": record.guardrail_metrics,
        "layer": record.layer,
        "traffic": record.traffic,
        "buckets": None
        if record.bucket_start is None
        else {"start": record.bucket_start, "end": record.bucket_end},
        "population": record.population,
        "salt": record.salt,
        "allocation": record.allocation,
        "exploration_floor": record.exploration_floor,
        "status": record.status,
        "author": record.author,
        "approver": record.approver,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
        "started_at": record.started_at,
        "stopped_at": record.stopped_at,
        "version": record.version,
        "arms": [
            {
                "name": a.name,
                "control": a.position == 0,
                "weight": a.weight,
                "share": a.weight / total if total > 0 else 0.0,
                "changes": a.changes,
            }
            for a in record.arms
        ],
    }


def _history_json(h: HistoryRecord) -> dict[str, Any]:
    return {
        "action": h.action,
        "from_status": h.from_status,
        "to_status": h.to_status,
        "actor": h.actor,
        "at": h.at,
        "note": h.note,
        "detail": h.detail,
    }


def _estimate_json(e: stats.Estimate | None) -> dict[str, float] | None:
    if e is None:
        return None
    return {"value": e.value, "std_error": e.std_error, "ci_low": e.ci_low, "ci_high": e.ci_high}


@dataclass
class _ArmData:
    """Per exposed customer of one arm (index-aligned arrays)."""

    customers: list[str]
    impressions: np.ndarray[Any, np.dtype[np.float64]]
    clicks: np.ndarray[Any, np.dtype[np.float64]]
    conversions: np.ndarray[Any, np.dtype[np.float64]]
    value: np.ndarray[Any, np.dtype[np.float64]]
    margin: np.ndarray[Any, np.dtype[np.float64]]
    cost: np.ndarray[Any, np.dtype[np.float64]]
    opted_out: np.ndarray[Any, np.dtype[np.float64]]
    complained: np.ndarray[Any, np.dtype[np.float64]]
    pre: np.ndarray[Any, np.dtype[np.float64]]

    @property
    def n(self) -> int:
        return len(self.customers)


class _Analysis:
    """One experiment's analysis, computed from the rows read in one transaction."""

    def __init__(
        self,
        record: ExperimentRecord,
        history: Sequence[HistoryRecord],
        exposed: Sequence[CustomerExposure],
        outcomes: Sequence[CustomerOutcome],
        assigned: Mapping[str, int],
        pre: Mapping[str, int],
        service: ExperimentService,
    ) -> None:
        self.record = record
        self.history = history
        self.exposed = exposed
        self.assigned = assigned
        self.alpha = service.alpha
        self.window = service.attribution_window
        self.arm_names = [a.name for a in record.arms]
        by_customer: dict[tuple[str, str], dict[str, CustomerOutcome]] = {}
        for o in outcomes:
            by_customer.setdefault((o.customer_id, o.arm), {})[o.kind] = o
        self.data = {name: self._arm_data(name, by_customer, pre) for name in self.arm_names}

    def _arm_data(
        self,
        arm: str,
        outcomes: Mapping[tuple[str, str], Mapping[str, CustomerOutcome]],
        pre: Mapping[str, int],
    ) -> _ArmData:
        rows = [e for e in self.exposed if e.arm == arm]
        empty = CustomerOutcome("", arm, "", 0, 0, 0)

        def column(kind: str, field: str) -> np.ndarray[Any, np.dtype[np.float64]]:
            values = [getattr(outcomes.get((e.customer_id, arm), {}).get(kind, empty), field) for e in rows]
            return np.asarray(values, dtype=np.float64)

        return _ArmData(
            customers=[e.customer_id for e in rows],
            impressions=np.asarray([e.impressions for e in rows], dtype=np.float64),
            clicks=column("click", "count"),
            conversions=column("convert", "count"),
            value=column("convert", "value"),
            margin=column("convert", "margin_fen"),
            cost=column("convert", "cost_fen"),
            opted_out=np.minimum(column("opt_out", "count"), 1.0),
            complained=np.minimum(column("complaint", "count"), 1.0),
            pre=np.asarray([pre.get(e.customer_id, 0) for e in rows], dtype=np.float64),
        )

    def _estimates(self, d: _ArmData) -> dict[str, stats.Estimate | None]:
        a = self.alpha
        if d.n < 2:
            return dict.fromkeys(METRICS)
        return {
            "ctr": stats.ratio(d.clicks, d.impressions, alpha=a),
            "conversion_rate": stats.proportion(int(np.count_nonzero(d.conversions)), d.n, alpha=a),
            "aum_per_customer": stats.mean(d.value, alpha=a),
            "margin_per_customer": stats.mean(d.margin, alpha=a),
            "rights_cost_per_conversion": stats.ratio(d.cost, d.conversions, alpha=a)
            if d.conversions.sum() > 0
            else None,
            "opt_out_rate": stats.proportion(int(d.opted_out.sum()), d.n, alpha=a),
            "complaint_rate": stats.proportion(int(d.complained.sum()), d.n, alpha=a),
        }

    def _compare(
        self,
        metric: str,
        t: _ArmData,
        c: _ArmData,
        est_t: Mapping[str, stats.Estimate | None],
        est_c: Mapping[str, stats.Estimate | None],
    ) -> stats.Comparison | None:
        if t.n < 2 or c.n < 2:
            return None
        a = self.alpha
        if metric in {"conversion_rate", "opt_out_rate", "complaint_rate"}:
            column = {
                "conversion_rate": "conversions",
                "opt_out_rate": "opted_out",
                "complaint_rate": "complained",
            }
            x_t = int(np.count_nonzero(getattr(t, column[metric])))
            x_c = int(np.count_nonzero(getattr(c, column[metric])))
            return stats.compare_proportions(x_t, t.n, x_c, c.n, alpha=a)
        if metric == "aum_per_customer":
            return stats.compare_means(t.value, c.value, alpha=a)
        if metric == "margin_per_customer":
            return stats.compare_means(t.margin, c.margin, alpha=a)
        treatment, control = est_t[metric], est_c[metric]
        if treatment is None or control is None:
            return None
        return stats.compare_estimates(treatment, control, alpha=a)

    def _periods(self) -> list[tuple[datetime, dict[str, float]]]:
        """(from, weights) of each period of constant weights since the start."""
        weights: dict[str, float] = {}
        periods: list[tuple[datetime, dict[str, float]]] = []
        for h in self.history:
            if h.action in {"create", "weights"} and h.detail and "weights" in h.detail:
                weights = {str(k): float(v) for k, v in h.detail["weights"].items()}
                if periods:
                    periods.append((h.at, weights))
            elif h.action == "start":
                periods.append((h.at, weights))
        return periods

    def _srm(self) -> stats.SrmResult:
        periods = self._periods()
        current = {a.name: a.weight for a in self.record.arms}
        if not periods:
            periods = [(datetime.min.replace(tzinfo=UTC), current)]
        starts = [p[0] for p in periods]
        counts = [dict.fromkeys(self.arm_names, 0) for _ in periods]
        for e in self.exposed:
            index = 0 if e.assigned_at is None else max(0, bisect.bisect_right(starts, e.assigned_at) - 1)
            if e.arm in counts[index]:
                counts[index][e.arm] += 1
        return stats.srm_check_periods(
            [
                ([c[name] for name in self.arm_names], [w.get(name, 0.0) for name in self.arm_names])
                for c, (_at, w) in zip(counts, periods, strict=True)
            ]
        )

    def result(self) -> dict[str, Any]:
        record, alpha = self.record, self.alpha
        control_name = self.arm_names[0]
        control = self.data[control_name]
        estimates = {name: self._estimates(self.data[name]) for name in self.arm_names}
        treatments = self.arm_names[1:]
        comparisons: dict[str, dict[str, stats.Comparison | None]] = {
            name: {
                m: self._compare(m, self.data[name], control, estimates[name], estimates[control_name])
                for m in METRICS
            }
            for name in treatments
        }
        # Holm across the treatment arms, per metric.
        adjusted: dict[str, dict[str, float]] = {name: {} for name in treatments}
        for metric in METRICS:
            present = [(n, c) for n in treatments if (c := comparisons[n][metric]) is not None]
            for (name, _c), p in zip(present, stats.holm([c.p_value for _n, c in present]), strict=True):
                adjusted[name][metric] = p
        cuped: dict[str, tuple[stats.Comparison, float] | None] = {}
        for name in treatments:
            t = self.data[name]
            cuped[name] = (
                stats.compare_cuped(t.value, t.pre, control.value, control.pre, alpha=alpha)
                if t.n >= 2 and control.n >= 2
                else None
            )
        srm = self._srm()
        adaptive = record.allocation == "thompson"
        if adaptive:  # shares follow the results by design: no fixed ratio to test against
            srm = dataclasses.replace(srm, flagged=False)
        guardrails = []
        for name in treatments:
            for g in record.guardrail_metrics:
                comparison = comparisons[name].get(g["metric"])
                if comparison is None:
                    continue
                result = stats.guardrail_breach(
                    comparison,
                    metric=g["metric"],
                    tolerance=float(g["tolerance"]),
                    alpha=alpha,
                    higher_is_worse=g["metric"] in LOWER_IS_BETTER,
                )
                guardrails.append(
                    {
                        "arm": name,
                        "metric": result.metric,
                        "difference": result.difference,
                        "tolerance": result.tolerance,
                        "p_value": result.p_value,
                        "breached": result.breached,
                    }
                )
        arms = []
        for name in self.arm_names:
            d = self.data[name]
            arm = next(a for a in record.arms if a.name == name)
            vs_control: dict[str, Any] | None = None
            if name != control_name:
                vs_control = {}
                for metric in METRICS:
                    c = comparisons[name][metric]
                    vs_control[metric] = (
                        None
                        if c is None
                        else self._comparison_json(metric, c, adjusted[name].get(metric, c.p_value))
                    )
                cu = cuped[name]
                vs_control["aum_per_customer_cuped"] = (
                    None
                    if cu is None
                    else {**self._comparison_json("aum_per_customer", cu[0], cu[0].p_value), "theta": cu[1]}
                )
            arms.append(
                {
                    "arm": name,
                    "control": name == control_name,
                    "weight": arm.weight,
                    "assigned_customers": int(self.assigned.get(name, 0)),
                    "exposed_customers": d.n,
                    "impressions": int(d.impressions.sum()),
                    "clicks": int(d.clicks.sum()),
                    "conversions": int(d.conversions.sum()),
                    "converted_customers": int(np.count_nonzero(d.conversions)),
                    "aum_fen": int(d.value.sum()),
                    "margin_fen": int(d.margin.sum()),
                    "rights_cost_fen": int(d.cost.sum()),
                    "opt_outs": int(d.opted_out.sum()),
                    "complaints": int(d.complained.sum()),
                    "metrics": {m: _estimate_json(estimates[name][m]) for m in METRICS},
                    "vs_control": vs_control,
                }
            )
        primary = record.primary_metric
        mdes = [
            stats.mde_from_std_error(c.std_error, alpha=alpha)
            for name in treatments
            if (c := comparisons[name][primary]) is not None
        ]
        warnings = [stats.PEEKING_WARNING]
        if record.status == "running":
            warnings.append(RUNNING_WARNING)
        if adaptive:
            warnings.append(ADAPTIVE_WARNING)
        elif len(self._periods()) > 1:
            warnings.append(WEIGHTS_CHANGED_WARNING)
        return {
            "experiment_id": record.experiment_id,
            "name": record.name,
            "status": record.status,
            "primary_metric": primary,
            "allocation": record.allocation,
            "method": "fixed_horizon",
            "alpha": alpha,
            "correction": "holm",
            "attribution_window_days": self.window / timedelta(days=1),
            "warnings": warnings,
            "arms": arms,
            "srm": {
                "chi2": srm.chi2,
                "dof": srm.dof,
                "p_value": srm.p_value,
                "threshold": srm.threshold,
                "flagged": srm.flagged,
                "applicable": not adaptive,
                "observed": dict(zip(self.arm_names, srm.observed, strict=True)),
                "expected": dict(zip(self.arm_names, srm.expected, strict=True)),
            },
            "guardrails": guardrails,
            "sample_size": {
                "metric": primary,
                "exposed_per_arm": {name: self.data[name].n for name in self.arm_names},
                "mde_at_current_size": max(mdes) if mdes else None,
                "power": 0.8,
            },
            "verdict": self._verdict(srm, comparisons, adjusted, guardrails),
        }

    def _comparison_json(self, metric: str, c: stats.Comparison, p_adjusted: float) -> dict[str, Any]:
        better = c.difference < 0 if metric in LOWER_IS_BETTER else c.difference > 0
        return {
            "difference": c.difference,
            "relative": c.relative,
            "std_error": c.std_error,
            "ci_low": c.ci_low,
            "ci_high": c.ci_high,
            "p_value": c.p_value,
            "p_value_holm": p_adjusted,
            "significant": p_adjusted < self.alpha,
            "direction": "better" if better else ("same" if c.difference == 0 else "worse"),
        }

    def _verdict(
        self,
        srm: stats.SrmResult,
        comparisons: Mapping[str, Mapping[str, stats.Comparison | None]],
        adjusted: Mapping[str, Mapping[str, float]],
        guardrails: Sequence[Mapping[str, Any]],
    ) -> dict[str, Any]:
        final = self.record.status == "stopped"
        primary = self.record.primary_metric
        if srm.flagged:
            return {
                "decision": "blocked",
                "arm": None,
                "final": final,
                "reasons": [
                    f"sample ratio mismatch (chi-square p = {srm.p_value:.2g} < {srm.threshold}): "
                    "assignment or exposure logging is broken; no verdict until it is explained"
                ],
            }
        usable = [n for n in comparisons if comparisons[n][primary] is not None]
        if not usable:
            return {
                "decision": "insufficient_data",
                "arm": None,
                "final": final,
                "reasons": [f"fewer than 2 exposed customers in an arm, or no {primary} yet"],
            }
        breached = {g["arm"] for g in guardrails if g["breached"]}
        lower = primary in LOWER_IS_BETTER
        winners, losers, reasons = [], [], []
        for name in usable:
            c = comparisons[name][primary]
            assert c is not None
            significant = adjusted[name][primary] < self.alpha
            better = (c.difference < 0) if lower else (c.difference > 0)
            if name in breached:
                reasons.append(f"{name}: guardrail breached")
            elif significant and better:
                winners.append((abs(c.difference), name))
            elif significant:
                losers.append(name)
                reasons.append(f"{name}: significantly worse on {primary}")
        if winners:
            best = max(winners)[1]
            reasons.insert(0, f"{best}: significantly better on {primary} (Holm-adjusted), guardrails held")
            return {"decision": "ship", "arm": best, "final": final, "reasons": reasons}
        if breached or losers:
            return {"decision": "do_not_ship", "arm": None, "final": final, "reasons": reasons}
        return {
            "decision": "no_significant_difference",
            "arm": None,
            "final": final,
            "reasons": [f"no treatment differs significantly from control on {primary}"],
        }


def analysis_summary(analysis: Mapping[str, Any]) -> str:
    """A few lines of text for people (the CLI's ``--summary``, the demo): per arm the exposed
    customers and the primary metric with its interval, the SRM check and the verdict."""
    primary = analysis["primary_metric"]
    lines = [f"experiment {analysis['experiment_id']} ({analysis['status']}): {analysis['name']}"]
    for arm in analysis["arms"]:
        estimate = arm["metrics"].get(primary)
        figure = (
            "n/a"
            if estimate is None
            else f"{estimate['value']:.4g} [{estimate['ci_low']:.4g}, {estimate['ci_high']:.4g}]"
        )
        line = f"  {arm['arm']:<12} exposed {arm['exposed_customers']:>7,}  {primary} {figure}"
        comparison = (arm["vs_control"] or {}).get(primary)
        if comparison is not None:
            line += (
                f"  diff {comparison['difference']:+.4g} [{comparison['ci_low']:+.4g}, "
                f"{comparison['ci_high']:+.4g}] p(Holm) {comparison['p_value_holm']:.3g}"
            )
        lines.append(line)
    srm = analysis["srm"]
    if srm.get("applicable", True):
        lines.append(f"  SRM p = {srm['p_value']:.3g}" + (" (FLAGGED)" if srm["flagged"] else " (ok)"))
    for v in (analysis.get("bandit") or {}).get("variants", ()):
        lines.append(
            f"  bandit {v['variant']:<12} CTR {v['posterior_mean']:.4f} "
            f"[{v['ci_low']:.4f}, {v['ci_high']:.4f}]  P(best) {v['probability_best']:.3f}  "
            f"share {v['share']:.1%}"
        )
    verdict = analysis["verdict"]
    lines.append(
        f"  verdict: {verdict['decision']}"
        + (f" ({verdict['arm']})" if verdict["arm"] else "")
        + ("" if verdict["final"] else ", provisional")
        + (f": {verdict['reasons'][0]}" if verdict["reasons"] else "")
    )
    return "\n".join(lines)


OPT_OUTS: Final = Counter(
    "qianmian_experiment_opt_outs_total",
    "Marketing opt-outs seen on profile's change feed, by whether an experiment exposure took them",
    ["attributed"],
)
for _attributed in ("true", "false"):
    OPT_OUTS.labels(attributed=_attributed)


def opt_out_recorder(
    profile: ProfileSource, experiments: ExperimentService
) -> Callable[[str, datetime | None], Awaitable[None]]:
    """The change feed's ``consent`` handler: reads the customer's consents again and, when they opted
    out of personalised marketing or withdrew every channel's consent, records an ``opt_out`` for the
    experiments that exposed them within the attribution window (the opt-out guardrail). A repeated
    opt-out of one customer counts once in the analysis (opt-out rate: share of exposed customers)."""

    async def consent_changed(customer_id: str, at: datetime | None) -> None:
        view = await profile.customer(customer_id)
        if view.personalised and any(view.consents.values()):
            return
        when = at if at is not None and at.tzinfo is not None else experiments.now()
        made = await asyncio.to_thread(experiments.record_conversion, customer_id, "opt_out", at=when)
        OPT_OUTS.labels(attributed="true" if made else "false").inc()

    return consent_changed
