"""Content variants under Thompson-sampling allocation: the definition's rules, the daily draw, shares
that follow the clicks with an exploration floor, and the bandit report in the analysis."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError
from qianmian_core.db import Database
from recommender.experiments.definition import ExperimentDefinition
from recommender.models import ExperimentAssignment
from recommender.service.experiments import ArmMismatchError
from sqlalchemy import func, select

from .test_service import START, Clock, running, service

ARMS: list[dict[str, Any]] = [
    {"name": "control", "weight": 1},
    {"name": "warm", "weight": 1, "changes": {"content_variant": "CNT-WARM"}},
    {"name": "bold", "weight": 1, "changes": {"content_variant": "CNT-BOLD"}},
]
BANDIT: dict[str, Any] = {
    "primary_metric": "ctr",
    "allocation": "thompson",
    "exploration_floor": 0.1,
    "arms": ARMS,
}


def _definition(**overrides: Any) -> ExperimentDefinition:
    body: dict[str, Any] = {"name": "banner copy", "hypothesis": "bolder copy gets more clicks"}
    return ExperimentDefinition.model_validate(body | BANDIT | overrides)


def test_a_content_bandit_compares_content_variants_on_ctr_only() -> None:
    assert _definition().allocation == "thompson"
    with pytest.raises(ValidationError, match="optimises ctr"):
        _definition(primary_metric="conversion_rate")
    with pytest.raises(ValidationError, match="content variants only"):
        _definition(arms=[*ARMS[:2], {"name": "cf", "weight": 1, "changes": {"model_version": "als-1"}}])
    with pytest.raises(ValidationError, match="exceeds the whole traffic"):
        _definition(exploration_floor=0.4)
    with pytest.raises(ValidationError):
        _definition(allocation="epsilon_greedy")
    # A fixed split stays the default and is not restricted to content.
    fixed = ExperimentDefinition.model_validate(
        {"name": "n", "hypothesis": "h", "primary_metric": "conversion_rate", "arms": ARMS[:2]}
    )
    assert (fixed.allocation, fixed.exploration_floor) == ("fixed", 0.05)


def test_shares_follow_the_clicks_and_every_arm_keeps_its_floor(sqlite_database: Database) -> None:
    clock = Clock()
    svc = service(sqlite_database, clock, bandit_refresh_s=3_600.0)  # one allocation for the whole day
    experiment_id = running(svc, **BANDIT, name="banner copy")
    assert svc.get(experiment_id)["allocation"] == "thompson"

    before = svc.bandit_shares(experiment_id)
    assert sum(before.values()) == pytest.approx(1.0)
    assert all(s == pytest.approx(1 / 3, abs=0.03) for s in before.values())  # no data: no favourite

    # A day of traffic: each customer gets the day's draw, the same in every channel and on every call.
    ctr = {"control": 0.02, "warm": 0.03, "bold": 0.12}
    served: Counter[str] = Counter()
    for n in range(3_000):
        customer = f"B{n:05d}"
        arm = svc.assign(customer, "app", []).arm_of(experiment_id)
        assert arm is not None
        assert svc.assign(customer, "mini_program", []).arm_of(experiment_id) == arm
        served[arm] += 1
        svc.record_exposure(experiment_id, arm, customer, channel="app", at=START)
        if served[arm] % round(1 / ctr[arm]) == 0:
            svc.record_conversion(customer, "click", at=START + timedelta(minutes=5))
    # (4.6 standard deviations of a 3,000-customer split either side)
    assert all(abs(served[a] / 3_000 - before[a]) < 0.04 for a in before)  # the split follows the shares
    with sqlite_database.session() as session:  # not sticky: nothing stored per customer
        stored = session.scalar(select(func.count()).select_from(ExperimentAssignment))
    assert stored == 0

    # The shares are recomputed from the stored counts after bandit_refresh_s, or in a new process.
    svc = service(sqlite_database, clock, bandit_refresh_s=3_600.0)
    after = svc.bandit_shares(experiment_id)
    assert after["bold"] == pytest.approx(1 - 2 * 0.1, abs=0.01)  # P(best) ~ 1: all but the floors
    assert after["control"] >= 0.1
    assert after["warm"] >= 0.1
    assert sum(after.values()) == pytest.approx(1.0)

    # The next day the draw follows the new shares.
    clock.at = START + timedelta(days=1)
    next_day = Counter(svc.assign(f"B{n:05d}", "app", []).arm_of(experiment_id) for n in range(3_000))
    assert next_day["bold"] / 3_000 == pytest.approx(after["bold"], abs=0.04)

    analysis = svc.analysis(experiment_id)
    assert analysis["allocation"] == "thompson"
    assert analysis["srm"]["applicable"] is False
    assert analysis["srm"]["flagged"] is False
    assert any("Thompson" in w for w in analysis["warnings"])
    report = {v["variant"]: v for v in analysis["bandit"]["variants"]}
    assert report["bold"]["impressions"] == served["bold"]
    assert report["bold"]["clicks"] == served["bold"] // round(1 / ctr["bold"])
    assert report["bold"]["probability_best"] > 0.99
    for v in report.values():
        assert v["ci_low"] < v["posterior_mean"] < v["ci_high"]
    assert analysis["bandit"]["floor"] == 0.1


def test_an_exposure_of_a_bandit_arm_needs_no_stored_assignment(sqlite_database: Database) -> None:
    svc = service(sqlite_database)
    experiment_id = running(svc, **BANDIT, name="banner copy")
    svc.record_exposure(experiment_id, "warm", "C1", channel="app", at=START)
    svc.record_exposure(experiment_id, "bold", "C1", channel="app", at=START + timedelta(days=1))
    with pytest.raises(ArmMismatchError):
        svc.record_exposure(experiment_id, "no_such_arm", "C1", channel="app", at=START)
    analysis = svc.analysis(experiment_id)
    assert {v["variant"]: v["impressions"] for v in analysis["bandit"]["variants"]} == {
        "control": 0,
        "warm": 1,
        "bold": 1,
    }
