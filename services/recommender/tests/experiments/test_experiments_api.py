"""``/v1/experiments`` through the app: scopes, maker-checker approval, the standard error shape, and an
experiment run end to end (assign, exposure, conversion through the service) to its analysis."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from qianmian_core.testing import assert_error, auth_headers
from recommender.main import create_app
from recommender.service.experiments import ExperimentService
from recommender.service.hub_cache import HubCache, HubCacheConfig
from recommender.settings import RecommenderSettings
from recommender.testing import Content, FakeProfile, Products, Rights, StaticFeatures

REPO_ROOT = Path(__file__).resolve().parents[4]
DEV_TOKENS = REPO_ROOT / "config" / "dev-tokens.yaml"
AUTHOR, CHECKER, ANALYST = "console-alice", "console-bob", "readonly-analyst"

DEFINITION: dict[str, Any] = {
    "name": "理财到期挽留：协同过滤 vs 客群热门",
    "hypothesis": "CF raises the conversion rate of maturing wealth customers",
    "primary_metric": "conversion_rate",
    "guardrails": [{"metric": "opt_out_rate", "tolerance": 0.01}],
    "layer": "ranking",
    "traffic": 1.0,
    "population": {"segments": ["wealth"], "channels": ["app", "push"]},
    "arms": [
        {"name": "control", "weight": 50, "changes": {"model_version": "segpop-1"}},
        {"name": "cf", "weight": 50, "changes": {"model_version": "als-1"}},
    ],
}


def h(client: str) -> dict[str, str]:
    return auth_headers(client, str(DEV_TOKENS))


@pytest.fixture
def client(sqlite_url: str, tmp_path: Path) -> Iterator[TestClient]:
    url = sqlite_url
    settings = RecommenderSettings(
        database_url=url,
        registry_dir=str(tmp_path / "models"),
        environment="test",
        auth_tokens_file=DEV_TOKENS,
    )
    app = create_app(
        settings,
        install_signal=False,
        hub_cache=HubCache(Products(), Content(), Rights(), HubCacheConfig(ttl_s=30)),
        profile=FakeProfile(),
        features=StaticFeatures(),
    )
    with TestClient(app) as test_client:
        yield test_client


def _status(client: TestClient, experiment_id: str, action: str, who: str) -> Any:
    return client.post(f"/v1/experiments/{experiment_id}/status", json={"action": action}, headers=h(who))


def test_create_approve_start_run_and_analyse(client: TestClient) -> None:
    created = client.post("/v1/experiments", json=DEFINITION, headers=h(AUTHOR))
    assert created.status_code == 201, created.text
    experiment = created.json()
    experiment_id = experiment["experiment_id"]
    assert (experiment["status"], experiment["author"], experiment["salt"]) == (
        "draft",
        AUTHOR,
        experiment_id,
    )
    assert experiment["arms"][1]["changes"]["model_version"] == "als-1"

    assert _status(client, experiment_id, "submit", AUTHOR).json()["status"] == "pending_approval"
    error = assert_error(_status(client, experiment_id, "approve", AUTHOR), 403, "approver_is_author")
    assert error["details"] == {"author": AUTHOR}
    approved = _status(client, experiment_id, "approve", CHECKER)
    assert approved.status_code == 200
    assert approved.json()["approver"] == CHECKER
    started = _status(client, experiment_id, "start", AUTHOR).json()
    assert (started["status"], started["buckets"]) == ("running", {"start": 0, "end": 10_000})
    assert_error(_status(client, experiment_id, "start", AUTHOR), 409, "illegal_transition")

    # The decision pipeline's calls, through the app's service.
    service: ExperimentService = client.app.state.experiments  # type: ignore[attr-defined]
    now = datetime.now(UTC)
    exposed = 0
    for n in range(120):
        customer = f"C{n:09d}"
        got = service.assign(customer, "app", ["wealth"])
        if got.holdout:
            continue
        arm = got.arm_of(experiment_id)
        assert arm is not None
        assert service.assign(customer, "push", ["wealth"]).arm_of(experiment_id) == arm
        service.record_exposure(experiment_id, arm, customer, channel="app", decision_id=f"dec_{n}", at=now)
        exposed += 1
        if n % (2 if arm == "cf" else 10) == 0:
            service.record_conversion(customer, "click", at=now + timedelta(minutes=1))
            service.record_conversion(
                customer, "convert", at=now + timedelta(minutes=2), value=200_000, cost_fen=500
            )

    analysis = client.get(f"/v1/experiments/{experiment_id}/analysis", headers=h(ANALYST))
    assert analysis.status_code == 200, analysis.text
    body = analysis.json()
    assert [a["arm"] for a in body["arms"]] == ["control", "cf"]
    assert sum(a["exposed_customers"] for a in body["arms"]) == exposed
    for arm in body["arms"]:
        assert arm["impressions"] == arm["exposed_customers"]
        assert arm["aum_fen"] == 200_000 * arm["conversions"]
        assert set(arm["metrics"]) == {
            "ctr",
            "conversion_rate",
            "aum_per_customer",
            "margin_per_customer",
            "rights_cost_per_conversion",
            "opt_out_rate",
            "complaint_rate",
        }
    cf = body["arms"][1]["vs_control"]
    assert (
        cf["conversion_rate"]["ci_low"]
        < cf["conversion_rate"]["difference"]
        < cf["conversion_rate"]["ci_high"]
    )
    assert cf["aum_per_customer"]["difference"] > 0  # the AUM uplift
    assert 0 <= cf["conversion_rate"]["p_value"] <= cf["conversion_rate"]["p_value_holm"] <= 1
    assert body["srm"]["flagged"] is False
    assert body["verdict"]["decision"] in {"ship", "no_significant_difference"}
    assert body["verdict"]["final"] is False
    assert body["method"] == "fixed_horizon"

    ramped = client.put(
        f"/v1/experiments/{experiment_id}/weights",
        json={"weights": {"control": 20, "cf": 80}, "note": "ramp"},
        headers=h(AUTHOR),
    )
    assert ramped.status_code == 200
    assert [a["share"] for a in ramped.json()["arms"]] == [0.2, 0.8]
    listed = client.get("/v1/experiments", params={"status": "running"}, headers=h(ANALYST)).json()
    assert [e["experiment_id"] for e in listed] == [experiment_id]
    assert _status(client, experiment_id, "stop", CHECKER).json()["status"] == "stopped"
    assert client.get(f"/v1/experiments/{experiment_id}/analysis", headers=h(AUTHOR)).json()["verdict"][
        "final"
    ]


def test_scopes(client: TestClient) -> None:
    assert_error(client.post("/v1/experiments", json=DEFINITION), 401, "unauthorized")
    assert_error(
        client.post("/v1/experiments", json=DEFINITION, headers=h(ANALYST)), 403, "insufficient_scope"
    )
    assert_error(client.get("/v1/experiments", headers=h("app-gateway")), 403, "insufficient_scope")
    assert client.get("/v1/experiments", headers=h(ANALYST)).json() == []


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"arms": [{"name": "only", "weight": 1}]}, "arms"),
        ({"arms": [{"name": "a", "weight": 1}, {"name": "a", "weight": 1}]}, "unique"),
        ({"arms": [{"name": "a", "weight": 0}, {"name": "b", "weight": 0}]}, "positive"),
        ({"primary_metric": "revenue"}, "primary_metric"),
        ({"traffic": 0}, "traffic"),
        ({"population": {"segments": ["vip"]}}, "segments"),
        ({"population": {"channels": ["fax"]}}, "channels"),
        ({"unexpected": 1}, "unexpected"),
        ({"arms": [{"name": "a", "weight": -1}, {"name": "b", "weight": 1}]}, "weight"),
    ],
)
def test_invalid_definitions_answer_422_in_the_standard_shape(
    client: TestClient, change: dict[str, Any], where: str
) -> None:
    error = assert_error(
        client.post("/v1/experiments", json=DEFINITION | change, headers=h(AUTHOR)), 422, "validation_error"
    )
    assert where in str(error["details"])


def test_other_errors(client: TestClient) -> None:
    assert_error(client.get("/v1/experiments/not-an-id", headers=h(AUTHOR)), 422, "validation_error")
    missing = "exp_" + "0" * 32
    assert_error(client.get(f"/v1/experiments/{missing}", headers=h(AUTHOR)), 404, "experiment_not_found")
    assert_error(_status(client, missing, "submit", AUTHOR), 404, "experiment_not_found")
    experiment_id = client.post("/v1/experiments", json=DEFINITION, headers=h(AUTHOR)).json()["experiment_id"]
    assert_error(_status(client, experiment_id, "launch", AUTHOR), 422, "validation_error")
    weights = f"/v1/experiments/{experiment_id}/weights"
    assert_error(
        client.put(weights, json={"weights": {"control": 1, "other": 1}}, headers=h(AUTHOR)),
        422,
        "invalid_weights",
    )
    assert (
        client.put(weights, json={"weights": {"control": 1, "cf": 3}}, headers=h(AUTHOR)).status_code == 200
    )
    _status(client, experiment_id, "submit", AUTHOR)
    assert_error(
        client.put(weights, json={"weights": {"control": 1, "cf": 1}}, headers=h(AUTHOR)),
        409,
        "weights_locked",
    )
    levers = DEFINITION | {
        "arms": [
            {"name": "control", "weight": 1},
            {"name": "boost", "weight": 1, "changes": {"arbitration": {"moment_weights": {"x": 1}}}},
        ]
    }
    assert_error(client.post("/v1/experiments", json=levers, headers=h(AUTHOR)), 422, "invalid_arm_changes")


def test_openapi_documents_the_routes_with_stable_operation_ids(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    operations = {
        op["operationId"]
        for path, item in schema["paths"].items()
        if path.startswith("/v1/experiments")
        for op in item.values()
    }
    assert operations == {
        "create_experiment",
        "list_experiments",
        "get_experiment",
        "change_experiment_status",
        "update_experiment_weights",
        "analyse_experiment",
        "record_experiment_outcome",
    }
    assert schema["components"]["schemas"]["ExperimentDefinition"]["examples"]
    post = schema["paths"]["/v1/experiments/{experiment_id}/status"]["post"]
    assert "403" in post["responses"]


def test_complaints_and_opt_outs_are_reported_and_count_for_the_guardrails(client: TestClient) -> None:
    experiment_id = client.post("/v1/experiments", json=DEFINITION, headers=h(AUTHOR)).json()["experiment_id"]
    for action, who in (("submit", AUTHOR), ("approve", CHECKER), ("start", AUTHOR)):
        assert _status(client, experiment_id, action, who).status_code == 200
    service: ExperimentService = client.app.state.experiments  # type: ignore[attr-defined]
    now = datetime.now(UTC)
    arm = service.assign("C000000077", "app", ["wealth"]).arm_of(experiment_id)
    assert arm is not None
    service.record_exposure(experiment_id, arm, "C000000077", channel="app", at=now - timedelta(hours=1))

    body = {"customer_id": "C000000077", "kind": "complaint"}
    resp = client.post("/v1/experiments/outcomes", json=body, headers=h("profile-ingest"))
    assert resp.status_code == 201, resp.text
    assert [(a["experiment_id"], a["arm"]) for a in resp.json()["attributed"]] == [(experiment_id, arm)]
    again = client.post("/v1/experiments/outcomes", json=body, headers=h("profile-ingest"))
    assert again.status_code == 201  # reported twice: the customer still counts once
    unexposed = {"customer_id": "C000000078", "kind": "opt_out"}
    resp = client.post("/v1/experiments/outcomes", json=unexposed, headers=h("profile-ingest"))
    assert resp.json()["attributed"] == []

    arms = {
        a["arm"]: a
        for a in client.get(f"/v1/experiments/{experiment_id}/analysis", headers=h(ANALYST)).json()["arms"]
    }
    assert arms[arm]["complaints"] == 1
    assert arms[arm]["metrics"]["complaint_rate"] is None  # one exposed customer: too little for a rate
    assert sum(a["opt_outs"] for a in arms.values()) == 0

    future = {**body, "at": (now + timedelta(minutes=10)).isoformat()}
    assert_error(
        client.post("/v1/experiments/outcomes", json=future, headers=h("profile-ingest")),
        422,
        "outcome_in_future",
    )
    naive = {**body, "at": "2026-11-24T09:30:00"}
    assert_error(client.post("/v1/experiments/outcomes", json=naive, headers=h("profile-ingest")), 422)
    assert_error(
        client.post("/v1/experiments/outcomes", json={**body, "kind": "click"}, headers=h("profile-ingest")),
        422,
    )
    assert_error(
        client.post("/v1/experiments/outcomes", json=body, headers=h("app-gateway")),
        403,
        "insufficient_scope",
    )
