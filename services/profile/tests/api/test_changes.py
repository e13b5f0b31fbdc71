"""GET /v1/changes: every write that changes facts, consent or activity appears once, in order."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from profile_service.models import CustomerChange
from qianmian_core.db import Database
from sqlalchemy import func, select

C = "C000000001"
UNASSESSED = "C000000003"
Headers = Callable[[str], dict[str, str]]


def _feed(client: TestClient, headers: Headers, query: str = "") -> dict[str, Any]:
    response = client.get(f"/v1/changes{query}", headers=headers("recommender"))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _count(database: Database) -> int:
    with database.session() as session:
        return int(session.scalar(select(func.count()).select_from(CustomerChange)) or 0)


def _event(event_id: str, customer_id: str = C) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "customer_id": customer_id,
        "event_type": "app_login",
        "occurred_at": (datetime.now(UTC) - timedelta(minutes=1)).isoformat(),
    }


def _contact() -> dict[str, Any]:
    return {
        "channel": "app",
        "placement": "home_banner",
        "product_id": "WM-R2-01",
        "action": "click",
        "at": (datetime.now(UTC) - timedelta(seconds=5)).isoformat(),
    }


def _risk() -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "level": 2,
        "assessed_at": (now - timedelta(days=1)).isoformat(),
        "expires_at": (now + timedelta(days=364)).isoformat(),
        "source": "branch_questionnaire",
    }


def test_seeded_feed_is_empty(client: TestClient, headers: Headers) -> None:
    assert _feed(client, headers) == {"changes": [], "next_after": 0, "head": 0}
    assert _feed(client, headers, "?after=42") == {"changes": [], "next_after": 42, "head": 0}


def test_every_write_path_appends_one_change(client: TestClient, headers: Headers) -> None:
    writes = [
        ("put", f"/v1/customers/{C}/consents", {"push": False, "reason": "call"}, "profile-ingest", 200),
        ("put", f"/v1/customers/{UNASSESSED}/risk-assessment", _risk(), "profile-ingest", 200),
        ("post", "/v1/events", _event("evt-change-1"), "recommender", 201),
        ("post", "/v1/customers/C000000002/contacts", _contact(), "recommender", 201),
        # the same value again still moves the consent's updated_at, which /consents shows
        ("put", f"/v1/customers/{C}/consents", {"push": False, "reason": "again"}, "profile-ingest", 200),
    ]
    before = datetime.now(UTC)
    for method, path, body, who, status in writes:
        response = client.request(method.upper(), path, json=body, headers=headers(who))
        assert response.status_code == status, response.text
    feed = _feed(client, headers)
    assert [(c["customer_id"], c["kind"]) for c in feed["changes"]] == [
        (C, "consent"),
        (UNASSESSED, "risk"),
        (C, "moment"),
        ("C000000002", "contact"),
        (C, "consent"),
    ]
    seqs = [c["seq"] for c in feed["changes"]]
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == len(seqs)
    assert feed["head"] == feed["next_after"] == seqs[-1]
    for change in feed["changes"]:
        at = datetime.fromisoformat(change["at"])
        assert at.tzinfo is not None
        assert before - timedelta(seconds=1) <= at <= datetime.now(UTC)


def test_rejected_writes_and_replays_append_nothing(
    client: TestClient, headers: Headers, seeded: Database
) -> None:
    once = _event("evt-once")
    assert client.post("/v1/events", json=once, headers=headers("recommender")).status_code == 201
    assert _count(seeded) == 1
    rejected = [
        ("POST", "/v1/events", once, "recommender", 200),  # replay: nothing changed
        ("POST", "/v1/events", {**once, "event_type": "card_bill"}, "recommender", 409),
        ("POST", "/v1/events", _event("evt-nobody", "C999999999"), "recommender", 404),
        ("PUT", "/v1/customers/C999999999/consents", {"push": True, "reason": "x"}, "profile-ingest", 404),
        ("PUT", f"/v1/customers/{C}/consents", {"reason": "nothing"}, "profile-ingest", 422),
        ("PUT", f"/v1/customers/{C}/risk-assessment", {**_risk(), "level": 9}, "profile-ingest", 422),
        ("POST", "/v1/customers/C999999999/contacts", _contact(), "recommender", 404),
        ("PUT", f"/v1/customers/{C}/consents", {"push": True, "reason": "x"}, "recommender", 403),
    ]
    for method, path, body, who, status in rejected:
        assert client.request(method, path, json=body, headers=headers(who)).status_code == status, path
    assert _count(seeded) == 1


def test_paging_with_after_and_limit(client: TestClient, headers: Headers) -> None:
    for i in range(7):
        response = client.post("/v1/events", json=_event(f"evt-page-{i}"), headers=headers("recommender"))
        assert response.status_code == 201
    everything = _feed(client, headers)["changes"]
    assert len(everything) == 7
    seen: list[int] = []
    after = 0
    while True:
        page = _feed(client, headers, f"?after={after}&limit=3")
        assert page["head"] == everything[-1]["seq"]
        assert len(page["changes"]) <= 3
        if not page["changes"]:
            assert page["next_after"] == after
            break
        seen += [c["seq"] for c in page["changes"]]
        assert page["next_after"] == page["changes"][-1]["seq"]
        after = page["next_after"]
    assert seen == [c["seq"] for c in everything]
    tail = _feed(client, headers, f"?after={everything[4]['seq']}")
    assert [c["seq"] for c in tail["changes"]] == seen[5:]


@pytest.mark.parametrize("query", ["?after=-1", "?after=abc", "?limit=0", "?limit=5001", "?after=1e3"])
def test_bad_parameters_are_422(
    client: TestClient, headers: Headers, error: Callable[..., object], query: str
) -> None:
    error(client.get(f"/v1/changes{query}", headers=headers("recommender")), 422, "validation_error")


def test_needs_profile_read(client: TestClient, headers: Headers, error: Callable[..., object]) -> None:
    error(client.get("/v1/changes"), 401, "unauthorized")
    error(client.get("/v1/changes", headers=headers("readonly-analyst")), 403, "insufficient_scope")
    error(client.get("/v1/changes", headers=headers("profile-ingest")), 403, "insufficient_scope")
    assert client.get("/v1/changes", headers=headers("content-hub")).status_code == 200
