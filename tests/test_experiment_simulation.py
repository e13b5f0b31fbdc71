"""A small simulated A/B experiment through the real decision and feedback APIs (issue 7's simulator).

The embedded stack of tests/conftest.py (a 1,500-customer bank, Feast, the LightFM hybrid approved,
the four other services in-process) plus the segment-popularity baseline as a second approved
version; the recommender runs in-process on a simulated clock. An experiment (segment popularity
against LightFM, each arm pinned to its version) is created by console-alice, approved by
console-bob and started through the API; simulated customers of the bank answer what they are served
by their planted preferences for three days; then the analysis is read once. The mechanics are checked
against what the simulator saw: the split, exposures exactly where an arm changed the answer,
conversions attributed to the exposed arm, both arms analysed, the implied uplift computed.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from qianmian_core.testing import dev_token
from recommender.cli import main as recommender_cli
from recommender.main import create_app as create_recommender
from recommender.ml.registry import ModelRegistry
from recommender.service.context import ChangeFeedClient, FeastFeatureReader
from recommender.service.grants import RightsGrantClient
from recommender.service.profile import ProfileClient
from recommender.settings import RecommenderSettings
from recommender.simulation.implied import (
    ArmOutcome,
    ServedDecision,
    arm_outcomes,
    paired_implied_rates,
    uplift,
)
from recommender.simulation.response import Preferences, ResponseModel, ValueModel, aum_by_customer
from recommender.simulation.runner import (
    CLICK_DELAY,
    CONVERT_DELAY,
    SimClock,
    SimulationConfig,
    SimulationResult,
    Simulator,
    ab_definition,
    conclude,
    install_clock,
    launch,
)

DEV_TOKENS = Path("config/dev-tokens.yaml")
DAYS = 3


@dataclass
class Simulated:
    result: SimulationResult
    analysis: dict[str, Any]
    experiment: dict[str, Any]
    outcomes: dict[str, ArmOutcome]
    paired: dict[str, float]
    start: datetime
    audit_sample: dict[str, Any]


async def _simulate(app: Any, bank: Path, start: datetime, versions: dict[str, str]) -> Simulated:
    customers = pd.read_parquet(bank / "customers.parquet", columns=["customer_id", "aum"])
    clock = SimClock(start)
    install_clock(app, clock)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://rec.test") as client,
    ):
        experiment = await launch(
            client,
            ab_definition(versions["segment_popularity"], versions["lightfm"], days=DAYS),
            author_token=dev_token("console-alice"),
            approver_token=dev_token("console-bob"),
        )
        simulator = Simulator(
            client,
            token=dev_token("app-gateway"),
            preferences=Preferences.load(bank),
            customers=customers["customer_id"].tolist(),
            clock=clock,
            start=start,
            # Few decisions; a strong response so that conversions happen at this size.
            config=SimulationConfig(days=DAYS, active_share=0.07, seed=11, concurrency=4),
            response=ResponseModel(conversion_scale=1.0),
            values=ValueModel(aum_by_customer(customers["customer_id"], customers["aum"])),
        )
        result = await simulator.run()
        clock.base = start + timedelta(days=DAYS)
        analysis = await conclude(client, experiment["experiment_id"], token=dev_token("console-alice"))
        first = next(d for d in result.decisions if d.bundles)
        audit = await client.get(
            f"/v1/decisions/{first.decision_id}",
            headers={"Authorization": f"Bearer {dev_token('app-gateway')}"},
        )
        audit.raise_for_status()
    window = timedelta(days=analysis["attribution_window_days"])
    experiment_id = experiment["experiment_id"]
    return Simulated(
        result=result,
        analysis=analysis,
        experiment=experiment,
        outcomes=arm_outcomes(result.decisions, experiment_id, window=window),
        paired=paired_implied_rates(result.decisions, result.counterfactual, experiment_id, window=window),
        start=start,
        audit_sample={"decision": first, "record": audit.json()},
    )


@pytest.fixture(scope="module")
def simulated(seeded_stack: Callable[[int, int], Any]) -> Simulated:
    stack = seeded_stack(1500, 7)  # tests/conftest.py: bank, Feast, LightFM approved, four services
    mp = pytest.MonkeyPatch()
    mp.setenv("RECOMMENDER_REGISTRY_DIR", str(stack.registry_dir))
    mp.setenv("RECOMMENDER_LOG_LEVEL", "WARNING")
    try:
        trained = recommender_cli(
            ["train", "--data", str(stack.bank), "--model", "segment_popularity", "--approve", "--skip-eval"]
        )
        assert trained == 0
    finally:
        mp.undo()
    versions = {m.model_type: m.version for m in ModelRegistry(str(stack.registry_dir)).versions()}
    token, t = stack.token, stack.transport
    app = create_recommender(
        RecommenderSettings(
            database_url=stack.urls["rec"],
            registry_dir=str(stack.registry_dir),
            experiments_holdout_share=0.0,
            change_poll_s=0.05,
            environment="test",
            auth_tokens_file=DEV_TOKENS,
        ),
        install_signal=False,
        hub_cache=stack.hub_cache(),
        profile=ProfileClient("http://profile.test", token, transport=t(stack.profile_app)),
        changes=ChangeFeedClient("http://profile.test", token, transport=t(stack.profile_app)),
        features=FeastFeatureReader(stack.store),
        rights_grants=RightsGrantClient("http://rights-hub.test", token, transport=t(stack.rights_app)),
    )
    as_of = date.fromisoformat(json.loads((stack.bank / "manifest.json").read_text())["as_of"])
    start = datetime.combine(as_of, dtime(0), tzinfo=UTC)
    return asyncio.run(_simulate(app, stack.bank, start, versions))


def _in_arm(sim: Simulated, arm: str) -> list[ServedDecision]:
    return [d for d in sim.result.decisions if d.arm == arm]


def test_every_request_is_answered_and_runs_on_the_simulated_clock(simulated: Simulated) -> None:
    days = simulated.result.days
    assert [d.errors for d in days] == [{}] * DAYS
    assert sum(d.decisions for d in days) == sum(d.active for d in days) > 100
    assert sum(d.impressions for d in days) == sum(len(d.bundles) for d in simulated.result.decisions)
    record, decision = simulated.audit_sample["record"], simulated.audit_sample["decision"]
    assert datetime.fromisoformat(record["created_at"]) == decision.at
    assert simulated.start <= decision.at < simulated.start + timedelta(days=DAYS)


def test_customers_split_between_the_arms_by_weight(simulated: Simulated) -> None:
    arms = {a["arm"]: a for a in simulated.analysis["arms"]}
    assert set(arms) == {"control", "cf"}
    assigned = {name: a["assigned_customers"] for name, a in arms.items()}
    total = sum(assigned.values())
    # Every active customer asked in the app is assigned (no holdout, traffic 100 %), 50/50 within 4 sigma.
    assert total == len({d.customer_id for d in simulated.result.decisions if d.arm is not None})
    assert abs(assigned["cf"] - total / 2) <= 4 * math.sqrt(total / 4)
    assert not simulated.analysis["srm"]["flagged"]
    # The arm is sticky: a customer never shows up in both.
    seen: dict[str, str] = {}
    for d in simulated.result.decisions:
        if d.arm is not None:
            assert seen.setdefault(d.customer_id, d.arm) == d.arm


def test_exposures_are_logged_exactly_where_an_arm_changed_the_answer(simulated: Simulated) -> None:
    served = [d for d in simulated.result.decisions if d.bundles and d.arm is not None]
    assert all(d.exposed == d.answers_differ for d in served)
    unchanged = [d for d in served if not d.answers_differ]
    changed = [d for d in served if d.answers_differ]
    assert unchanged, "some answers are the same in both arms: those must not count"
    assert changed, "some answers differ: those are the exposures"
    arms = {a["arm"]: a for a in simulated.analysis["arms"]}
    for arm in ("control", "cf"):
        mine = [d for d in _in_arm(simulated, arm) if d.exposed]
        assert arms[arm]["impressions"] == len(mine)
        assert arms[arm]["exposed_customers"] == len({d.customer_id for d in mine})
    # Decisions without bundles never expose.
    assert not any(d.exposed for d in simulated.result.decisions if not d.bundles)


def _attributed(sim: Simulated, decision: ServedDecision, at: datetime) -> bool:
    """An exposure of the customer within the 7-day attribution window before ``at``."""
    return any(
        e.exposed and e.customer_id == decision.customer_id and at - timedelta(days=7) <= e.at <= at
        for e in sim.result.decisions
    )


def test_conversions_and_clicks_are_attributed_to_the_exposed_arm(simulated: Simulated) -> None:
    arms = {a["arm"]: a for a in simulated.analysis["arms"]}
    assert sum(d.conversions for d in simulated.result.days) > 0
    for arm in ("control", "cf"):
        tally = simulated.outcomes[arm]
        assert arms[arm]["converted_customers"] == tally.converted_customers
        assert arms[arm]["conversions"] == tally.conversions
        mine = _in_arm(simulated, arm)
        clicks = sum(
            b.clicked for d in mine for b in d.bundles if _attributed(simulated, d, d.at + CLICK_DELAY)
        )
        converts = sum(
            b.converted for d in mine for b in d.bundles if _attributed(simulated, d, d.at + CONVERT_DELAY)
        )
        assert (arms[arm]["clicks"], arms[arm]["conversions"]) == (clicks, converts)
    # Conversions of customers never exposed (their answers were the same in both arms) count nowhere.
    unexposed = [d for d in simulated.result.decisions if not _attributed(simulated, d, d.at + CONVERT_DELAY)]
    stray = sum(b.converted for d in unexposed for b in d.bundles)
    everything = sum(d.conversions for d in simulated.result.days)
    assert sum(a["conversions"] for a in arms.values()) == everything - stray


def test_the_analysis_compares_both_arms_and_the_implied_uplift_is_computed(simulated: Simulated) -> None:
    analysis = simulated.analysis
    assert analysis["status"] == "stopped"
    assert analysis["method"] == "fixed_horizon"
    assert analysis["verdict"]["final"] is True
    cf = next(a for a in analysis["arms"] if a["arm"] == "cf")
    assert cf["vs_control"]["conversion_rate"] is not None
    for arm in ("control", "cf"):
        o = simulated.outcomes[arm]
        assert 0 < o.implied_rate < 1
        assert o.implied_conversions >= o.implied_converted > 0
        assert 0 < simulated.paired[arm] < 1
    up = uplift(simulated.outcomes, "cf", "control")
    assert up.observed is not None
    assert up.implied == pytest.approx(
        simulated.outcomes["cf"].implied_rate - simulated.outcomes["control"].implied_rate
    )
    # The API's difference is the simulator's own (same customers, same attributions).
    assert cf["vs_control"]["conversion_rate"]["difference"] == pytest.approx(up.observed.difference)
