"""``POST /v1/feedback`` through the app: validation, idempotent replays, the cool-down a dismiss starts
in the next decision, and a convert while rights-hub is down.

Decisions come from the decision API over the in-memory stand-ins of ``recommender.testing``, or are
seeded straight into the audit log where a test needs exact bundles. rights-hub is a closed port
here; the grant against the real rights-hub is in ``tests/test_feedback_across_services.py``.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from qianmian_core.db import Database
from qianmian_core.testing import assert_error, auth_headers
from recommender.database import migrate, open_database
from recommender.main import create_app
from recommender.repository.contacts import ContactRepository
from recommender.service.grants import RightsGrantClient
from recommender.service.hub_cache import HubCache, HubCacheConfig
from recommender.settings import RecommenderSettings
from recommender.testing import (
    Content,
    FakeProfile,
    Products,
    Rights,
    StaticFeatures,
    record_decision,
)

REPO_ROOT = Path(__file__).resolve().parents[4]
DEV_TOKENS = REPO_ROOT / "config" / "dev-tokens.yaml"


def closed_port_url() -> str:
    """A local URL nothing listens on: connections are refused at once (rights-hub down)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@dataclass
class Rig:
    client: TestClient
    database: Database


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    url = f"sqlite:///{tmp_path / 'recommender.db'}"
    migrate(url)
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
        rights_grants=RightsGrantClient(closed_port_url(), "unused", timeout_s=1.0),
    )
    database = open_database(url)
    try:
        with TestClient(app) as client:
            yield Rig(client, database)
    finally:
        database.dispose()


def _feedback(rig: Rig, body: dict[str, Any], key: str | None = "key-1", who: str = "app-gateway") -> Any:
    headers = auth_headers(who)
    if key is not None:
        headers["Idempotency-Key"] = key
    return rig.client.post("/v1/feedback", json=body, headers=headers)


def _decide(rig: Rig, customer_id: str = "C000000001", **extra: Any) -> dict[str, Any]:
    resp = rig.client.post(
        "/v1/decisions",
        json={"customer_id": customer_id, "channel": "app", "placement": "home_banner", "limit": 3, **extra},
        headers=auth_headers("app-gateway"),
    )
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def test_feedback_is_recorded_and_a_replay_is_byte_identical(rig: Rig) -> None:
    decision_id = record_decision(rig.database, [("DEP-1Y-01", None)])
    body = {"decision_id": decision_id, "product_id": "DEP-1Y-01", "event": "impression"}
    first = _feedback(rig, body)
    assert first.status_code == 201, first.text
    assert "Idempotent-Replayed" not in first.headers
    out = first.json()
    assert out["feedback_id"].startswith("fbk_")
    assert (out["decision_id"], out["product_id"], out["event"]) == (decision_id, "DEP-1Y-01", "impression")
    assert out["cooldown_until"] is None
    assert out["right_grant"] is None
    recorded = datetime.fromisoformat(out["recorded_at"])
    assert abs(recorded - datetime.now(UTC)) < timedelta(minutes=1)
    assert out["at"] == out["recorded_at"]  # "at" defaults to now

    again = _feedback(rig, body)
    assert again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.content == first.content

    metrics = rig.client.get("/metrics").text
    assert 'qianmian_feedback_events_total{event="impression"}' in metrics
    assert 'qianmian_rights_grants_total{outcome="granted"}' in metrics


def test_the_same_key_with_another_body_is_422(rig: Rig) -> None:
    decision_id = record_decision(rig.database, [("DEP-1Y-01", None), ("WM-R2-01", None)])
    assert _feedback(
        rig, {"decision_id": decision_id, "product_id": "DEP-1Y-01", "event": "click"}
    ).is_success
    reused = _feedback(rig, {"decision_id": decision_id, "product_id": "WM-R2-01", "event": "click"})
    assert_error(reused, 422, "idempotency_key_reused")


@pytest.mark.parametrize(
    ("change", "key", "status", "code"),
    [
        ({"event": "purchase"}, "k", 422, "validation_error"),
        ({}, None, 400, "idempotency_key_required"),
        ({}, "not a key!", 422, "validation_error"),
        ({"decision_id": "dec_unknown"}, "k", 404, "decision_not_found"),
        ({"product_id": "CC-GOLD-01"}, "k", 422, "product_not_in_decision"),
        ({"value": -1}, "k", 422, "validation_error"),
        ({"at": "2026-11-23T09:00:00"}, "k", 422, "validation_error"),  # no time zone
        ({"at": "2999-01-01T00:00:00Z"}, "k", 422, "feedback_in_future"),
        ({"at": "2020-01-01T00:00:00Z"}, "k", 422, "feedback_too_old"),
        ({"customer_id": "C000000001"}, "k", 422, "validation_error"),  # the decision says who
    ],
)
def test_bad_feedback_is_refused_in_the_error_shape(
    rig: Rig,
    change: dict[str, Any],
    key: str | None,
    status: int,
    code: str,
) -> None:
    decision_id = record_decision(rig.database, [("DEP-1Y-01", None)])
    body = {"decision_id": decision_id, "product_id": "DEP-1Y-01", "event": "click", **change}
    assert_error(_feedback(rig, body, key=key), status, code)
    # Nothing was recorded: the key is still free for the corrected request.
    if key == "k":
        fixed = {"decision_id": decision_id, "product_id": "DEP-1Y-01", "event": "click"}
        assert _feedback(rig, fixed, key="k").status_code == 201


def test_auth_is_required(rig: Rig) -> None:
    decision_id = record_decision(rig.database, [("DEP-1Y-01", None)])
    body = {"decision_id": decision_id, "product_id": "DEP-1Y-01", "event": "click"}
    assert_error(rig.client.post("/v1/feedback", json=body, headers={"Idempotency-Key": "k"}), 401)
    assert_error(_feedback(rig, body, who="readonly-analyst"), 403, "insufficient_scope")


def test_a_dismissed_product_is_blocked_by_its_cool_down_in_the_next_decision(rig: Rig) -> None:
    first = _decide(rig)
    assert first["bundles"], first
    dismissed = first["bundles"][0]["product"]["id"]
    resp = _feedback(
        rig,
        {"decision_id": first["decision_id"], "product_id": dismissed, "event": "dismiss"},
        key="dismiss-1",
    )
    assert resp.status_code == 201, resp.text
    until = datetime.fromisoformat(resp.json()["cooldown_until"])
    assert timedelta(days=7) - timedelta(minutes=1) < until - datetime.now(UTC) <= timedelta(days=7)

    second = _decide(rig)
    offered = {b["product"]["id"] for b in second["bundles"]}
    assert dismissed not in offered
    assert offered, "another product can still be offered"
    audit = rig.client.get(f"/v1/decisions/{second['decision_id']}", headers=auth_headers("console-alice"))
    assert audit.status_code == 200, audit.text
    (candidate,) = [c for c in audit.json()["candidates"] if c["product_id"] == dismissed]
    assert not candidate["allowed"]
    cooldown = [o for o in candidate["outcomes"] if o["rule"] == "cooldown"]
    assert cooldown == [{"rule": "cooldown", "passed": False, "codes": ["cooldown_dismissed"]}]
    # The cool-down is this customer's: another customer's decision does not see it.
    other = _decide(rig, customer_id="C000000003")
    record = rig.client.get(f"/v1/decisions/{other['decision_id']}", headers=auth_headers("console-alice"))
    codes = {code for c in record.json()["candidates"] for o in c["outcomes"] for code in o["codes"]}
    assert "cooldown_dismissed" not in codes


def test_a_product_the_customer_saw_is_not_repeated_within_the_no_repeat_window(
    rig: Rig, tmp_path: Path
) -> None:
    first = _decide(rig)
    seen = first["bundles"][0]["product"]["id"]
    assert seen in {b["product"]["id"] for b in _decide(rig)["bundles"]}  # a decision alone is no impression
    resp = _feedback(
        rig, {"decision_id": first["decision_id"], "product_id": seen, "event": "impression"}, key="imp-1"
    )
    assert resp.status_code == 201, resp.text

    second = _decide(rig)
    offered = {b["product"]["id"] for b in second["bundles"]}
    assert seen not in offered
    assert offered, "other products are still offered"
    record = rig.client.get(f"/v1/decisions/{second['decision_id']}", headers=auth_headers("app-gateway"))
    body = record.json()
    assert next(c for c in body["candidates"] if c["product_id"] == seen)["arbitration"] == "recently_shown"
    assert seen in body["features"]["context"]["shown"]
    # Another customer saw nothing: the product is still theirs to see.
    assert seen in {b["product"]["id"] for b in _decide(rig, customer_id="C000000003")["bundles"]}
    # The decision replays exactly from its record (what was shown is a recorded input).
    from recommender.ml.registry import ModelRegistry
    from recommender.repository.audit import AuditRepository
    from recommender.service.replay import ReplayService

    with rig.database.session() as session:
        stored = AuditRepository(session).get(second["decision_id"])
    assert stored is not None
    result = ReplayService(rig.database, ModelRegistry(str(tmp_path / "models"))).replay(stored)
    assert result.identical, result.differences


def test_a_convert_is_recorded_while_rights_hub_is_down(rig: Rig) -> None:
    decision_id = record_decision(rig.database, [("DEP-1Y-01", "RT-TD-RATE-BOOST-15BP")])
    body = {"decision_id": decision_id, "product_id": "DEP-1Y-01", "event": "convert", "value": 2_000_000}
    resp = _feedback(rig, body, key="convert-1")
    assert resp.status_code == 201, resp.text
    assert resp.json()["right_grant"] == {
        "right_id": "RT-TD-RATE-BOOST-15BP",
        "status": "pending_retry",
        "grant_id": None,
        "error_code": "rights_hub_unavailable",
    }
    again = _feedback(rig, body, key="convert-1")  # retried under the same rights-hub key; still down
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.content == resp.content
    metrics = rig.client.get("/metrics").text
    assert 'qianmian_rights_grants_total{outcome="pending_retry"}' in metrics


def test_openapi_documents_the_operation(rig: Rig) -> None:
    schema = rig.client.get("/openapi.json").json()
    operation = schema["paths"]["/v1/feedback"]["post"]
    assert operation["operationId"] == "record_feedback"
    assert {"201", "400", "401", "403", "404", "422", "503"} <= set(operation["responses"])
    created = operation["responses"]["201"]
    assert "Idempotent-Replayed" in created["headers"]
    assert created["content"]["application/json"]["schema"]["$ref"].endswith("/FeedbackOut")
    assert any(p["name"] == "Idempotency-Key" and p["in"] == "header" for p in operation["parameters"])
    components = schema["components"]["schemas"]
    assert components["FeedbackRequestBody"]["examples"][0]["event"] == "convert"
    assert components["FeedbackOut"]["examples"][0]["right_grant"]["status"] == "granted"


def _retries(rig: Rig) -> float:
    for line in rig.client.get("/metrics").text.splitlines():
        if line.startswith("qianmian_decision_retries_total "):
            return float(line.split()[1])
    raise AssertionError("qianmian_decision_retries_total is not exported")


def test_a_cool_down_started_elsewhere_is_caught_when_the_slot_is_settled(rig: Rig) -> None:
    """A dismiss recorded by another replica does not reach this one's contact ledger. The decision
    offering the dismissed product is caught when its slot is settled in the audit transaction: nothing
    is written for it, it is made again from the stored state, and the product is blocked."""
    first = _decide(rig)
    offered = [b["product"]["id"] for b in first["bundles"]]
    assert offered
    dismissed = offered[0]
    # Another replica's dismiss: straight into the shared database, not through this app.
    with rig.database.session() as session:
        until = datetime.now(UTC) + timedelta(days=7)
        ContactRepository(session).start_cooldown(
            "C000000001", dismissed, until, reason="dismissed", decision_id=None
        )
    before = _retries(rig)
    second = _decide(rig)
    assert dismissed not in [b["product"]["id"] for b in second["bundles"]]
    assert _retries(rig) == before + 1
    record = rig.client.get(f"/v1/decisions/{second['decision_id']}", headers=auth_headers("app-gateway"))
    assert record.status_code == 200
    candidate = next(c for c in record.json()["candidates"] if c["product_id"] == dismissed)
    assert {"rule": "cooldown", "passed": False, "codes": ["cooldown_dismissed"]} in candidate["outcomes"]
    with rig.database.session() as session:  # one slot per answered decision, none for the retried one
        since = datetime.now(UTC) - timedelta(days=1)
        assert len(ContactRepository(session).decision_times("C000000001", since)) == 2
