"""Simulated days through the real decision API: decisions, then the customers' feedback.

Each simulated day ``d`` (midnight of ``start`` + ``d`` days), every customer of the population is
active with probability ``active_share``, at a uniformly drawn time between ``first_hour`` and
``last_hour``. An active customer asks for one decision (``POST /v1/decisions``, the configured
channel, placement and limit) and answers each returned bundle by the response model
(:mod:`recommender.simulation.response`): an ``impression`` 30 s after the decision, a ``click`` 60 s
after, a ``convert`` (with its amount for AUM products) 5 minutes after, each a ``POST /v1/feedback``
with its own Idempotency-Key and an explicit ``at``. For a decision that served bundles to a customer
in an experiment arm, the audit record (``GET /v1/decisions/{id}``) says whether the arm changed what
was served (``exposed``) and what the other arms would have served (``counterfactual``), which the
implied figures use (:mod:`recommender.simulation.implied`).

**Time.** The app's services read the :class:`SimClock` (:func:`install_clock` sets their ``now``):
each customer's visit runs in its own asyncio task with its own simulated time (a context variable),
so visits can overlap (``concurrency``) while every decision and feedback carries its own simulated
instant. The random draws of a day (who is active, when, every response uniform) are made before its
visits start, so a run is reproducible by seed whatever the interleaving.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

import httpx
import numpy as np

from recommender.simulation.implied import ServedBundle, ServedDecision
from recommender.simulation.response import Preferences, ResponseModel, ValueModel

IMPRESSION_DELAY: Final = timedelta(seconds=30)
CLICK_DELAY: Final = timedelta(seconds=60)
CONVERT_DELAY: Final = timedelta(minutes=5)
#: The experiment id of the global holdout's decisions.
HOLDOUT: Final = "holdout"


class SimClock:
    """Simulated time: ``clock()`` is the current task's instant (:meth:`set`), else the base time."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("the simulated clock needs a time zone")
        self.base = start
        self._var: ContextVar[datetime] = ContextVar(f"simclock_{id(self)}")

    def __call__(self) -> datetime:
        return self._var.get(self.base)

    def set(self, at: datetime) -> None:
        """Set the time of the current task (and of everything it awaits)."""
        self._var.set(at)


def install_clock(app: Any, clock: Callable[[], datetime]) -> None:
    """Make the recommender app's decisions, feedback and experiments read ``clock`` as their ``now``."""
    for name in ("decisions", "feedback", "experiments"):
        service = getattr(app.state, name, None)
        if service is not None:
            service.now = clock


@dataclass(frozen=True)
class SimulationConfig:
    """How the simulated customers behave and how the run is driven."""

    days: int = 14
    active_share: float = 0.15
    seed: int = 7
    channel: str = "app"
    placement: str = "home_banner"
    limit: int = 1
    concurrency: int = 8
    impressions: bool = True
    first_hour: float = 8.0
    last_hour: float = 22.0

    def __post_init__(self) -> None:
        if self.days < 1 or not 0 < self.active_share <= 1 or self.concurrency < 1:
            raise ValueError("days >= 1, 0 < active_share <= 1 and concurrency >= 1")
        if not 0 <= self.first_hour < self.last_hour <= 24:
            raise ValueError("0 <= first_hour < last_hour <= 24")
        if not 1 <= self.limit <= 10:
            raise ValueError("limit must be 1..10")


@dataclass
class DayStats:
    """What one simulated day did."""

    day: int
    active: int = 0
    decisions: int = 0
    with_bundles: int = 0
    in_experiment: int = 0
    exposed: int = 0
    impressions: int = 0
    clicks: int = 0
    conversions: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    #: Seconds spent waiting for each kind of request (summed over overlapping visits).
    waited: dict[str, float] = field(default_factory=dict)

    def error(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1

    def wait(self, kind: str, seconds: float) -> None:
        self.waited[kind] = self.waited.get(kind, 0.0) + seconds


@dataclass
class SimulationResult:
    """Everything served and done, day by day."""

    start: datetime
    config: SimulationConfig
    decisions: list[ServedDecision]
    days: list[DayStats]
    seconds: float
    #: Per decision id, per other arm: what it would have served, as (product id, P(convert)) by rank.
    counterfactual: dict[str, dict[str, tuple[tuple[str, float], ...]]] = field(default_factory=dict)

    @property
    def requests(self) -> int:
        return sum(d.decisions + d.impressions + d.clicks + d.conversions for d in self.days)


class Simulator:
    """Drives one recommender app (through ``client``) with simulated customers."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        token: str,
        preferences: Preferences,
        customers: Sequence[str],
        clock: SimClock,
        start: datetime,
        config: SimulationConfig | None = None,
        response: ResponseModel | None = None,
        values: ValueModel | None = None,
    ) -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {token}"}
        self.preferences = preferences
        self.customers = list(customers)
        self.clock = clock
        self.start = start
        self.config = config or SimulationConfig()
        self.response = response or ResponseModel()
        self.values = values or ValueModel({})
        self._bought: set[tuple[str, str]] = set()
        #: Per decision id: the other arms' answers as (product, P(convert)) per rank (implied, paired).
        self._counterfactual: dict[str, dict[str, tuple[tuple[str, float], ...]]] = {}

    async def run(self, progress: Callable[[DayStats], None] | None = None) -> SimulationResult:
        """Simulate every day; ``progress`` is called after each."""
        rng = np.random.default_rng(self.config.seed)
        decisions: list[ServedDecision] = []
        days: list[DayStats] = []
        started = time.perf_counter()
        for day in range(self.config.days):
            stats = DayStats(day)
            t0 = time.perf_counter()
            decisions.extend(await self._day(day, rng, stats))
            stats.seconds = time.perf_counter() - t0
            days.append(stats)
            self.clock.base = self.start + timedelta(days=day + 1)
            if progress is not None:
                progress(stats)
        return SimulationResult(
            start=self.start,
            config=self.config,
            decisions=decisions,
            days=days,
            seconds=time.perf_counter() - started,
            counterfactual=self._counterfactual,
        )

    async def _day(self, day: int, rng: np.random.Generator, stats: DayStats) -> list[ServedDecision]:
        cfg = self.config
        n = len(self.customers)
        active = np.flatnonzero(rng.random(n) < cfg.active_share)
        hours = rng.uniform(cfg.first_hour, cfg.last_hour, active.shape[0])
        draws = rng.random((active.shape[0], cfg.limit, 3))
        order = np.argsort(hours, kind="stable")
        midnight = self.start + timedelta(days=day)
        stats.active = int(active.shape[0])
        semaphore = asyncio.Semaphore(cfg.concurrency)
        out: list[ServedDecision | None] = [None] * len(order)

        async def visit(slot: int, k: int) -> None:
            async with semaphore:
                at = midnight + timedelta(hours=float(hours[k]))
                out[slot] = await self._visit(self.customers[int(active[k])], day, at, draws[k], stats)

        await asyncio.gather(*(visit(slot, int(k)) for slot, k in enumerate(order)))
        return [d for d in out if d is not None]

    async def _visit(
        self, customer_id: str, day: int, at: datetime, draws: np.ndarray[Any, Any], stats: DayStats
    ) -> ServedDecision | None:
        """One customer's decision and feedback (in its own task, so the clock is its own)."""
        cfg = self.config
        self.clock.set(at)
        t0 = time.perf_counter()
        resp = await self.client.post(
            "/v1/decisions",
            json={
                "customer_id": customer_id,
                "channel": cfg.channel,
                "placement": cfg.placement,
                "limit": cfg.limit,
            },
            headers=self.headers,
        )
        stats.wait("decision", time.perf_counter() - t0)
        if resp.status_code != 200:
            stats.error(f"decision {resp.status_code}")
            return None
        body = resp.json()
        stats.decisions += 1
        decision_id = str(body["decision_id"])
        experiment = body.get("experiment")
        experiment_id = None if experiment is None else str(experiment["id"])
        arm = None if experiment is None else str(experiment["arm"])
        offered = body["bundles"]
        stats.with_bundles += bool(offered)
        exposed, differ = False, None
        if offered and experiment_id is not None and experiment_id != HOLDOUT:
            stats.in_experiment += 1
            exposed, differ = await self._exposure(decision_id, customer_id, stats)
            stats.exposed += exposed
        bundles: list[ServedBundle] = []
        for rank, bundle in enumerate(offered):
            product_id = str(bundle["product"]["id"])
            affinity = self.preferences.of(customer_id, product_id)
            now_affinity = 0.0 if (customer_id, product_id) in self._bought else affinity
            u_convert, u_click, u_value = (float(x) for x in draws[rank])
            answer = self.response.respond(now_affinity, rank, u_convert, u_click)
            value = self.values.value_fen(customer_id, product_id, u_value) if answer.converted else None
            if cfg.impressions:
                await self._feedback(
                    decision_id, product_id, "impression", at + IMPRESSION_DELAY, None, stats
                )
            if answer.clicked:
                await self._feedback(decision_id, product_id, "click", at + CLICK_DELAY, None, stats)
            if answer.converted:
                self._bought.add((customer_id, product_id))
                await self._feedback(decision_id, product_id, "convert", at + CONVERT_DELAY, value, stats)
            bundles.append(
                ServedBundle(
                    product_id=product_id,
                    rank=rank,
                    affinity=affinity,
                    p_convert=self.response.p_convert(affinity, rank),
                    clicked=answer.clicked,
                    converted=answer.converted,
                    value_fen=value,
                )
            )
        return ServedDecision(
            decision_id=decision_id,
            customer_id=customer_id,
            day=day,
            at=at,
            experiment_id=experiment_id,
            arm=arm,
            exposed=exposed,
            bundles=tuple(bundles),
            converted_at=at + CONVERT_DELAY,
            answers_differ=differ,
        )

    async def _exposure(
        self, decision_id: str, customer_id: str, stats: DayStats
    ) -> tuple[bool, bool | None]:
        """From the decision's audit record: whether it logged an exposure, and whether another arm's
        answer differs from the one served; keeps the counterfactual answers for the implied figures."""
        t0 = time.perf_counter()
        resp = await self.client.get(f"/v1/decisions/{decision_id}", headers=self.headers)
        stats.wait("audit read", time.perf_counter() - t0)
        if resp.status_code != 200:
            stats.error(f"audit {resp.status_code}")
            return False, None
        experiment: Mapping[str, Any] = resp.json()["features"].get("experiment") or {}
        others: Mapping[str, Any] = experiment.get("counterfactual") or {}
        served = experiment.get("served")
        self._counterfactual[decision_id] = {
            str(arm): tuple(
                (
                    str(offer[0]),
                    self.response.p_convert(self.preferences.of(customer_id, str(offer[0])), rank),
                )
                for rank, offer in enumerate(answer)
            )
            for arm, answer in others.items()
        }
        differ = None if served is None else any(answer != served for answer in others.values())
        return bool(experiment.get("exposed")), differ

    async def _feedback(
        self,
        decision_id: str,
        product_id: str,
        event: str,
        at: datetime,
        value: int | None,
        stats: DayStats,
    ) -> None:
        self.clock.set(at)
        body: dict[str, Any] = {
            "decision_id": decision_id,
            "product_id": product_id,
            "event": event,
            "at": at.isoformat(),
        }
        if value is not None:
            body["value"] = value
        t0 = time.perf_counter()
        resp = await self.client.post(
            "/v1/feedback",
            json=body,
            headers={**self.headers, "Idempotency-Key": f"sim.{decision_id}.{product_id}.{event}"},
        )
        stats.wait(f"feedback {event}", time.perf_counter() - t0)
        if resp.status_code not in (200, 201):
            stats.error(f"feedback {event} {resp.status_code}")
            return
        if event == "impression":
            stats.impressions += 1
        elif event == "click":
            stats.clicks += 1
        elif event == "convert":
            stats.conversions += 1


def _banner_experiment(
    name: str, hypothesis: str, arms: list[dict[str, Any]], *, channel: str
) -> dict[str, Any]:
    """A 50/50 ranking-layer experiment on the channel's banner: conversion rate first, opt-outs and
    complaints guarded, all traffic."""
    return {
        "name": name,
        "hypothesis": hypothesis,
        "primary_metric": "conversion_rate",
        "guardrails": [
            {"metric": "opt_out_rate", "tolerance": 0.001},
            {"metric": "complaint_rate", "tolerance": 0.0},
        ],
        "layer": "ranking",
        "traffic": 1.0,
        "population": {"channels": [channel]},
        "arms": arms,
    }


def ab_definition(
    control_version: str, treatment_version: str, *, days: int, channel: str = "app"
) -> dict[str, Any]:
    """The experiment the simulations run: segment popularity (control) against the CF model (``cf``),
    each pinned to a registry version, 50/50, conversion rate first, opt-outs and complaints guarded."""
    return _banner_experiment(
        "横幅推荐：协同过滤 vs 客群热门 (simulated)",
        "The CF model raises the share of exposed customers who convert against popularity "
        f"within segment, over a fixed horizon of {days} days, without more opt-outs or complaints",
        [
            {"name": "control", "weight": 50, "changes": {"model_version": control_version}},
            {"name": "cf", "weight": 50, "changes": {"model_version": treatment_version}},
        ],
        channel=channel,
    )


def ranker_ab_definition(*, days: int, channel: str = "app") -> dict[str, Any]:
    """The experiment that measures the learned ranker: production (the approved CF model, its candidates
    re-scored by the LightGBM ranker; arm ``ranker``) against the same model without it (``control``,
    ``changes.ranker: off``), 50/50, conversion rate first, opt-outs and complaints guarded."""
    return _banner_experiment(
        "横幅推荐：学习排序 vs 协同过滤打分 (simulated)",
        "Ranking the CF model's candidates by the ranker's P(add next month) raises the share of exposed "
        f"customers who convert, over a fixed horizon of {days} days, without more opt-outs or complaints",
        [
            {"name": "control", "weight": 50, "changes": {"ranker": "off"}},
            {"name": "ranker", "weight": 50, "changes": {}},
        ],
        channel=channel,
    )


async def launch(
    client: httpx.AsyncClient, definition: Mapping[str, Any], *, author_token: str, approver_token: str
) -> dict[str, Any]:
    """Create, submit, approve (by a second principal) and start an experiment; the running experiment."""
    author = {"Authorization": f"Bearer {author_token}"}
    approver = {"Authorization": f"Bearer {approver_token}"}
    created = await client.post("/v1/experiments", json=definition, headers=author)
    created.raise_for_status()
    experiment_id = created.json()["experiment_id"]
    moved = created
    for action, headers in (("submit", author), ("approve", approver), ("start", author)):
        moved = await client.post(
            f"/v1/experiments/{experiment_id}/status", json={"action": action}, headers=headers
        )
        moved.raise_for_status()
    body: dict[str, Any] = moved.json()
    return body


async def conclude(
    client: httpx.AsyncClient, experiment_id: str, *, token: str, note: str | None = None
) -> dict[str, Any]:
    """Stop the experiment (its fixed horizon is reached) and read the analysis once."""
    headers = {"Authorization": f"Bearer {token}"}
    stopped = await client.post(
        f"/v1/experiments/{experiment_id}/status", json={"action": "stop", "note": note}, headers=headers
    )
    stopped.raise_for_status()
    analysis = await client.get(f"/v1/experiments/{experiment_id}/analysis", headers=headers)
    analysis.raise_for_status()
    body: dict[str, Any] = analysis.json()
    return body


def result_to_json(result: SimulationResult) -> dict[str, Any]:
    """The result as JSON-ready data (to keep a long run and write its report again)."""
    return {
        "start": result.start.isoformat(),
        "config": asdict(result.config),
        "seconds": result.seconds,
        "days": [asdict(d) for d in result.days],
        "decisions": [
            {
                **asdict(d),
                "at": d.at.isoformat(),
                "converted_at": None if d.converted_at is None else d.converted_at.isoformat(),
            }
            for d in result.decisions
        ],
        "counterfactual": result.counterfactual,
    }


def result_from_json(data: Mapping[str, Any]) -> SimulationResult:
    """The inverse of :func:`result_to_json`."""
    return SimulationResult(
        start=datetime.fromisoformat(data["start"]),
        config=SimulationConfig(**data["config"]),
        decisions=[
            ServedDecision(
                **{
                    **d,
                    "at": datetime.fromisoformat(d["at"]),
                    "converted_at": None
                    if d["converted_at"] is None
                    else datetime.fromisoformat(d["converted_at"]),
                    "bundles": tuple(ServedBundle(**b) for b in d["bundles"]),
                }
            )
            for d in data["decisions"]
        ],
        days=[DayStats(**d) for d in data["days"]],
        seconds=float(data["seconds"]),
        counterfactual={
            decision: {arm: tuple((str(p), float(q)) for p, q in answer) for arm, answer in arms.items()}
            for decision, arms in data["counterfactual"].items()
        },
    )
