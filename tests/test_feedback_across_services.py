"""``POST /v1/feedback`` converts against the real rights-hub: the right is granted exactly once.

rights-hub runs in-process (httpx.ASGITransport) on a SQLite database, with rights created and
activated through its own API (maker and checker). The recommender runs on SQLite and PostgreSQL;
its decisions are written to its audit log with exact bundles (``recommender.testing``), the hubs
and profile of the decision path are the in-memory stand-ins. A switchable transport stands for
rights-hub going down; nothing stands in for rights-hub's answers.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from qianmian_core.db import Database
from qianmian_core.testing import SQLITE_AND_POSTGRES, auth_headers, dev_token, empty_database_url
from recommender.database import migrate as migrate_recommender
from recommender.database import open_database
from recommender.main import create_app as create_recommender
from recommender.models import ContactEvent, Feedback
from recommender.service.feedback import FeedbackService
from recommender.service.grants import RightsGrantClient
from recommender.service.hub_cache import HubCache, HubCacheConfig
from recommender.settings import RecommenderSettings
from recommender.testing import Content, FakeProfile, Products, Rights, StaticFeatures, record_decision
from rights_hub.database import migrate as migrate_rights_hub
from rights_hub.main import create_app as create_rights_hub
from rights_hub.settings import RightsHubSettings
from sqlalchemy import func, select

DEV_TOKENS = Path("config/dev-tokens.yaml")
BOOST = "RT-FB-BOOST"  # plenty of budget, one per customer


class Switchable(httpx.AsyncBaseTransport):
    """An ASGI transport that can be switched off, as if rights-hub went down."""

    def __init__(self, app: FastAPI) -> None:
        self.inner = httpx.ASGITransport(app=app)
        self.down = False
        self.calls = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        return await self.inner.handle_async_request(request)


def _create_right(rights: TestClient, right_id: str, budget: int) -> None:
    now = datetime.now(UTC)
    payload = {
        "right_id": right_id,
        "name": f"加息券 {right_id}",
        "right_type": "rate_boost",
        "unit_cost_fen": 3_000,
        "budget_count": budget,
        "budget_money_fen": 3_000 * budget,
        "per_customer_limit": 1,
        "valid_from": (now - timedelta(days=1)).isoformat(),
        "valid_until": (now + timedelta(days=30)).isoformat(),
    }
    created = rights.post("/v1/rights", json=payload, headers=auth_headers("console-alice"))
    assert created.status_code == 201, created.text
    activated = rights.post(
        f"/v1/rights/{right_id}/transitions", json={"to": "active"}, headers=auth_headers("console-bob")
    )
    assert activated.status_code == 200, activated.text


@pytest.fixture(scope="module")
def rights_app(tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    url = f"sqlite:///{tmp_path_factory.mktemp('rights') / 'rights-hub.db'}"
    migrate_rights_hub(url)
    app = create_rights_hub(
        RightsHubSettings(database_url=url, environment="test", auth_tokens_file=DEV_TOKENS)
    )
    rights = TestClient(app)
    _create_right(rights, BOOST, budget=1_000)
    return app


@dataclass
class Rig:
    client: TestClient
    rights: TestClient
    database: Database
    transport: Switchable
    feedback: FeedbackService


@pytest.fixture(params=SQLITE_AND_POSTGRES)
def rig(request: pytest.FixtureRequest, tmp_path: Path, rights_app: FastAPI) -> Iterator[Rig]:
    with empty_database_url(request.param, tmp_path, "recommender_feedback") as url:
        migrate_recommender(url)
        transport = Switchable(rights_app)
        settings = RecommenderSettings(
            database_url=url,
            registry_dir=str(tmp_path / "models"),
            environment="test",
            auth_tokens_file=DEV_TOKENS,
        )
        app = create_recommender(
            settings,
            install_signal=False,
            hub_cache=HubCache(Products(), Content(), Rights(), HubCacheConfig(ttl_s=30)),
            profile=FakeProfile(),
            features=StaticFeatures(),
            rights_grants=RightsGrantClient(
                "http://rights-hub.test", dev_token("recommender"), transport=transport, timeout_s=10.0
            ),
        )
        database = open_database(url)
        try:
            with TestClient(app) as client:
                yield Rig(client, TestClient(rights_app), database, transport, app.state.feedback)
        finally:
            database.dispose()


def _customer() -> str:
    """A fresh pseudonymous customer: rights-hub's per-customer limit starts at zero for each test."""
    return f"CFB{uuid.uuid4().hex[:12]}"


def _convert(rig: Rig, decision_id: str, key: str, product_id: str = "DEP-1Y-01") -> httpx.Response:
    headers = {**auth_headers("app-gateway"), "Idempotency-Key": key}
    body = {"decision_id": decision_id, "product_id": product_id, "event": "convert", "value": 1_000_000}
    resp: httpx.Response = rig.client.post("/v1/feedback", json=body, headers=headers)
    return resp


def _grants(rig: Rig, customer_id: str) -> list[dict[str, Any]]:
    resp = rig.rights.get(f"/v1/customers/{customer_id}/grants", headers=auth_headers("recommender"))
    assert resp.status_code == 200, resp.text
    items: list[dict[str, Any]] = resp.json()["items"]
    return items


def _count(database: Database, model: Any, *where: Any) -> int:
    with database.session() as session:
        return int(session.execute(select(func.count()).select_from(model).where(*where)).scalar_one())


def test_a_convert_grants_the_right_once_however_often_it_is_reported(rig: Rig) -> None:
    customer = _customer()
    decision_id = record_decision(rig.database, [("DEP-1Y-01", BOOST)], customer_id=customer)
    first = _convert(rig, decision_id, "convert-1")
    assert first.status_code == 201, first.text
    grant = first.json()["right_grant"]
    assert grant["status"] == "granted", grant
    assert grant["right_id"] == BOOST
    assert grant["error_code"] is None
    assert grant["grant_id"].startswith("grt_")

    calls = rig.transport.calls
    again = _convert(rig, decision_id, "convert-1")
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.content == first.content
    assert rig.transport.calls == calls  # a granted right is never asked for again

    # Another request (another key) for the same converted bundle: rights-hub answers with its grant.
    other = _convert(rig, decision_id, "convert-2")
    assert "Idempotent-Replayed" not in other.headers
    assert other.json()["right_grant"] == grant

    (granted,) = _grants(rig, customer)
    assert (granted["grant_id"], granted["decision_id"], granted["status"]) == (
        grant["grant_id"],
        decision_id,
        "granted",
    )


def test_concurrent_duplicates_record_once_and_grant_once(rig: Rig) -> None:
    customer = _customer()
    decision_id = record_decision(rig.database, [("DEP-1Y-01", BOOST)], customer_id=customer)
    n = 12
    barrier = threading.Barrier(n)

    def send(i: int) -> httpx.Response:
        barrier.wait()
        # Two thirds share one key (retries of one request); the rest are other requests on the bundle.
        return _convert(rig, decision_id, "race" if i % 3 else f"race-{i}")

    with ThreadPoolExecutor(max_workers=n) as pool:
        answers = list(pool.map(send, range(n)))
    assert all(a.status_code == 201 for a in answers), [a.text for a in answers]
    same_key = [a for i, a in enumerate(answers) if i % 3]
    assert {a.content for a in same_key} == {same_key[0].content}
    assert sum("Idempotent-Replayed" not in a.headers for a in same_key) == 1
    grants = {a.json()["right_grant"]["grant_id"] for a in answers}
    statuses = {a.json()["right_grant"]["status"] for a in answers}
    assert statuses == {"granted"}
    (grant_id,) = grants
    assert [g["grant_id"] for g in _grants(rig, customer)] == [grant_id]
    assert _count(rig.database, Feedback) == 1 + n // 3  # one per distinct key
    assert _count(rig.database, ContactEvent, ContactEvent.kind == "convert") == 1 + n // 3


def test_an_exhausted_budget_is_refused_and_the_conversion_still_recorded(rig: Rig) -> None:
    scarce = f"RT-FB-SCARCE-{uuid.uuid4().hex[:8].upper()}"
    _create_right(rig.rights, scarce, budget=1)
    first, second = _customer(), _customer()
    taken = record_decision(rig.database, [("DEP-1Y-01", scarce)], customer_id=first)
    late = record_decision(rig.database, [("DEP-1Y-01", scarce)], customer_id=second)
    assert _convert(rig, taken, "scarce-1").json()["right_grant"]["status"] == "granted"
    refused = _convert(rig, late, "scarce-2")
    assert refused.status_code == 201, refused.text
    assert refused.json()["right_grant"] == {
        "right_id": scarce,
        "status": "refused",
        "grant_id": None,
        "error_code": "right_exhausted",
    }
    assert _grants(rig, second) == []
    assert _count(rig.database, ContactEvent, ContactEvent.decision_id == late) == 1
    calls = rig.transport.calls
    assert _convert(rig, late, "scarce-2").content == refused.content
    assert rig.transport.calls == calls  # a refusal is final: not asked again
    metrics = rig.client.get("/metrics").text
    assert 'qianmian_rights_grants_total{outcome="refused"}' in metrics


def test_rights_hub_down_leaves_the_grant_pending_until_a_retry(rig: Rig) -> None:
    customer = _customer()
    decision_id = record_decision(rig.database, [("DEP-1Y-01", BOOST)], customer_id=customer)
    rig.transport.down = True
    pending = _convert(rig, decision_id, "down-1")
    assert pending.status_code == 201, pending.text
    assert pending.json()["right_grant"]["status"] == "pending_retry"
    assert pending.json()["right_grant"]["error_code"] == "rights_hub_unavailable"
    assert _count(rig.database, ContactEvent, ContactEvent.decision_id == decision_id) == 1

    rig.transport.down = False
    retried = _convert(rig, decision_id, "down-1")  # the replay retries under the same rights-hub key
    assert retried.headers["Idempotent-Replayed"] == "true"
    assert retried.json()["right_grant"]["status"] == "granted"
    assert {k: v for k, v in retried.json().items() if k != "right_grant"} == {
        k: v for k, v in pending.json().items() if k != "right_grant"
    }
    assert _convert(rig, decision_id, "down-1").content == retried.content  # settled: stable bytes
    assert len(_grants(rig, customer)) == 1
    assert _count(rig.database, ContactEvent, ContactEvent.decision_id == decision_id) == 1


def test_the_retry_job_settles_pending_grants(rig: Rig) -> None:
    customer = _customer()
    decision_id = record_decision(rig.database, [("DEP-1Y-01", BOOST)], customer_id=customer)
    rig.transport.down = True
    assert _convert(rig, decision_id, "job-1").json()["right_grant"]["status"] == "pending_retry"
    rig.transport.down = False
    results = asyncio.run(rig.feedback.retry_pending_grants())
    assert [r.status for r in results] == ["granted"]
    replay = _convert(rig, decision_id, "job-1")
    assert replay.json()["right_grant"]["grant_id"] == results[0].grant_id
    assert asyncio.run(rig.feedback.retry_pending_grants()) == []
    assert len(_grants(rig, customer)) == 1
