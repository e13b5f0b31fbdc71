"""The implied figures: exact expectations from what was served, with the analysis's attribution."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from recommender.simulation.implied import (
    ServedBundle,
    ServedDecision,
    arm_outcomes,
    daily_uplift,
    paired_implied_rates,
    uplift,
)

T0 = datetime(2026, 11, 1, tzinfo=UTC)
WEEK = timedelta(days=7)


def _decision(
    customer: str,
    arm: str,
    day: int,
    ps: list[float],
    *,
    exposed: bool = True,
    converted: tuple[bool, ...] = (),
    products: tuple[str, ...] = (),
) -> ServedDecision:
    at = T0 + timedelta(days=day, hours=10)
    names = products or tuple(f"P{r}" for r in range(len(ps)))
    flags = converted or (False,) * len(ps)
    return ServedDecision(
        decision_id=f"dec_{customer}_{day}",
        customer_id=customer,
        day=day,
        at=at,
        experiment_id="exp",
        arm=arm,
        exposed=exposed,
        bundles=tuple(
            ServedBundle(product_id=n, rank=r, affinity=p, p_convert=p, clicked=c, converted=c)
            for r, (n, p, c) in enumerate(zip(names, ps, flags, strict=True))
        ),
        converted_at=at + timedelta(minutes=5),
    )


def test_the_implied_rate_is_one_minus_the_chance_of_never_converting() -> None:
    decisions = [
        _decision("A", "cf", 0, [0.1, 0.2]),
        _decision("A", "cf", 2, [0.3]),
        _decision("B", "cf", 1, [0.5], converted=(True,)),
        _decision("C", "control", 1, [0.4]),
    ]
    out = arm_outcomes(decisions, "exp", window=WEEK)
    a = 1 - 0.9 * 0.8 * 0.7
    assert out["cf"].exposed_customers == 2
    assert out["cf"].implied_converted == pytest.approx(a + 0.5)
    assert out["cf"].implied_rate == pytest.approx((a + 0.5) / 2)
    assert out["cf"].converted_customers == 1
    assert out["control"].implied_rate == pytest.approx(0.4)
    up = uplift(out, "cf", "control")
    assert up.implied == pytest.approx((a + 0.5) / 2 - 0.4)
    assert up.observed is None  # one control customer: no interval


def test_only_decisions_within_the_window_after_an_exposure_count() -> None:
    decisions = [
        _decision("A", "cf", 0, [0.5], exposed=False, products=("X",)),  # before any exposure: not attributed
        _decision("A", "cf", 1, [0.2], products=("Y",)),  # the exposure
        _decision("A", "cf", 5, [0.3], exposed=False, products=("Z",)),  # within 7 days: attributed
        _decision("A", "cf", 9, [0.4], exposed=False, products=("W",)),  # 8 days later: not attributed
        _decision("B", "cf", 3, [0.9], exposed=False),  # never exposed: not in the denominator
    ]
    out = arm_outcomes(decisions, "exp", window=WEEK)["cf"]
    assert out.exposed_customers == 1
    assert out.exposures == 1
    assert out.implied_converted == pytest.approx(1 - 0.8 * 0.7)


def test_a_purchase_before_the_exposure_ends_the_products_chances() -> None:
    decisions = [
        _decision("A", "cf", 0, [0.5], exposed=False, products=("X",)),  # bought here half the time
        _decision("A", "cf", 1, [0.2], products=("X",)),  # attributed only if not bought before
    ]
    out = arm_outcomes(decisions, "exp", window=WEEK)["cf"]
    assert out.implied_converted == pytest.approx(0.2 * 0.5)
    assert out.implied_conversions == pytest.approx(0.2 * 0.5)


def test_expected_conversions_count_a_product_bought_once() -> None:
    decisions = [
        _decision("A", "cf", 0, [0.5], products=("X",)),
        _decision("A", "cf", 1, [0.5], products=("X",)),
    ]
    out = arm_outcomes(decisions, "exp", window=WEEK)["cf"]
    assert out.implied_converted == pytest.approx(0.75)
    assert out.implied_conversions == pytest.approx(0.5 + 0.5 * 0.5)


def test_the_implied_margin_weighs_each_attributed_purchase_by_its_value() -> None:
    decisions = [
        _decision("A", "cf", 0, [0.5, 0.2], products=("X", "Y")),
        _decision("A", "cf", 1, [0.5], products=("X",)),  # X bought at most once: 0.5 + 0.5 x 0.5
        _decision("B", "control", 0, [0.1], products=("Y",)),
    ]
    values = {"X": 700.0, "Y": 140.0}
    out = arm_outcomes(decisions, "exp", window=WEEK, values=values)
    assert out["cf"].implied_margin_fen == pytest.approx(100 * (0.75 * 700 + 0.2 * 140))
    assert out["cf"].implied_margin_per_customer == pytest.approx(100 * (0.75 * 700 + 0.2 * 140))
    assert out["control"].implied_margin_fen == pytest.approx(100 * 0.1 * 140)
    # Without values there is no margin, and the conversion figures do not change.
    plain = arm_outcomes(decisions, "exp", window=WEEK)
    assert plain["cf"].implied_margin_fen == 0.0
    assert plain["cf"].implied_conversions == out["cf"].implied_conversions == pytest.approx(0.95)


def test_the_implied_rate_is_what_sampled_customers_converge_to() -> None:
    rng = np.random.default_rng(5)
    ps = rng.uniform(0, 0.3, (20_000, 2))
    decisions = []
    for i, (p, q) in enumerate(ps):
        u = rng.random(2)
        decisions.append(_decision(f"C{i}", "cf", 0, [float(p)], converted=(bool(u[0] < p),)))
        decisions.append(_decision(f"C{i}", "cf", 1, [float(q)], converted=(bool(u[1] < q),)))
    out = arm_outcomes(decisions, "exp", window=WEEK)["cf"]
    assert out.conversion_rate == pytest.approx(out.implied_rate, abs=0.01)


def test_paired_rates_use_the_other_arms_answers_for_the_same_customers() -> None:
    decisions = [_decision("A", "cf", 0, [0.4]), _decision("B", "control", 0, [0.1])]
    counterfactual = {"dec_A_0": {"control": (("P0", 0.1),)}, "dec_B_0": {"cf": (("P0", 0.3),)}}
    rates = paired_implied_rates(decisions, counterfactual, "exp", window=WEEK)
    assert rates["cf"] == pytest.approx((0.4 + 0.3) / 2)
    assert rates["control"] == pytest.approx((0.1 + 0.1) / 2)


def test_daily_uplift_is_cumulative() -> None:
    decisions = [
        _decision("A", "cf", 0, [0.4], converted=(True,)),
        _decision("B", "control", 0, [0.1]),
        _decision("C", "cf", 1, [0.2]),
        _decision("D", "control", 1, [0.3], converted=(True,)),
    ]
    days = daily_uplift(decisions, "exp", treatment="cf", control="control", window=WEEK, days=2)
    assert [d.exposed for d in days] == [{"cf": 1, "control": 1}, {"cf": 2, "control": 2}]
    assert days[0].rates == {"cf": 1.0, "control": 0.0}
    assert days[1].uplift.implied == pytest.approx((0.4 + 0.2) / 2 - (0.1 + 0.3) / 2)


def test_first_choices_compare_what_was_served_with_the_models_own_pick() -> None:
    from recommender.simulation.implied import first_choices

    def candidate(pid: str, score: float, sources: list[str], allowed: bool = True) -> dict[str, object]:
        return {"product_id": pid, "score": score, "sources": sources, "allowed": allowed}

    p = {("A", "LOAN"): 0.01, ("A", "DEP"): 0.06, ("A", "FUND"): 0.08, ("B", "DEP"): 0.05}
    records = [
        (  # the model preferred DEP; arbitration served the loan; FUND (best) was not the model's
            "cf",
            "A",
            {"bundles": [{"product": {"id": "LOAN"}}]},
            [
                candidate("DEP", 1.0, ["cf:lightfm"]),
                candidate("LOAN", 0.6, ["cf:lightfm", "popularity:segment"]),
                candidate("FUND", 0.9, ["popularity:segment"]),
                candidate("WM", 2.0, ["cf:lightfm"], allowed=False),  # blocked: never the model's pick
            ],
        ),
        ("cf", "B", {"bundles": []}, [candidate("DEP", 1.0, ["cf:lightfm"])]),  # nothing served: skipped
        ("control", "B", {"bundles": [{"product": {"id": "DEP"}}]}, [candidate("DEP", 1.0, ["cf:pop"])]),
    ]
    out = first_choices(records, lambda c, pid: p.get((c, pid), 0.0))
    assert out["cf"].decisions == 1
    assert (out["cf"].served, out["cf"].model_first, out["cf"].best_allowed) == (0.01, 0.06, 0.08)
    assert (out["control"].served, out["control"].model_first) == (0.05, 0.05)
