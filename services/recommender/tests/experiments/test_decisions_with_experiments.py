"""Experiments in the decision path, through the API: the arm shapes the answer, exposures are logged
only where the arm changed what was served (in the audit record's transaction), clicks are attributed
to them, the holdout is answered non-personalised, and an arm's decision replays exactly."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from qianmian_bankgen.catalogue import CATALOGUE
from qianmian_core.testing import auth_headers
from recommender.database import migrate, open_database
from recommender.main import create_app
from recommender.ml.registry import ModelRegistry
from recommender.models import ExperimentConversion, ExperimentExposure
from recommender.repository.audit import AuditRepository
from recommender.service.hub_cache import ContentWire, HubCache, HubCacheConfig
from recommender.service.profile import ProfileView
from recommender.service.replay import ReplayService
from recommender.settings import RecommenderSettings
from recommender.testing import (
    ALL_CONSENT,
    CHANNELS,
    WEALTHY,
    Content,
    FakeProfile,
    Products,
    Rights,
    StaticFeatures,
    start_experiment,
)
from sqlalchemy import func, select

REPO_ROOT = Path(__file__).resolve().parents[4]
DEV_TOKENS = REPO_ROOT / "config" / "dev-tokens.yaml"
CUSTOMERS = [f"C{n:09d}" for n in range(100, 220)]
#: The treatment suppresses consumer loans (lever 0): wherever control would show one, the arms differ.
SUPPRESSED = "consumer_loan"


def _definition() -> dict[str, Any]:
    return {
        "name": "消费贷降权",
        "hypothesis": "Without consumer loans on the home banner, wealth customers click more",
        "primary_metric": "ctr",
        "layer": "ranking",
        "population": {"channels": ["app"]},
        "arms": [
            {"name": "control", "weight": 50},
            {
                "name": "no_loans",
                "weight": 50,
                "changes": {
                    "arbitration": {"levers": {"product_types": {SUPPRESSED: 0}}},
                    "rights_policy": "no_rights",
                },
            },
        ],
    }


@dataclass
class Rig:
    client: TestClient
    url: str
    registry_dir: Path


class TwoCopies(Content):
    """Every product has a second approved content, ``CNT-Z-<product>`` (sorted last, so production
    keeps showing ``CNT-<product>``): what a content experiment's arm can show instead."""

    async def approved_content(self) -> list[ContentWire]:
        extra = [
            ContentWire(
                content_id=f"CNT-Z-{p.product_id}",
                version=1,
                status="approved",
                product_id=p.product_id,
                variants={c: {"title": f"{p.name}：限时礼遇 ({c})"} for c in CHANNELS},
            )
            for p in CATALOGUE
        ]
        return [*await super().approved_content(), *extra]


def _rig(tmp_path: Path, holdout_share: float = 0.0, content: Content | None = None) -> Iterator[Rig]:
    url = f"sqlite:///{tmp_path / 'recommender.db'}"
    migrate(url)
    settings = RecommenderSettings(
        database_url=url,
        registry_dir=str(tmp_path / "models"),
        environment="test",
        auth_tokens_file=DEV_TOKENS,
        experiments_holdout_share=holdout_share,
        contact_policy={"daily_per_channel": 1000, "weekly_all_channels": 1000},
    )
    profile = FakeProfile()
    profile.people.update({c: ProfileView(WEALTHY, ALL_CONSENT, True) for c in CUSTOMERS})
    app = create_app(
        settings,
        install_signal=False,
        hub_cache=HubCache(Products(), content or Content(), Rights(), HubCacheConfig(ttl_s=30)),
        profile=profile,
        features=StaticFeatures(),
    )
    with TestClient(app) as client:
        yield Rig(client, url, tmp_path / "models")


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    yield from _rig(tmp_path)


def _start(client: TestClient, definition: dict[str, Any] | None = None) -> str:
    return start_experiment(client, definition or _definition(), str(DEV_TOKENS))


def _decide(client: TestClient, customer_id: str, channel: str = "app") -> dict[str, Any]:
    resp = client.post(
        "/v1/decisions",
        json={"customer_id": customer_id, "channel": channel, "placement": "home_banner", "limit": 3},
        headers=auth_headers("app-gateway", str(DEV_TOKENS)),
    )
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def test_the_arm_shapes_the_answer_and_exposures_follow_real_differences(rig: Rig) -> None:
    experiment_id = _start(rig.client)
    answers = {c: _decide(rig.client, c) for c in CUSTOMERS}
    arms = Counter(a["experiment"]["arm"] for a in answers.values())
    assert set(arms) == {"control", "no_loans"}
    assert all(a["experiment"]["id"] == experiment_id for a in answers.values())
    # Outside the population (mini_program) the same customers get no experiment.
    assert _decide(rig.client, CUSTOMERS[0], "mini_program")["experiment"] is None
    # The same arm again, in a second decision (sticky).
    again = _decide(rig.client, CUSTOMERS[0])
    assert again["experiment"] == answers[CUSTOMERS[0]]["experiment"]

    database = open_database(rig.url)
    try:
        with database.session() as session:
            audits = {c: AuditRepository(session).get(a["decision_id"]) for c, a in answers.items()}
            exposures = {row.decision_id: row for row in session.scalars(select(ExperimentExposure)).all()}
        exposed = 0
        for customer, answer in answers.items():
            record = audits[customer]
            assert record is not None
            assert (record.experiment_id, record.experiment_arm) == (
                experiment_id,
                answer["experiment"]["arm"],
            )
            plan = record.features["experiment"]
            served = [
                [b["product"]["id"], b["content"]["id"], (b["right"] or {}).get("id")]
                for b in answer["bundles"]
            ]
            assert plan["served"] == served  # what the audit says was served is what was served
            differs = any(other != plan["served"] for other in plan["counterfactual"].values())
            assert plan["exposed"] == differs
            assert (answer["decision_id"] in exposures) == (differs and bool(answer["bundles"]))
            exposed += answer["decision_id"] in exposures
            if answer["experiment"]["arm"] == "no_loans":
                assert all(b["product"]["type"] != SUPPRESSED for b in answer["bundles"])
                assert all(b["right"] is None for b in answer["bundles"])
                assert record.features["arbitration_config"]["levers"]["product_types"] == {SUPPRESSED: 0.0}
        assert exposed > 0, "suppressing consumer loans must change some answers"

        # A click on an exposed decision is attributed to the arm; one on an unexposed one is not.
        exposed_answer = next(a for a in answers.values() if a["decision_id"] in exposures)
        product = exposed_answer["bundles"][0]["product"]["id"]
        resp = rig.client.post(
            "/v1/feedback",
            json={"decision_id": exposed_answer["decision_id"], "product_id": product, "event": "click"},
            headers={**auth_headers("app-gateway", str(DEV_TOKENS)), "Idempotency-Key": "click-1"},
        )
        assert resp.status_code == 201, resp.text
        replayed = rig.client.post(
            "/v1/feedback",
            json={"decision_id": exposed_answer["decision_id"], "product_id": product, "event": "click"},
            headers={**auth_headers("app-gateway", str(DEV_TOKENS)), "Idempotency-Key": "click-1"},
        )
        assert replayed.status_code == 201
        with database.session() as session:
            clicks = session.scalars(select(ExperimentConversion)).all()
            assert [(c.arm, c.kind) for c in clicks] == [(exposed_answer["experiment"]["arm"], "click")]
            n_exposures = session.scalar(select(func.count()).select_from(ExperimentExposure))
            decided = AuditRepository(session).get(exposed_answer["decision_id"])
        # A conversion carries the product's value to the bank from the decision's catalogue snapshot.
        assert decided is not None
        value = next(o["value"] for o in decided.response["ranking"] if o["product_id"] == product)
        resp = rig.client.post(
            "/v1/feedback",
            json={
                "decision_id": exposed_answer["decision_id"],
                "product_id": product,
                "event": "convert",
                "value": 1_000_000,
            },
            headers={**auth_headers("app-gateway", str(DEV_TOKENS)), "Idempotency-Key": "convert-1"},
        )
        assert resp.status_code == 201, resp.text
        with database.session() as session:
            converted = session.scalars(
                select(ExperimentConversion).where(ExperimentConversion.kind == "convert")
            ).all()
            assert [(c.value, c.margin_fen) for c in converted] == [(1_000_000, round(value * 100))]
            assert converted[0].margin_fen > 0
        analysis = rig.client.get(
            f"/v1/experiments/{experiment_id}/analysis",
            headers=auth_headers("console-alice", str(DEV_TOKENS)),
        )
        assert analysis.status_code == 200, analysis.text
        assert n_exposures == exposed + (again["decision_id"] in exposures)

        # An arm's decision replays exactly from its record (its arbitration settings are recorded).
        treated = next(c for c, a in answers.items() if a["experiment"]["arm"] == "no_loans")
        with database.session() as session:
            record = AuditRepository(session).get(answers[treated]["decision_id"])
        assert record is not None
        result = ReplayService(database, ModelRegistry(rig.registry_dir)).replay(record)
        assert result.identical, result.differences
    finally:
        database.dispose()


def test_the_global_holdout_gets_no_personalised_marketing(tmp_path: Path) -> None:
    for rig in _rig(tmp_path, holdout_share=0.3):
        _start(rig.client)
        answers = [_decide(rig.client, c) for c in CUSTOMERS]
        held = [a for a in answers if a["experiment"] == {"id": "holdout", "arm": "holdout"}]
        assert 0.15 < len(held) / len(answers) < 0.45
        for answer in held:
            assert answer["mode"] == "non_personalised"
            assert answer["model_version"] is None
            assert "experiment_holdout" in answer["reason_codes"]
        others = [a for a in answers if a not in held]
        assert all(a["experiment"]["arm"] in {"control", "no_loans"} for a in others)


def test_a_content_bandit_serves_its_arms_copy_and_learns_from_the_exposures(tmp_path: Path) -> None:
    for rig in _rig(tmp_path, content=TwoCopies()):
        product = _decide(rig.client, CUSTOMERS[0])["bundles"][0]["product"]["id"]
        experiment_id = _start(
            rig.client,
            {
                "name": "横幅文案",
                "hypothesis": "The limited-offer copy gets more clicks",
                "primary_metric": "ctr",
                "layer": "content",
                "population": {"channels": ["app"]},
                "allocation": "thompson",
                "exploration_floor": 0.1,
                "arms": [
                    {"name": "control", "weight": 1},
                    {"name": "limited", "weight": 1, "changes": {"content_variant": f"CNT-Z-{product}"}},
                ],
            },
        )
        arms: Counter[str] = Counter()
        shown: Counter[str] = Counter()
        for customer in CUSTOMERS[1:]:
            answer = _decide(rig.client, customer)
            arm = answer["experiment"]["arm"]
            arms[arm] += 1
            bundle = next((b for b in answer["bundles"] if b["product"]["id"] == product), None)
            if bundle is not None:
                expected = f"CNT-Z-{product}" if arm == "limited" else f"CNT-{product}"
                assert bundle["content"]["id"] == expected
                shown[arm] += 1
        assert arms["control"] > 20
        assert arms["limited"] > 20
        analysis = rig.client.get(
            f"/v1/experiments/{experiment_id}/analysis",
            headers=auth_headers("console-alice", str(DEV_TOKENS)),
        )
        assert analysis.status_code == 200, analysis.text
        body = analysis.json()
        assert body["allocation"] == "thompson"
        assert body["srm"]["applicable"] is False
        # Each decision that showed the product was an exposure: the other arm's copy differs.
        impressions = {v["variant"]: v["impressions"] for v in body["bandit"]["variants"]}
        assert impressions == dict(shown)
        assert sum(v["share"] for v in body["bandit"]["variants"]) == pytest.approx(1.0)
