"""``/v1/outbound/lists`` with in-memory stand-ins for profile's pages, the hubs and content-hub's render."""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from qianmian_core.testing import auth_headers
from recommender.database import migrate, open_database
from recommender.main import create_app
from recommender.models import ContactEvent, Decision
from recommender.service import outbound as outbound_module
from recommender.service.hub_cache import HubCache, HubCacheConfig
from recommender.service.outbound_sources import (
    ContentNotRenderableError,
    CustomerFactsPageWire,
    CustomerFactsWire,
    RenderedWire,
)
from recommender.settings import RecommenderSettings
from recommender.testing import WEALTHY, Content, FakeProfile, Products, Rights, StaticFeatures
from sqlalchemy import func, select

REPO_ROOT = Path(__file__).resolve().parents[4]
DEV_TOKENS = REPO_ROOT / "config" / "dev-tokens.yaml"
SHANGHAI = ZoneInfo("Asia/Shanghai")
OPERATOR = "console-alice"
#: 09:00 in Shanghai, at most a day ago: the fakes' rights are valid from a day before the tests start.
PINNED = (
    datetime.combine(datetime.now(SHANGHAI).date(), datetime.min.time().replace(hour=9), SHANGHAI)
    - timedelta(days=1 if datetime.now(SHANGHAI).hour >= 9 else 2)
).astimezone(UTC)


class Pages:
    """Profile's customer pages: 40 wealthy customers; every third refused push, every fifth opted out."""

    def __init__(self, count: int = 40) -> None:
        self.customers = [
            CustomerFactsWire(
                customer_id=f"C{n:09d}",
                facts=WEALTHY,
                consents={"push": n % 3 != 0, "sms": True, "remote_agent": n % 2 == 0},
                personalised=n % 5 != 0,
            )
            for n in range(1, count + 1)
        ]
        self.calls: list[tuple[str | None, str | None, int]] = []

    async def facts_page(
        self, *, segment: str | None, after: str | None, limit: int
    ) -> CustomerFactsPageWire:
        self.calls.append((segment, after, limit))
        chosen = [
            c
            for c in self.customers
            if (after is None or c.customer_id > after) and (segment is None or segment in c.facts.segments)
        ]
        page = chosen[:limit]
        return CustomerFactsPageWire(
            customers=page, next_after=page[-1].customer_id if len(chosen) > limit else None
        )


class Renderer:
    def __init__(self) -> None:
        self.refused: set[str] = set()
        self.calls: list[tuple[str, str]] = []

    async def render(self, content_id: str, channel: str, at: str) -> RenderedWire:
        self.calls.append((content_id, channel))
        if content_id in self.refused:
            raise ContentNotRenderableError(content_id)
        return RenderedWire(
            content_id=content_id, version=1, channel=channel, text=f"{content_id}: 文案 {channel}"
        )


def _client(tmp_path: Path, pages: Pages, renderer: Renderer) -> TestClient:
    url = f"sqlite:///{tmp_path / 'recommender.db'}"
    migrate(url)
    settings = RecommenderSettings(
        database_url=url,
        registry_dir=str(tmp_path / "models"),
        environment="test",
        auth_tokens_file=DEV_TOKENS,
        outbound_dir=tmp_path / "outbound",
        outbound_page_size=7,
        outbound_batch_size=4,
    )
    app = create_app(
        settings,
        install_signal=False,
        hub_cache=HubCache(Products(), Content(), Rights(), HubCacheConfig(ttl_s=30)),
        profile=FakeProfile(),
        features=StaticFeatures(),
        customer_pages=pages,
        content_renderer=renderer,
    )
    app.state.outbound.now = lambda: PINNED
    return TestClient(app)


@pytest.fixture
def pages() -> Pages:
    return Pages()


@pytest.fixture
def renderer() -> Renderer:
    return Renderer()


@pytest.fixture
def client(tmp_path: Path, pages: Pages, renderer: Renderer) -> Iterator[TestClient]:
    with _client(tmp_path, pages, renderer) as c:
        yield c


def _post(client: TestClient, body: dict[str, Any], who: str = OPERATOR) -> Any:
    return client.post("/v1/outbound/lists", json=body, headers=auth_headers(who))


def _csv(client: TestClient, listing: dict[str, Any]) -> list[dict[str, str]]:
    resp = client.get(listing["file"], headers=auth_headers(OPERATOR))
    assert resp.status_code == 200, resp.text
    return list(csv.DictReader(io.StringIO(resp.content.decode("utf-8-sig"))))


def test_a_push_list_takes_the_best_rows_and_their_contact_slots(client: TestClient, pages: Pages) -> None:
    resp = _post(client, {"name": "推送", "channel": "push", "max_contacts": 10})
    assert resp.status_code == 201, resp.text
    listing = resp.json()
    assert listing["status"] == "ready"
    assert listing["created_by"] == OPERATOR
    assert listing["scanned"] == 40
    assert listing["rows"] == 10
    refused_push = sum(1 for c in pages.customers if not c.consents["push"])
    assert listing["excluded"]["consent_refused"] == refused_push
    assert listing["excluded"]["over_max_contacts"] == 40 - refused_push - 10
    assert listing["scheduled_at"] == (PINNED + timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    assert [c[2] for c in pages.calls] == [7] * len(pages.calls)  # paged with the configured size
    rows = _csv(client, listing)
    ranked = [(-float(r["score"]), r["customer_id"]) for r in rows]
    assert ranked == sorted(ranked)  # by priority, ties by customer id
    assert all(r["message"].endswith("文案 push") for r in rows)
    db = open_database(client.app.state.settings.database_url)
    try:
        with db.session() as session:
            assert session.scalar(select(func.count()).select_from(ContactEvent)) == 10
            decisions = session.scalars(select(Decision)).all()
    finally:
        db.dispose()
    assert {d.decision_id for d in decisions} == {r["decision_id"] for r in rows}
    assert {d.placement for d in decisions} == {"outbound_list"}
    record = client.get(f"/v1/decisions/{rows[0]['decision_id']}", headers=auth_headers(OPERATOR)).json()
    assert record["features"]["contact_reservation"]["granted"] is True
    assert record["request"]["outbound"]["list_id"] == listing["list_id"]

    second = _post(client, {"name": "推送2", "channel": "push", "max_contacts": 40}).json()
    assert second["excluded"]["cap_weekly_push"] == 10
    assert {r["customer_id"] for r in _csv(client, second)}.isdisjoint({r["customer_id"] for r in rows})


def test_a_call_list_spreads_rows_over_days_by_agent_capacity(client: TestClient) -> None:
    body = {
        "name": "外呼",
        "channel": "remote_agent",
        "max_contacts": 100,
        "agent_capacity_per_day": 3,
        "days": 2,
    }
    listing = _post(client, body).json()
    rows = _csv(client, listing)
    assert listing["rows"] == len(rows) == 6
    assert listing["excluded"]["over_agent_capacity"] == 20 - 6  # 20 customers consent to calls
    start = datetime.fromisoformat(listing["request"]["start_date"]).date()
    assert Counter(r["call_date"] for r in rows) == {
        start.isoformat(): 3,
        (start + timedelta(days=1)).isoformat(): 3,
    }
    assert all(r["call_script"] for r in rows)
    last = client.get(f"/v1/decisions/{rows[-1]['decision_id']}", headers=auth_headers(OPERATOR)).json()
    assert last["request"]["outbound"]["contact_at"].startswith((start + timedelta(days=1)).isoformat())


def test_rows_whose_content_cannot_be_rendered_are_left_out(client: TestClient, renderer: Renderer) -> None:
    first = _csv(client, _post(client, {"name": "a", "channel": "sms", "max_contacts": 100}).json())
    assert len(renderer.calls) == len({r["content_id"] for r in first})  # once per item, not per row
    renderer.refused.add(first[0]["content_id"])
    listing = _post(client, {"name": "b", "channel": "sms", "max_contacts": 100}).json()
    rows = _csv(client, listing)
    refused = sum(1 for r in first if r["content_id"] == first[0]["content_id"])
    assert listing["excluded"]["content_not_renderable"] == refused
    assert first[0]["content_id"] not in {r["content_id"] for r in rows}
    assert listing["rows"] + sum(listing["excluded"].values()) == listing["scanned"]


@pytest.mark.parametrize("scope", [{"product_types": ["deposit"]}, {}])
def test_the_precheck_changes_no_row(
    tmp_path: Path, pages: Pages, renderer: Renderer, monkeypatch: pytest.MonkeyPatch, scope: dict[str, Any]
) -> None:
    body = {"name": "scope", "channel": "push", "max_contacts": 100, **scope}
    lists = []
    for precheck in (True, False):
        monkeypatch.setattr(outbound_module, "PRECHECK", precheck)
        with _client(tmp_path / str(precheck), pages, renderer) as client:
            listing = _post(client, body).json()
            lists.append((listing, {(r["customer_id"], r["product_id"]) for r in _csv(client, listing)}))
    (with_check, rows_with), (without_check, rows_without) = lists
    assert rows_with == rows_without
    assert with_check["rows"] == without_check["rows"] > 0
    assert with_check["excluded"] == without_check["excluded"]


BASE: dict[str, Any] = {"name": "x", "channel": "push", "max_contacts": 5}


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({**BASE, "channel": "remote_agent", "days": 2}, "validation_error"),  # no capacity
        ({**BASE, "product_ids": ["NOPE"]}, "unknown_products"),
        ({**BASE, "scheduled_at": "2099-03-01T22:00:00+08:00"}, "scheduled_in_quiet_hours"),
        ({**BASE, "rights_budget_fen": -1}, "validation_error"),
        ({**BASE, "max_contacts": 1_000_001}, "validation_error"),
    ],
)
def test_bad_requests(client: TestClient, body: dict[str, Any], code: str) -> None:
    resp = _post(client, body)
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"]["code"] == code


def test_scopes(client: TestClient) -> None:
    assert (
        _post(client, {"name": "x", "channel": "push", "max_contacts": 5}, who="app-gateway").status_code
        == 403
    )
    listing = _post(client, {"name": "x", "channel": "push", "max_contacts": 5}).json()
    assert (
        client.get(
            f"/v1/outbound/lists/{listing['list_id']}", headers=auth_headers("app-gateway")
        ).status_code
        == 403
    )
    assert client.get(f"/v1/outbound/lists/{listing['list_id']}").status_code == 401
