"""``recommender experiments``: create from a file, the workflow with --by, list, show, analysis."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from qianmian_core.testing import cli_environment, logging_restored
from recommender.cli import main

REPO_ROOT = Path(__file__).resolve().parents[4]
DEV_TOKENS = REPO_ROOT / "config" / "dev-tokens.yaml"


def test_cli_workflow(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cli_environment(monkeypatch, "RECOMMENDER_", sqlite_url, DEV_TOKENS)
    definition = tmp_path / "def.json"
    definition.write_text(
        json.dumps(
            {
                "name": "push copy test",
                "hypothesis": "the rate-first copy gets more clicks",
                "primary_metric": "ctr",
                "population": {"channels": ["push"]},
                "arms": [
                    {"name": "control", "weight": 1},
                    {"name": "rate_first", "weight": 1, "changes": {"content_variant": "rate_first"}},
                ],
            }
        ),
        encoding="utf-8",
    )
    with logging_restored():
        assert main(["experiments", "create", "--file", str(definition), "--by", "console-alice"]) == 0
        experiment_id = json.loads(capsys.readouterr().out)["experiment_id"]
        assert main(["experiments", "status", experiment_id, "submit", "--by", "console-alice"]) == 0
        capsys.readouterr()
        assert main(["experiments", "status", experiment_id, "approve", "--by", "console-alice"]) == 1
        assert "approver_is_author" in capsys.readouterr().err
        assert main(["experiments", "status", experiment_id, "approve", "--by", "console-bob"]) == 0
        assert main(["experiments", "status", experiment_id, "start", "--by", "console-alice"]) == 0
        capsys.readouterr()
        assert main(["experiments", "list", "--status", "running"]) == 0
        assert [e["experiment_id"] for e in json.loads(capsys.readouterr().out)] == [experiment_id]
        assert main(["experiments", "show", experiment_id]) == 0
        shown = json.loads(capsys.readouterr().out)
        assert [h["actor"] for h in shown["history"]] == [
            "console-alice",
            "console-alice",
            "console-bob",
            "console-alice",
        ]
        assert main(["experiments", "analysis", experiment_id]) == 0
        assert json.loads(capsys.readouterr().out)["verdict"]["decision"] == "insufficient_data"
        assert main(["experiments", "analysis", experiment_id, "--summary"]) == 0
        summary = capsys.readouterr().out
        assert "verdict: insufficient_data" in summary
        assert "SRM p = 1 (ok)" in summary
        assert main(["experiments", "analysis", experiment_id, "--report", str(tmp_path / "r")]) == 2
        assert "has no bandit" in capsys.readouterr().err
        definition.write_text('{"name": "x"}', encoding="utf-8")
        assert main(["experiments", "create", "--file", str(definition), "--by", "console-alice"]) == 2
        assert main(["experiments", "show", "exp_" + "0" * 32]) == 1
        assert "experiment_not_found" in capsys.readouterr().err


def test_cli_writes_the_content_bandits_own_report(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from datetime import UTC, datetime, timedelta

    from recommender.database import open_database
    from recommender.experiments.assignment import Holdout
    from recommender.service.experiments import ExperimentService

    cli_environment(monkeypatch, "RECOMMENDER_", sqlite_url, DEV_TOKENS)
    definition = tmp_path / "bandit.json"
    definition.write_text(
        json.dumps(
            {
                "name": "push copy bandit",
                "hypothesis": "the rate-first copy gets more clicks",
                "primary_metric": "ctr",
                "allocation": "thompson",
                "exploration_floor": 0.1,
                "arms": [
                    {"name": "control", "weight": 1},
                    {"name": "rate_first", "weight": 1, "changes": {"content_variant": "CNT-RATE"}},
                ],
            }
        ),
        encoding="utf-8",
    )
    with logging_restored():
        assert main(["experiments", "create", "--file", str(definition), "--by", "console-alice"]) == 0
        experiment_id = json.loads(capsys.readouterr().out)["experiment_id"]
        for action, by in (
            ("submit", "console-alice"),
            ("approve", "console-bob"),
            ("start", "console-alice"),
        ):
            assert main(["experiments", "status", experiment_id, action, "--by", by]) == 0
        capsys.readouterr()
        database = open_database(sqlite_url)
        try:
            svc = ExperimentService(database, holdout=Holdout(share=0.0))
            at = datetime.now(UTC) - timedelta(hours=1)
            for n in range(400):
                arm = "rate_first" if n % 2 else "control"
                svc.record_exposure(experiment_id, arm, f"K{n:04d}", channel="app", at=at)
                if n % (5 if arm == "rate_first" else 25) == 1:
                    svc.record_conversion(f"K{n:04d}", "click", at=at + timedelta(minutes=1))
        finally:
            database.dispose()
        out = tmp_path / "reports"
        assert main(["experiments", "analysis", experiment_id, "--summary", "--report", str(out)]) == 0
        summary = capsys.readouterr().out
        assert "bandit rate_first" in summary
        assert "SRM" not in summary
        report = (out / f"{experiment_id}-bandit.md").read_text(encoding="utf-8")
        assert "| rate_first | 200 | 40 |" in report
        assert "| control | 200 | 8 |" in report
        assert "**rate_first** is the best variant" in report
        assert (out / f"{experiment_id}-bandit.png").stat().st_size > 1_000
