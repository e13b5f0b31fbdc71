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
        definition.write_text('{"name": "x"}', encoding="utf-8")
        assert main(["experiments", "create", "--file", str(definition), "--by", "console-alice"]) == 2
        assert main(["experiments", "show", "exp_" + "0" * 32]) == 1
        assert "experiment_not_found" in capsys.readouterr().err
