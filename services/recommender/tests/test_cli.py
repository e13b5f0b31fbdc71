"""CLI smoke test: train on tiny data -> registry -> approve -> the served app loads it."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from qianmian_core.testing import auth_headers
from recommender.cli import main
from recommender.main import create_app
from recommender.settings import RecommenderSettings

from .conftest import DEV_TOKENS


def test_train_approve_serve(
    bank_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    registry = tmp_path / "models"
    monkeypatch.setenv("RECOMMENDER_REGISTRY_DIR", str(registry))
    monkeypatch.setenv("RECOMMENDER_AUTH_TOKENS_FILE", str(DEV_TOKENS))
    monkeypatch.setenv("RECOMMENDER_TRAIN_THREADS", "1")
    assert main(["train", "--data", str(bank_dir), "--model", "als"]) == 0
    version = capsys.readouterr().out.strip().splitlines()[-1]
    assert (registry / version / "arrays.npz").is_file()

    settings = RecommenderSettings(registry_dir=str(registry), auth_tokens_file=DEV_TOKENS)
    alice = auth_headers("console-alice", str(DEV_TOKENS))
    with TestClient(create_app(settings)) as client:
        # A candidate is never served.
        assert client.get("/v1/models/current", headers=alice).status_code == 404
        assert main(["approve", version]) == 0
        assert (
            client.post(
                "/v1/models/reload", headers=auth_headers("readonly-analyst", str(DEV_TOKENS))
            ).status_code
            == 403
        )
        reloaded = client.post("/v1/models/reload", headers=alice)
        assert reloaded.status_code == 200
        assert reloaded.json()["version"] == version
        current = client.get("/v1/models/current", headers=alice).json()
        assert current["version"] == version
        assert current["model_type"] == "als"
        assert current["metrics"]["all"]["ndcg"] > 0
        assert client.get("/v1/models/current").status_code == 401

    # A fresh process loads the newest approved model at start.
    with TestClient(create_app(settings)) as client:
        assert client.get("/v1/models/current", headers=alice).json()["version"] == version
    assert main(["models"]) == 0
    assert version in capsys.readouterr().out
