"""The ranker in the decision path: P(add) as propensity, audited, replayed, and its fallbacks.

One synthetic panel (600 customers × 6 monthly snapshots up to the last 28th before today) is
trained by the real ``train-ranker`` command into a registry beside an approved LightFM model; the
command leaves its Feast repo with the newest snapshot in the online store, which the app reads
through ``RECOMMENDER_RANKER_STORE``. Decisions then go through the API.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from qianmian_core.testing import auth_headers
from recommender.database import migrate, open_database
from recommender.main import create_app
from recommender.ml.data import TrainingData
from recommender.ml.models.lightfm_hybrid import LightFMHybrid
from recommender.ml.ranker.commands import first_snapshot, train_ranker_command
from recommender.ml.ranker.model import MODEL_TYPE
from recommender.ml.ranker.serving import RankerInputs, companions_of, load_serving_ranker
from recommender.ml.registry import ModelRegistry, RegistryError
from recommender.service.audit import GroupCommitAuditWriter
from recommender.service.candidates import Candidate, CandidateSet
from recommender.service.explain import TEXTS
from recommender.service.hub_cache import HubCache, HubCacheConfig
from recommender.service.profile import ProfileView
from recommender.service.ranker import RANKER_REASON, RANKER_SOURCE, FeastRankerStore, RankerStage
from recommender.service.replay import ReplayService
from recommender.settings import RecommenderSettings
from recommender.testing import (
    ALL_CONSENT,
    WEALTHY,
    Content,
    FakeProfile,
    Products,
    Rights,
    StaticFeatures,
    start_experiment,
)

REPO_ROOT = Path(__file__).resolve().parents[3]
DEV_TOKENS = REPO_ROOT / "config" / "dev-tokens.yaml"
PANEL_CUSTOMERS = 600
MONTHS = 6
#: In the panel (ids C000000001 … C000000600) and in profile.
KNOWN = [f"C{k:09d}" for k in range(1, 31)]
#: In profile, not in the ranker's feature store.
UNKNOWN = "C000999999"


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory, data: TrainingData) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("ranker-serving")
    registry = ModelRegistry(root / "models")
    cf = registry.register(
        LightFMHybrid(no_components=8, epochs=2, random_state=3, num_threads=1).fit(data), data_window={}
    )
    registry.approve(cf.version)
    args = argparse.Namespace(
        customers=PANEL_CUSTOMERS,
        months=MONTHS,
        seed=5,
        until=datetime.now(UTC).date(),
        panel=None,
        santander=None,
        bank=None,
        max_customers=None,
        train_months=2,
        workdir=root / "ranker",
        approve=True,
    )
    assert train_ranker_command(args, threads=2, registry_dir=str(registry.root), log=lambda _m: None) == 0
    newest = registry.newest_approved([MODEL_TYPE])
    assert newest is not None
    return {"registry": registry, "store": root / "ranker" / "repo", "ranker": newest.version, "root": root}


def _app(rig: dict[str, Any]) -> tuple[TestClient, str]:
    url = f"sqlite:///{rig['root'] / 'recommender.db'}"
    migrate(url)
    settings = RecommenderSettings(
        database_url=url,
        registry_dir=str(rig["registry"].root),
        ranker_store=rig["store"],
        environment="test",
        auth_tokens_file=DEV_TOKENS,
    )
    profile = FakeProfile()
    profile.people = {cid: ProfileView(WEALTHY, ALL_CONSENT, True) for cid in [*KNOWN, UNKNOWN]}
    app = create_app(
        settings,
        catalogue=rig["registry"].manifest(rig["ranker"]).product_ids,
        install_signal=False,
        hub_cache=HubCache(Products(), Content(), Rights(), HubCacheConfig(ttl_s=30)),
        profile=profile,
        features=StaticFeatures(),
        audit=GroupCommitAuditWriter(open_database(url)),
    )
    return TestClient(app), url


def _decide(client: TestClient, customer_id: str, **extra: Any) -> dict[str, Any]:
    body = {"customer_id": customer_id, "channel": "app", "placement": "home_banner", "limit": 4, **extra}
    resp = client.post("/v1/decisions", json=body, headers=auth_headers("app-gateway"))
    assert resp.status_code == 200, resp.text
    answer: dict[str, Any] = resp.json()
    return answer


def _audit(client: TestClient, decision_id: str) -> dict[str, Any]:
    resp = client.get(f"/v1/decisions/{decision_id}", headers=auth_headers("console-alice"))
    assert resp.status_code == 200, resp.text
    record: dict[str, Any] = resp.json()
    return record


def test_the_ranker_scores_candidates_and_the_decision_is_audited_and_replayed(rig: dict[str, Any]) -> None:
    registry: ModelRegistry = rig["registry"]
    serving = load_serving_ranker(registry)
    assert serving.version == rig["ranker"]
    store = FeastRankerStore(rig["store"])
    client, url = _app(rig)
    ids = []
    by_product: dict[str, set[float]] = {}
    with client:
        for cid in KNOWN:
            answer = _decide(client, cid)
            ids.append(answer["decision_id"])
            assert answer["mode"] == "personalised", answer
            assert not {"ranker_unavailable", "ranker_features_missing", "ranker_error"} & set(
                answer["reason_codes"]
            )
            audit = _audit(client, answer["decision_id"])
            entry = audit["features"]["ranker"]
            assert entry["version"] == rig["ranker"]
            assert entry["skipped"] is None
            # The propensity is the ranker's P(add), recomputed here from the online store directly.
            raw = store.customer(cid, serving.customer_refs)
            snapshot = max(v.event_timestamp for v in raw.values() if v.event_timestamp).date()
            products = store.products(serving.products, serving.product_refs)
            expected = serving.score(
                RankerInputs(cid, snapshot, {ref: v.value for ref, v in raw.items()}),
                {pid: {ref: v.value for ref, v in row.items()} for pid, row in products.items()},
            )
            for candidate in audit["candidates"]:
                assert RANKER_SOURCE in candidate["sources"]
                assert candidate["score"] == pytest.approx(
                    expected.get(candidate["product_id"], 0.0), abs=1e-12
                )
                assert entry["scores"][candidate["product_id"]] == candidate["score"]
            for pid, p in entry["scores"].items():
                by_product.setdefault(pid, set()).add(p)
            scores = [c["score"] for c in audit["candidates"]]
            assert scores == sorted(scores, reverse=True)
            assert min(scores) >= 0.0
            assert max(scores) < 1.0
            for bundle in answer["bundles"]:
                assert RANKER_REASON in bundle["reason_codes"]
                assert (
                    bundle["explanation"]["en"] == TEXTS[RANKER_REASON][1]
                )  # no moment: the ranker's reason
        # Personal: one product's P(add) differs between customers.
        assert max(len(v) for v in by_product.values()) > 5
        # A moment still explains first; the ranker still ranks.
        with_moment = _decide(client, KNOWN[0], moment={"type": "deposit_maturing"})
        assert any(b["explanation"]["en"].startswith("Because") for b in with_moment["bundles"])
        ids.append(with_moment["decision_id"])
        # Not in the ranker's store: the base scores rank, said in the response, the audit and metrics.
        missing = _decide(client, UNKNOWN)
        assert missing["mode"] == "personalised"
        assert "ranker_features_missing" in missing["reason_codes"]
        audit = _audit(client, missing["decision_id"])
        assert audit["features"]["ranker"]["skipped"] == "ranker_features_missing"
        assert all(RANKER_SOURCE not in c["sources"] for c in audit["candidates"])
        ids.append(missing["decision_id"])
        metrics = client.get("/metrics").text
        assert 'qianmian_ranker_fallbacks_total{reason="ranker_features_missing"}' in metrics
    database = open_database(url)
    try:
        replay = ReplayService(database, registry)
        records = replay.records(ids)
        assert len(records) == len(ids)
        for record in records:
            result = replay.replay(record)
            assert result.identical, result.differences
        # A recorded input changed: the replay reports the ranker's scores and the candidates differ.
        tampered = records[0]
        inputs = dict(tampered.features["ranker"]["inputs"])
        values = dict(inputs["values"])
        assert values["ranker_holdings:held_lag1_w0"], "the customer held something at the snapshot"
        values["ranker_holdings:held_lag1_w0"] = 0  # as if nothing were held: those products get rows
        inputs["values"] = values
        tampered.features["ranker"] = {**tampered.features["ranker"], "inputs": inputs}
        differences = replay.replay(tampered).differences
        assert any(d.startswith("ranker.scores") for d in differences), differences
    finally:
        database.dispose()


def test_stale_and_unavailable_rankers_fall_back(rig: dict[str, Any]) -> None:
    registry: ModelRegistry = rig["registry"]
    saved: list[str] = []
    stage = RankerStage(
        registry,
        FeastRankerStore(Path(os.path.relpath(rig["store"]))),  # a relative setting works too
        registry.manifest(rig["ranker"]).product_ids,
        save_products=lambda key, _rows: saved.append(key),
    )
    assert stage.read_blocking(KNOWN[0], datetime.now(UTC)).skipped == "ranker_unavailable"  # not loaded yet
    assert stage.reload() == rig["ranker"]
    fresh = stage.read_blocking(KNOWN[1], datetime.now(UTC))
    assert fresh.skipped is None
    assert fresh.products_key in saved
    assert fresh.inputs is not None
    newest = first_snapshot(datetime.now(UTC).date(), 1)
    assert fresh.inputs.snapshot == newest  # the online store holds the newest snapshot
    # Scores are cached per customer and snapshot: a newer snapshot's values are scored afresh.
    first = stage.scores(fresh)
    assert first is not None
    assert stage.scores(fresh) is first
    moved = RankerInputs(
        fresh.inputs.customer_id,
        fresh.inputs.snapshot + timedelta(days=31),
        {**fresh.inputs.values, "ranker_holdings:held_lag1_w0": 0},
    )
    second = stage.scores(dataclasses.replace(fresh, inputs=moved))
    assert second is not None
    assert second != first
    # Rescoring a kept candidate set with a kept read is made once; a fallback is never kept.
    candidates = CandidateSet(
        tuple(Candidate(pid, "deposit", 0.5, ("cf:als",)) for pid in sorted(first)[:5]), "v1"
    )
    answer = stage.apply(candidates, fresh)
    assert answer[2] is None
    assert [c.score for c in answer[0].candidates] == sorted(
        (first[c] for c in sorted(first)[:5]), reverse=True
    )
    assert stage.apply(candidates, fresh) is answer
    assert stage.apply(CandidateSet(candidates.candidates, "v1"), fresh) is not answer
    unavailable = dataclasses.replace(fresh, skipped="ranker_unavailable")
    fallback = stage.apply(candidates, unavailable)
    assert fallback[0] is candidates
    assert fallback[2] == "ranker_unavailable"
    assert stage.apply(candidates, unavailable) is not fallback
    stage._reads.clear()
    store = stage.store
    assert isinstance(store, FeastRankerStore)

    class Down(FeastRankerStore):
        def __init__(self) -> None:
            self.store = store.store

        def customer(self, customer_id: str, refs: Any) -> Any:
            raise ConnectionError("online store unreachable")

    stage.store = Down()
    assert stage.read_blocking(KNOWN[2], datetime.now(UTC)).skipped == "ranker_error"
    stage.store = store
    months_later = datetime.now(UTC) + timedelta(days=120)
    assert stage.read_blocking(KNOWN[1], months_later).skipped == "ranker_features_stale"


def test_companions_are_served_only_through_their_ranker(rig: dict[str, Any]) -> None:
    registry: ModelRegistry = rig["registry"]
    companions = companions_of(registry.manifest(rig["ranker"]))
    assert set(companions) == {"als", "bpr", "lightfm", "segment_popularity"}
    some = next(iter(companions.values()))
    assert registry.manifest(some).status == "companion"
    with pytest.raises(RegistryError, match="companion"):
        registry.approve(some)
    newest = registry.newest_approved()
    assert newest is not None
    assert newest.version not in companions.values()


def test_first_snapshot_ends_on_the_last_28th() -> None:
    assert first_snapshot(date(2026, 11, 24), 6) == date(2026, 5, 28)
    assert first_snapshot(date(2026, 11, 28), 1) == date(2026, 11, 28)
    assert first_snapshot(date(2026, 1, 3), 2) == date(2025, 11, 28)


def test_an_experiment_arm_can_switch_the_ranker_off(rig: dict[str, Any]) -> None:
    """A/B of the ranker itself: control is production (ranker on), ``no_ranker`` ranks by base scores."""
    definition = {
        "name": "排序模型 A/B",
        "hypothesis": "The ranker's P(add) converts better than the candidates' base scores",
        "primary_metric": "conversion_rate",
        "layer": "ranking",
        "population": {"channels": ["app"]},
        "arms": [
            {"name": "control", "weight": 50},
            {"name": "no_ranker", "weight": 50, "changes": {"ranker": "off"}},
        ],
    }
    client, _ = _app(rig)
    with client:
        start_experiment(client, definition)
        arms: dict[str, int] = {}
        for cid in KNOWN:
            answer = _decide(client, cid)
            arm = answer["experiment"]["arm"]
            arms[arm] = arms.get(arm, 0) + 1
            audit = _audit(client, answer["decision_id"])
            ranked = audit["features"]["ranker"] is not None
            assert ranked == (arm == "control"), (arm, audit["features"]["ranker"])
            assert all((RANKER_SOURCE in c["sources"]) == ranked for c in audit["candidates"])
        assert set(arms) == {"control", "no_ranker"}, arms
