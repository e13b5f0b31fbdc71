"""The experiment service on a real database: the maker-checker workflow, layer reservations, stored
(sticky) assignments under concurrency, attribution windows and the analysis.

Tests whose SQL differs by dialect (insert-ignoring-conflicts, the layer lock, aggregates, timestamps)
take ``database`` and run on SQLite and PostgreSQL (CI=true: PostgreSQL must be there); the others take
``sqlite_database``."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from qianmian_core.db import Database
from recommender.experiments.assignment import Holdout
from recommender.experiments.definition import ExperimentDefinition
from recommender.models import ExperimentAssignment, ExperimentConversion
from recommender.repository.experiments import ExperimentRepository
from recommender.service.experiments import (
    ApproverIsAuthorError,
    ArmMismatchError,
    ExperimentNotFoundError,
    ExperimentNotRunningError,
    ExperimentService,
    IllegalTransitionError,
    InvalidArmChangesError,
    InvalidWeightsError,
    LayerFullError,
    WeightsLockedError,
)
from sqlalchemy import func, select

START = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
AUTHOR, CHECKER = "console-alice", "console-bob"


class Clock:
    def __init__(self) -> None:
        self.at = START

    def __call__(self) -> datetime:
        return self.at


def definition(**overrides: Any) -> ExperimentDefinition:
    body: dict[str, Any] = {
        "name": "CF vs popularity",
        "hypothesis": "CF converts better",
        "primary_metric": "conversion_rate",
        "arms": [{"name": "control", "weight": 50}, {"name": "cf", "weight": 50}],
    }
    return ExperimentDefinition.model_validate(body | overrides)


def service(database: Database, clock: Clock | None = None, **kwargs: Any) -> ExperimentService:
    return ExperimentService(database, holdout=Holdout(share=0.0), now=clock or Clock(), **kwargs)


def running(svc: ExperimentService, **overrides: Any) -> str:
    experiment_id = str(svc.create(definition(**overrides), author=AUTHOR)["experiment_id"])
    svc.transition(experiment_id, "submit", actor=AUTHOR)
    svc.transition(experiment_id, "approve", actor=CHECKER)
    svc.transition(experiment_id, "start", actor=AUTHOR)
    return experiment_id


def stored_rows(database: Database, experiment_id: str, customer_id: str | None = None) -> int:
    query = select(func.count()).where(ExperimentAssignment.experiment_id == experiment_id)
    if customer_id is not None:
        query = query.where(ExperimentAssignment.customer_id == customer_id)
    with database.session() as session:
        return int(session.execute(query).scalar_one())


def test_workflow_needs_an_approver_other_than_the_author(sqlite_database: Database) -> None:
    svc = service(sqlite_database)
    created = svc.create(definition(), author=AUTHOR)
    experiment_id = created["experiment_id"]
    assert (created["status"], created["author"], created["buckets"]) == ("draft", AUTHOR, None)
    assert [a["control"] for a in created["arms"]] == [True, False]
    with pytest.raises(IllegalTransitionError):
        svc.transition(experiment_id, "approve", actor=CHECKER)  # not submitted yet
    svc.transition(experiment_id, "submit", actor=AUTHOR)
    with pytest.raises(ApproverIsAuthorError):
        svc.transition(experiment_id, "approve", actor=AUTHOR)
    with pytest.raises(WeightsLockedError):
        svc.update_weights(experiment_id, {"control": 1, "cf": 1}, actor=AUTHOR)
    approved = svc.transition(experiment_id, "approve", actor=CHECKER, note="looks right")
    assert (approved["status"], approved["approver"]) == ("approved", CHECKER)
    started = svc.transition(experiment_id, "start", actor=AUTHOR)
    assert started["status"] == "running"
    assert started["buckets"] == {"start": 0, "end": 10_000}
    stopped = svc.transition(experiment_id, "stop", actor=CHECKER, note="planned size reached")
    assert stopped["status"] == "stopped"
    assert [(h["action"], h["actor"], h["to_status"]) for h in stopped["history"]] == [
        ("create", AUTHOR, "draft"),
        ("submit", AUTHOR, "pending_approval"),
        ("approve", CHECKER, "approved"),
        ("start", AUTHOR, "running"),
        ("stop", CHECKER, "stopped"),
    ]
    with pytest.raises(IllegalTransitionError):
        svc.transition(experiment_id, "start", actor=AUTHOR)
    with pytest.raises(ExperimentNotFoundError):
        svc.get("exp_" + "0" * 32)
    assert [e["experiment_id"] for e in svc.list_experiments("stopped")] == [experiment_id]


def test_invalid_arm_changes_are_refused_at_creation(sqlite_database: Database) -> None:
    arms = [
        {"name": "control", "weight": 1},
        {"name": "levers", "weight": 1, "changes": {"arbitration": {"moment_weights": {"nope": 2}}}},
    ]
    with pytest.raises(InvalidArmChangesError):
        service(sqlite_database).create(definition(arms=arms), author=AUTHOR)


def test_experiments_of_one_layer_reserve_disjoint_buckets(database: Database) -> None:
    svc = service(database)
    first = svc.get(running(svc, layer="ranking", traffic=0.6))
    second = svc.create(definition(layer="ranking", traffic=0.6), author=AUTHOR)["experiment_id"]
    svc.transition(second, "submit", actor=AUTHOR)
    svc.transition(second, "approve", actor=CHECKER)
    with pytest.raises(LayerFullError):
        svc.transition(second, "start", actor=AUTHOR)
    third = svc.get(running(svc, layer="ranking", traffic=0.4))
    assert first["buckets"] == {"start": 0, "end": 6000}
    assert third["buckets"] == {"start": 6000, "end": 10_000}
    other_layer = svc.get(running(svc, layer="content", traffic=1.0))
    assert other_layer["buckets"] == {"start": 0, "end": 10_000}
    seen: Counter[int] = Counter()
    for n in range(300):
        got = svc.assign(f"C{n:06d}", "app", [])
        ranking = [a for a in got.arms if a.layer == "ranking"]
        seen[len(ranking)] += 1
        assert got.arm_of(other_layer["experiment_id"]) is not None
    assert set(seen) == {1}  # the two ranking experiments cover the layer, never together
    # Stopping frees the range for the waiting one.
    svc.transition(first["experiment_id"], "stop", actor=AUTHOR)
    assert svc.transition(second, "start", actor=AUTHOR)["buckets"] == {"start": 0, "end": 6000}


def test_assignment_is_stored_once_and_the_same_in_every_channel_and_after_a_restart(
    database: Database,
) -> None:
    svc = service(database)
    experiment_id = running(svc, population={"segments": ["wealth"], "channels": ["app", "push", "sms"]})
    arms = {}
    for n in range(200):
        customer = f"C{n:06d}"
        got = {svc.assign(customer, channel, ["wealth"]).arm_of(experiment_id) for channel in ("app", "push")}
        assert len(got) == 1
        arms[customer] = got.pop()
        assert svc.assign(customer, "online_rm", ["wealth"]).arms == ()  # outside the channels
        assert svc.assign(customer, "app", ["payroll"]).arms == ()  # outside the segments
    assert stored_rows(database, experiment_id) == 200
    restarted = service(database)
    assert all(restarted.assign(c, "sms", ["wealth"]).arm_of(experiment_id) == a for c, a in arms.items())
    assert stored_rows(database, experiment_id) == 200
    assert set(arms.values()) == {"control", "cf"}


def test_holdout_customers_get_nothing_and_nothing_is_stored(sqlite_database: Database) -> None:
    svc = ExperimentService(sqlite_database, holdout=Holdout(share=0.2), now=Clock())
    experiment_id = running(svc)
    held = [f"C{n:06d}" for n in range(500) if svc.holdout.contains(f"C{n:06d}")]
    assert 60 < len(held) < 140
    for customer in held:
        got = svc.assign(customer, "app", [])
        assert got.holdout
        assert got.arms == ()
    assert stored_rows(sqlite_database, experiment_id) == 0


def test_weight_change_keeps_stored_arms_and_moves_new_customers(database: Database) -> None:
    svc = service(database)
    experiment_id = running(svc, arms=[{"name": "control", "weight": 1}, {"name": "cf", "weight": 0}])
    early = [f"E{n:05d}" for n in range(100)]
    assert {svc.assign(c, "app", []).arm_of(experiment_id) for c in early} == {"control"}
    updated = svc.update_weights(experiment_id, {"control": 0, "cf": 1}, actor=AUTHOR, note="ramp")
    assert [a["weight"] for a in updated["arms"]] == [0, 1]
    assert updated["history"][-1]["detail"] == {"weights": {"control": 0.0, "cf": 1.0}}
    fresh = service(database)  # another process: reads stored arms from the database
    for svc_ in (svc, fresh):
        assert {svc_.assign(c, "app", []).arm_of(experiment_id) for c in early} == {"control"}
        assert {svc_.assign(f"L{n:05d}", "app", []).arm_of(experiment_id) for n in range(100)} == {"cf"}
    with pytest.raises(InvalidWeightsError):
        svc.update_weights(experiment_id, {"control": 1}, actor=AUTHOR)
    with pytest.raises(InvalidWeightsError):
        svc.update_weights(experiment_id, {"control": 0, "cf": 0}, actor=AUTHOR)


def test_concurrent_first_assignments_of_one_customer_store_one_arm(database: Database) -> None:
    # Two processes disagree on the weights (one still caches control-only): whichever stores first
    # wins, and every caller returns the stored arm.
    stale = service(database, cache_ttl_s=3600)
    experiment_id = running(stale, arms=[{"name": "control", "weight": 1}, {"name": "cf", "weight": 0}])
    stale.assigner()
    fresh = service(database, cache_ttl_s=3600)
    fresh.update_weights(experiment_id, {"control": 0, "cf": 1}, actor=AUTHOR)
    for round_ in range(3):
        customer = f"RACE-{round_}"
        barrier = threading.Barrier(16)

        def one(i: int, customer: str = customer, barrier: threading.Barrier = barrier) -> str | None:
            svc = stale if i % 2 else fresh
            barrier.wait()
            return svc.assign(customer, "app", []).arm_of(experiment_id)

        with ThreadPoolExecutor(max_workers=16) as pool:
            results = list(pool.map(one, range(16)))
        assert len(set(results)) == 1, results
        assert stored_rows(database, experiment_id, customer) == 1
        with database.session() as session:
            stored = ExperimentRepository(session).stored_arms(customer, [experiment_id])
        assert stored == {experiment_id: results[0]}


def test_exposures_need_the_stored_arm_and_a_running_experiment(sqlite_database: Database) -> None:
    svc = service(sqlite_database)
    experiment_id = running(svc)
    arm = svc.assign("C1", "app", []).arm_of(experiment_id)
    assert arm is not None
    other = "cf" if arm == "control" else "control"
    with pytest.raises(ArmMismatchError):
        svc.record_exposure(experiment_id, other, "C1", channel="app")
    with pytest.raises(ArmMismatchError):
        svc.record_exposure(experiment_id, arm, "NEVER-ASSIGNED", channel="app")
    svc.record_exposure(experiment_id, arm, "C1", channel="app", decision_id="dec_1")
    draft = svc.create(definition(), author=AUTHOR)["experiment_id"]
    with pytest.raises(ExperimentNotRunningError):
        svc.record_exposure(draft, "control", "C1", channel="app")


def test_conversions_attribute_to_exposures_within_the_window(database: Database) -> None:
    clock = Clock()
    svc = service(database, clock, attribution_window=timedelta(days=7))
    experiment_id = running(svc)
    arm = svc.assign("C1", "app", []).arm_of(experiment_id)
    assert arm is not None
    assert svc.record_conversion("C1", "convert", at=START) == ()  # before any exposure
    svc.record_exposure(experiment_id, arm, "C1", channel="app", decision_id="dec_1", at=START)
    inside = svc.record_conversion(
        "C1", "convert", at=START + timedelta(days=3), value=500_000, cost_fen=1_500, margin_fen=14_000
    )
    assert [(a.experiment_id, a.arm, a.exposed_at) for a in inside] == [(experiment_id, arm, START)]
    assert svc.record_conversion("C1", "convert", at=START + timedelta(days=7, seconds=1)) == ()
    assert svc.record_conversion("OTHER", "click", at=START + timedelta(hours=1)) == ()
    with database.session() as session:
        rows = session.execute(select(ExperimentConversion)).scalars().all()
        assert [
            (r.customer_id, r.arm, r.kind, r.value, r.cost_fen, r.margin_fen, r.decision_id) for r in rows
        ] == [("C1", arm, "convert", 500_000, 1_500, 14_000, "dec_1")]


def _simulate(svc: ExperimentService, experiment_id: str, per_arm: int, rates: dict[str, float]) -> None:
    """Expose ``per_arm`` customers of each arm once and convert a deterministic share of each arm
    (value 10,000 fen, margin 7,000 fen in control and 3,000 fen in the treatment: more conversions,
    less margin each). The arms are filled to the same size whatever the hash split of this run's
    random experiment id, so the sample-ratio check cannot flag it by chance."""
    seen: Counter[str] = Counter()
    n = 0
    while min(seen[arm] for arm in rates) < per_arm:
        customer = f"S{n:06d}"
        n += 1
        arm = svc.assign(customer, "app", []).arm_of(experiment_id)
        assert arm is not None
        if seen[arm] >= per_arm:
            continue
        svc.record_exposure(experiment_id, arm, customer, channel="app", at=START)
        seen[arm] += 1
        if seen[arm] % round(1 / rates[arm]) == 0:
            svc.record_conversion(customer, "click", at=START + timedelta(hours=1))
            svc.record_conversion(
                customer,
                "convert",
                at=START + timedelta(hours=2),
                value=10_000,
                cost_fen=100,
                margin_fen=7_000 if arm == "control" else 3_000,
            )


def test_analysis_reports_per_arm_figures_and_a_verdict(database: Database) -> None:
    svc = service(database)
    experiment_id = running(svc)
    _simulate(svc, experiment_id, 100, {"control": 0.1, "cf": 0.5})
    result = svc.analysis(experiment_id)
    control, cf = result["arms"]
    assert control["arm"] == "control"
    assert control["control"]
    assert control["exposed_customers"] + cf["exposed_customers"] == 200
    for arm, rate in ((control, 0.1), (cf, 0.5)):
        n = arm["exposed_customers"]
        assert arm["impressions"] == n
        assert arm["conversions"] == arm["clicks"] == n // round(1 / rate)
        assert arm["aum_fen"] == 10_000 * arm["conversions"]
        margin = 7_000 if arm["arm"] == "control" else 3_000
        assert arm["margin_fen"] == margin * arm["conversions"]
        assert arm["metrics"]["margin_per_customer"]["value"] == pytest.approx(arm["margin_fen"] / n)
        assert arm["rights_cost_fen"] == 100 * arm["conversions"]
        assert arm["metrics"]["rights_cost_per_conversion"]["value"] == pytest.approx(100.0)
        assert arm["metrics"]["conversion_rate"]["value"] == pytest.approx(arm["conversions"] / n)
        assert arm["metrics"]["ctr"]["value"] == pytest.approx(arm["clicks"] / n)
    uplift = cf["vs_control"]["aum_per_customer"]
    assert uplift["difference"] == pytest.approx(
        cf["aum_fen"] / cf["exposed_customers"] - control["aum_fen"] / control["exposed_customers"]
    )
    assert cf["vs_control"]["conversion_rate"]["significant"]
    assert cf["vs_control"]["margin_per_customer"]["difference"] == pytest.approx(
        cf["margin_fen"] / cf["exposed_customers"] - control["margin_fen"] / control["exposed_customers"]
    )
    assert cf["vs_control"]["aum_per_customer_cuped"]["theta"] == 0.0  # no pre-period data
    assert not result["srm"]["flagged"]
    assert result["verdict"]["decision"] == "ship"
    assert result["verdict"]["arm"] == "cf"
    assert not result["verdict"]["final"]
    assert result["method"] == "fixed_horizon"
    assert any("peeking" in w for w in result["warnings"])
    assert {g["metric"] for g in result["guardrails"]} == {"opt_out_rate", "complaint_rate"}


def test_an_injected_sample_ratio_mismatch_blocks_the_verdict(sqlite_database: Database) -> None:
    svc = service(sqlite_database)
    experiment_id = running(svc)
    # Logging lost half of the treatment's exposures: 50/50 weights, about 600 against 300 exposed
    # (chi-square about 100 expected; even a 4-sigma unlucky split stays far above the p < 0.001 line,
    # whatever the experiment's random salt).
    kept: Counter[str] = Counter()
    for n in range(1200):
        customer = f"M{n:05d}"
        arm = svc.assign(customer, "app", []).arm_of(experiment_id)
        assert arm is not None
        if arm == "cf" and n % 2 == 0:
            continue
        svc.record_exposure(experiment_id, arm, customer, channel="app", at=START)
        kept[arm] += 1
        if n % 3 == 0:
            svc.record_conversion(customer, "convert", at=START + timedelta(hours=1), value=1)
    result = svc.analysis(experiment_id)
    assert result["srm"]["observed"] == dict(kept)
    assert result["srm"]["flagged"]
    assert result["verdict"]["decision"] == "blocked"
    assert "sample ratio mismatch" in result["verdict"]["reasons"][0]


def test_analysis_of_an_experiment_without_data(sqlite_database: Database) -> None:
    svc = service(sqlite_database)
    experiment_id = svc.create(definition(), author=AUTHOR)["experiment_id"]
    result = svc.analysis(experiment_id)
    assert result["verdict"]["decision"] == "insufficient_data"
    assert result["arms"][0]["metrics"]["ctr"] is None
    assert not result["srm"]["flagged"]
