"""The report: detected against implied, the SRM line, the peeking statement, the chart."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from recommender.simulation.implied import ServedBundle, ServedDecision, arm_outcomes, daily_uplift, uplift
from recommender.simulation.report import ReportInput, conclusion, write_report

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def _estimate(value: float, half: float) -> dict[str, float]:
    return {"value": value, "std_error": half / 1.96, "ci_low": value - half, "ci_high": value + half}


def _analysis(difference: float, *, significant: bool, srm_flagged: bool = False) -> dict[str, Any]:
    metrics = ("ctr", "conversion_rate", "aum_per_customer", "rights_cost_per_conversion")
    arm = {
        "weight": 50,
        "assigned_customers": 1000,
        "exposed_customers": 400,
        "impressions": 500,
        "clicks": 20,
        "conversions": 12,
        "converted_customers": 12,
        "aum_fen": 0,
        "rights_cost_fen": 0,
        "opt_outs": 0,
        "complaints": 0,
    }
    compare = {
        "difference": difference,
        "relative": None,
        "std_error": 0.01,
        "ci_low": difference - 0.0196,
        "ci_high": difference + 0.0196,
        "p_value": 0.01 if significant else 0.5,
        "p_value_holm": 0.01 if significant else 0.5,
        "significant": significant,
        "direction": "better" if difference > 0 else "worse",
    }
    return {
        "experiment_id": "exp_x",
        "name": "x",
        "status": "stopped",
        "primary_metric": "conversion_rate",
        "method": "fixed_horizon",
        "alpha": 0.05,
        "correction": "holm",
        "attribution_window_days": 7.0,
        "warnings": ["Fixed-horizon test: do not peek."],
        "arms": [
            {
                **arm,
                "arm": "control",
                "control": True,
                "metrics": {m: _estimate(0.03, 0.01) for m in metrics},
                "vs_control": None,
            },
            {
                **arm,
                "arm": "cf",
                "control": False,
                "metrics": {m: _estimate(0.03 + difference, 0.01) for m in metrics},
                "vs_control": dict.fromkeys(metrics, compare),
            },
        ],
        "srm": {
            "chi2": 0.1,
            "dof": 1,
            "p_value": 0.75,
            "threshold": 0.001,
            "flagged": srm_flagged,
            "observed": {"control": 400, "cf": 400},
            "expected": {"control": 400.0, "cf": 400.0},
        },
        "guardrails": [
            {
                "arm": "cf",
                "metric": "opt_out_rate",
                "difference": 0.0,
                "tolerance": 0.001,
                "p_value": 1.0,
                "breached": False,
            }
        ],
        "sample_size": {
            "metric": "conversion_rate",
            "exposed_per_arm": {"control": 400, "cf": 400},
            "mde_at_current_size": 0.028,
            "power": 0.8,
        },
        "verdict": {
            "decision": "ship" if significant else "no_significant_difference",
            "arm": "cf" if significant else None,
            "final": True,
            "reasons": ["because"],
        },
    }


def _input(analysis: dict[str, Any], p_cf: float, p_control: float) -> ReportInput:
    decisions = []
    for i in range(40):
        arm, p = ("cf", p_cf) if i % 2 else ("control", p_control)
        at = T0 + timedelta(days=i % 3, hours=9)
        decisions.append(
            ServedDecision(
                decision_id=f"d{i}",
                customer_id=f"C{i}",
                day=i % 3,
                at=at,
                experiment_id="exp_x",
                arm=arm,
                exposed=True,
                bundles=(ServedBundle("P", 0, p, p, i % 5 == 0, i % 5 == 0),),
            )
        )
    window = timedelta(days=7)
    outcomes = arm_outcomes(decisions, "exp_x", window=window)
    return ReportInput(
        analysis=analysis,
        outcomes=outcomes,
        uplift=uplift(outcomes, "cf", "control"),
        paired_rates={"control": p_control, "cf": p_cf},
        daily=daily_uplift(decisions, "exp_x", treatment="cf", control="control", window=window, days=3),
        facts={"simulated days": "3"},
        labels={"control": "segment popularity", "cf": "CF"},
        response_model={"conversion_scale": 0.2},
    )


def test_a_significant_difference_covering_the_implied_one_is_detected(tmp_path: Path) -> None:
    data = _input(_analysis(0.02, significant=True), p_cf=0.05, p_control=0.03)
    ok, sentence = conclusion(data)
    assert ok
    assert "inside the interval" in sentence
    path = write_report(tmp_path, data)
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# A/B experiment, simulated")
    assert "**Detected.**" in text
    assert "fixed-horizon" in text
    assert "Fixed-horizon test: do not peek." in text
    assert "SRM chi-square" in text
    assert "not flagged" in text
    assert "| 3 |" in text  # the daily table
    assert (tmp_path / "experiments.png").stat().st_size > 10_000
    assert "Did arbitration keep" not in text  # no audit records were read
    from dataclasses import replace

    from recommender.simulation.implied import FirstChoices

    chosen = {"cf": FirstChoices("cf", 120, 0.0143, 0.0601, 0.0648)}
    text = write_report(tmp_path, replace(data, first_choices=chosen)).read_text(encoding="utf-8")
    assert "| CF | 120 | 1.43 % | 6.01 % | 6.48 % |" in text


def test_an_interval_missing_the_implied_difference_or_a_flagged_srm_is_not_detected(tmp_path: Path) -> None:
    wrong_sign = _input(_analysis(0.05, significant=True), p_cf=0.03, p_control=0.05)
    assert not conclusion(wrong_sign)[0]
    assert "**outside**" in conclusion(wrong_sign)[1]
    flagged = _input(_analysis(0.02, significant=True, srm_flagged=True), p_cf=0.05, p_control=0.03)
    assert not conclusion(flagged)[0]
    text = write_report(tmp_path, flagged).read_text(encoding="utf-8")
    assert "**Not detected.**" in text
    assert "verdict is blocked" in text
