"""Replay: 1,000 recorded decisions re-run from their audit records reproduce exactly.

The decisions are made through the API with a LightFM model trained on the session's bank and
approved in a registry, over 100 customers (20 unknown to the model) with varied facts (risk levels,
expired assessments, withheld consents, opt-outs) and moments, in every channel, so the records cover
personalised, non-personalised, capped and quiet-hours answers. The replay then runs from the database and the
registry alone (``recommender replay``), and a tampered record is reported as different.
"""

from __future__ import annotations

import random
import shutil
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from fastapi.testclient import TestClient
from qianmian_core.testing import auth_headers
from qianmian_rules import CustomerFacts
from recommender.database import migrate, open_database
from recommender.main import create_app
from recommender.ml.data import TrainingData
from recommender.ml.models.lightfm_hybrid import LightFMHybrid
from recommender.ml.registry import ModelRegistry
from recommender.repository.audit import AuditRepository
from recommender.service.audit import GroupCommitAuditWriter
from recommender.service.hub_cache import HubCache, HubCacheConfig
from recommender.service.profile import ProfileView
from recommender.service.replay import ReplayService
from recommender.settings import RecommenderSettings
from recommender.testing import CHANNELS, NOW, Content, FakeProfile, Products, Rights, StaticFeatures

REPO_ROOT = Path(__file__).resolve().parents[3]
DEV_TOKENS = REPO_ROOT / "config" / "dev-tokens.yaml"
DECISIONS = 1_000
MOMENTS = (
    None,
    None,
    "deposit_maturing",
    "salary_credited",
    "aum_drop",
    "birthday",
    "large_inbound_transfer",
)


def _people(customer_ids: list[str], seed: int) -> dict[str, ProfileView]:
    rng = random.Random(seed)
    people = {}
    for cid in customer_ids:
        risk = rng.choice([None, 1, 2, 3, 4, 5])
        expires = None if risk is None else NOW + timedelta(days=rng.choice([-30, 90, 400]))
        facts = CustomerFacts(
            age=rng.randint(18, 80),
            aum=rng.choice([0, 5_000, 60_000, 300_000, 2_000_000]),
            region=rng.choice(["shanghai", "beijing", "chengdu"]),
            segments=frozenset(
                rng.sample(["payroll", "wealth", "mortgage", "credit_card"], rng.randint(0, 2))
            ),
            lifecycle_stage=rng.choice(["new", "active", "growing", "mature", "dormant"]),
            risk_level=risk,
            risk_expires_at=expires,
        )
        consents = MappingProxyType({c: rng.random() < 0.85 for c in CHANNELS})
        people[cid] = ProfileView(facts, consents, rng.random() < 0.9)
    return people


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, data: TrainingData) -> ModelRegistry:
    registry = ModelRegistry(tmp_path_factory.mktemp("models"))
    model = LightFMHybrid(no_components=8, epochs=2, random_state=3, num_threads=1).fit(data)
    manifest = registry.register(model, data_window={"test": True})
    registry.approve(manifest.version)
    return registry


@pytest.fixture(scope="module")
def recorded(
    tmp_path_factory: pytest.TempPathFactory, registry: ModelRegistry, data: TrainingData
) -> tuple[str, list[str]]:
    url = f"sqlite:///{tmp_path_factory.mktemp('replay') / 'recommender.db'}"
    migrate(url)
    settings = RecommenderSettings(
        database_url=url, registry_dir=str(registry.root), environment="test", auth_tokens_file=DEV_TOKENS
    )
    customers = data.customers.to_list()[:80] + [f"C9{n:08d}" for n in range(20)]  # 20 cold
    profile = FakeProfile()
    profile.people = _people(customers, seed=5)
    app = create_app(
        settings,
        catalogue=data.products.to_list(),
        install_signal=False,
        hub_cache=HubCache(Products(), Content(), Rights(), HubCacheConfig(ttl_s=30)),
        profile=profile,
        features=StaticFeatures(),
        audit=GroupCommitAuditWriter(open_database(url)),
    )
    rng = random.Random(9)
    bodies: list[dict[str, Any]] = []
    for _ in range(DECISIONS):
        moment = rng.choice(MOMENTS)
        body: dict[str, Any] = {
            "customer_id": rng.choice(customers),
            "channel": rng.choice(CHANNELS),
            "placement": "home_banner",
            "limit": rng.randint(1, 6),
        }
        if moment is not None:
            body["moment"] = {"type": moment}
        bodies.append(body)
    with TestClient(app) as client:

        def decide(body: dict[str, Any]) -> dict[str, Any]:
            resp = client.post("/v1/decisions", json=body, headers=auth_headers("app-gateway"))
            assert resp.status_code == 200, resp.text
            answer: dict[str, Any] = resp.json()
            return answer

        with ThreadPoolExecutor(8) as pool:  # concurrent, so the audit's group commit batches them
            answers = list(pool.map(decide, bodies))
    ids = [a["decision_id"] for a in answers]
    modes: dict[str, int] = {}
    for answer in answers:
        modes[answer["mode"]] = modes.get(answer["mode"], 0) + 1
    assert modes.get("personalised", 0) > 500
    assert modes.get("non_personalised", 0) > 20
    return url, ids


def test_a_thousand_recorded_decisions_replay_exactly(
    recorded: tuple[str, list[str]], registry: ModelRegistry
) -> None:
    url, ids = recorded
    database = open_database(url)
    try:
        service = ReplayService(database, registry)
        records = service.records(last=DECISIONS)
        assert {r.decision_id for r in records} == set(ids)
        summary = service.replay_many(records)
        with_bundles = sum(bool(r.response["bundles"]) for r in records)
        blocked = sum(bool(r.response["reason_codes"]) for r in records)
    finally:
        database.dispose()
    assert summary.replayed == DECISIONS
    assert summary.differing == [], summary.differing[:3]
    assert with_bundles > 300  # the replay covers real rankings …
    assert blocked > 50  # … and answers emptied by contact caps or quiet hours


def test_replay_reports_a_changed_input_and_the_cli_exit_code(
    recorded: tuple[str, list[str]], registry: ModelRegistry, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from qianmian_core.testing import logging_restored
    from recommender.cli import main
    from recommender.models import Decision
    from sqlalchemy import select

    original, ids = recorded
    copy = tmp_path / "copy.db"  # tampered below: the other test keeps the original
    shutil.copyfile(original.removeprefix("sqlite:///"), copy)
    url = f"sqlite:///{copy}"
    monkeypatch.setenv("RECOMMENDER_DATABASE_URL", url)
    monkeypatch.setenv("RECOMMENDER_REGISTRY_DIR", str(registry.root))
    monkeypatch.setenv("RECOMMENDER_LOG_LEVEL", "WARNING")
    with logging_restored():
        assert main(["replay", "--last", "200"]) == 0

    database = open_database(url)
    try:
        with database.session() as session:  # a record whose bundles were served with a right changed
            rows = session.scalars(select(Decision).where(Decision.decision_id.in_(ids))).all()
            audit = AuditRepository(session)
            shown = {r.decision_id: audit.get(r.decision_id) for r in rows}
            row = next(r for r in rows if shown[r.decision_id].response["bundles"])  # type: ignore[union-attr]
            served = shown[row.decision_id].response["bundles"]  # type: ignore[union-attr]
            response = dict(row.response)
            # the stored bundles (a shared part's reference) replaced in the row by altered ones
            response["bundles"] = [dict(served[0], score=123.0), *served[1:]]
            row.response = response
            target = row.decision_id
        result = ReplayService(database, registry).replay_many(
            ReplayService(database, registry).records([target])
        )
    finally:
        database.dispose()
    assert result.identical == 0
    assert any(d.startswith("bundles:") for d in result.results[0].differences)
    with logging_restored():
        assert main(["replay", target]) == 1
