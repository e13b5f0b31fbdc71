"""``POST /v1/outbound/lists`` against the real profile, product-hub, content-hub and rights-hub.

The four services run in-process (httpx.ASGITransport) on SQLite databases seeded from a small
generated bank, the recommender reads a real Feast store and serves a LightFM model trained on the
bank, as in ``test_decisions_end_to_end.py``. Every row of every list is checked independently of
the recommender: its product against the rule engine with the customer's facts from profile (at the
row's contact time), its content against content-hub's approved listing, its right against
rights-hub's affordable list and the list's budget, the channel against the consents; the file is
parsed as a user's spreadsheet would; caps are checked by asking for a second list at once.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from fastapi.testclient import TestClient
from qianmian_bankgen.catalogue import CATALOGUE
from qianmian_core.masking import mask_text
from qianmian_core.testing import auth_headers
from qianmian_rules import CustomerFacts, check_eligibility, check_suitability
from recommender.database import open_database
from recommender.main import create_app as create_recommender
from recommender.ml.registry import ModelRegistry
from recommender.service.context import FeastFeatureReader
from recommender.service.outbound import CSV_COLUMNS
from recommender.service.outbound_sources import ContentRenderClient, CustomerFactsClient
from recommender.service.profile import ProfileClient
from recommender.service.replay import ReplayService
from recommender.settings import RecommenderSettings

DEV_TOKENS = Path("config/dev-tokens.yaml")
REPO_ROOT = Path(__file__).resolve().parents[1]
RULES = {p.product_id: p for p in CATALOGUE}
SHANGHAI = ZoneInfo("Asia/Shanghai")
CUSTOMERS = 400
OPERATOR = "console-alice"  # holds outbound:write and outbound:read


@dataclass
class Rig:
    recommender: TestClient
    profile: TestClient
    content: TestClient
    rights: TestClient
    outbound_dir: Path
    database_url: str
    registry_dir: Path


@pytest.fixture(scope="module")
def rig(seeded_stack: Callable[[int, int], Any]) -> Iterator[Rig]:
    stack = seeded_stack(CUSTOMERS, 11)  # tests/conftest.py: bank, Feast, model, four seeded services
    var, urls, store, token = stack.var, stack.urls, stack.store, stack.token
    common: dict[str, Any] = {"environment": "test", "auth_tokens_file": DEV_TOKENS}
    profile_app, content_app, rights_app = stack.profile_app, stack.content_app, stack.rights_app
    transport = stack.transport
    cache = stack.hub_cache()
    outbound_dir = var / "outbound"
    app = create_recommender(
        RecommenderSettings(
            database_url=urls["rec"],
            registry_dir=str(var / "models"),
            outbound_dir=outbound_dir,
            outbound_page_size=150,  # several pages per scan
            outbound_batch_size=40,  # several reservation transactions per list
            **common,
        ),
        install_signal=False,
        hub_cache=cache,
        profile=ProfileClient("http://profile.test", token, transport=transport(profile_app)),
        features=FeastFeatureReader(store),
        customer_pages=CustomerFactsClient("http://profile.test", token, transport=transport(profile_app)),
        content_renderer=ContentRenderClient(
            "http://content-hub.test", token, transport=transport(content_app)
        ),
    )
    with TestClient(app) as client, TestClient(profile_app) as profile, TestClient(content_app) as content:
        yield Rig(
            recommender=client,
            profile=profile,
            content=content,
            rights=TestClient(rights_app),
            outbound_dir=outbound_dir,
            database_url=urls["rec"],
            registry_dir=var / "models",
        )


# -- what the other services say, read independently of the recommender ---------------------------


def _all_customers(rig: Rig) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    after: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 5000, **({"after": after} if after else {})}
        resp = rig.profile.get("/v1/customers/facts", params=params, headers=auth_headers("recommender"))
        assert resp.status_code == 200, resp.text
        body = resp.json()
        out.update({c["customer_id"]: c for c in body["customers"]})
        after = body["next_after"]
        if after is None:
            return out


def _approved(rig: Rig) -> dict[tuple[str, int], dict[str, Any]]:
    resp = rig.content.get(
        "/v1/content", params={"status": "approved", "limit": 500}, headers=auth_headers("recommender")
    )
    assert resp.status_code == 200, resp.text
    return {(i["content_id"], i["version"]): i for i in resp.json()["items"]}


def _affordable(rig: Rig) -> dict[str, dict[str, Any]]:
    resp = rig.rights.get(
        "/v1/rights", params={"affordable": "true", "limit": 500}, headers=auth_headers("recommender")
    )
    assert resp.status_code == 200, resp.text
    return {r["right_id"]: r for r in resp.json()["items"]}


def _post(rig: Rig, body: dict[str, Any], who: str = OPERATOR) -> httpx.Response:
    return rig.recommender.post("/v1/outbound/lists", json=body, headers=auth_headers(who))


def _rows(rig: Rig, listing: dict[str, Any]) -> list[dict[str, str]]:
    resp = rig.recommender.get(listing["file"], headers=auth_headers(OPERATOR))
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/csv")
    assert "attachment" in resp.headers["content-disposition"]
    assert resp.content.startswith(b"\xef\xbb\xbf")  # UTF-8 BOM, for Excel
    reader = csv.DictReader(io.StringIO(resp.content.decode("utf-8-sig")))
    text = "call_script" if listing["channel"] == "remote_agent" else "message"
    assert tuple(reader.fieldnames or ()) == tuple(c.format(text=text) for c in CSV_COLUMNS)
    rows = list(reader)
    assert len(rows) == listing["rows"]
    assert [int(r["row"]) for r in rows] == list(range(1, len(rows) + 1))
    return rows


def _next_ten(now: datetime) -> datetime:
    local = now.astimezone(SHANGHAI)
    ten = datetime.combine(local.date(), datetime.min.time().replace(hour=10), SHANGHAI)
    return (ten if ten >= now else ten + timedelta(days=1)).astimezone(UTC)


def _check_rows(
    rig: Rig, listing: dict[str, Any], rows: list[dict[str, str]], customers: dict[str, dict[str, Any]]
) -> None:
    """Every row: eligible, suitable at its contact time, not held, consented, approved content, an
    affordable right, an audited decision that says so; no personal data anywhere."""
    approved = _approved(rig)
    affordable = _affordable(rig)
    channel = listing["channel"]
    scheduled = datetime.fromisoformat(listing["scheduled_at"].replace("Z", "+00:00"))
    start = date.fromisoformat(listing["request"]["start_date"])
    assert len({r["customer_id"] for r in rows}) == len(rows)  # one row per customer
    for row in rows:
        customer = customers[row["customer_id"]]
        facts = CustomerFacts.model_validate(customer["facts"])
        product_id = row["product_id"]
        rules = RULES[product_id]
        call_day = (date.fromisoformat(row["call_date"]) - start).days
        contact_at = scheduled + timedelta(days=call_day)
        assert not check_eligibility(rules.eligibility, facts), (row["customer_id"], product_id)
        assert not check_suitability(rules.risk_rating, facts, contact_at), (row["customer_id"], product_id)
        assert product_id not in facts.held_product_ids
        assert customer["consents"].get(channel) is True, row["customer_id"]
        assert channel in rules.channels
        content = approved.get((row["content_id"], int(row["content_version"])))
        assert content is not None
        assert content["product_id"] == product_id
        assert content["variants"].get(channel)
        text = row["call_script" if channel == "remote_agent" else "message"]
        assert text
        assert "{" not in text  # placeholders filled by content-hub's render
        if channel == "remote_agent":
            assert "风险提示（必读）" in text  # the script's risk statement is read out on every call
        if row["right_id"]:
            assert row["right_id"] in affordable
            assert int(row["right_cost_fen"]) == affordable[row["right_id"]]["unit_cost_fen"]
        assert mask_text(row["customer_id"]) == row["customer_id"]
        assert row["explanation_zh"]
        assert row["reason_codes"]
    # Budget and per-right counts hold across the list.
    assert sum(int(r["right_cost_fen"] or 0) for r in rows) == listing["rights_cost_fen"]
    budget = listing["request"]["rights_budget_fen"]
    if budget is not None:
        assert listing["rights_cost_fen"] <= budget
    for right_id, used in Counter(r["right_id"] for r in rows if r["right_id"]).items():
        assert used <= affordable[right_id]["remaining_count"]


def _check_audit(rig: Rig, listing: dict[str, Any], row: dict[str, str]) -> dict[str, Any]:
    resp = rig.recommender.get(f"/v1/decisions/{row['decision_id']}", headers=auth_headers(OPERATOR))
    assert resp.status_code == 200, resp.text
    audit: dict[str, Any] = resp.json()
    assert audit["customer_id"] == row["customer_id"]
    assert audit["channel"] == listing["channel"]
    assert audit["placement"] == "outbound_list"
    assert audit["request"]["outbound"]["list_id"] == listing["list_id"]
    assert audit["request"]["outbound"]["call_date"] == row["call_date"]
    (bundle,) = audit["response"]["bundles"]
    assert bundle["product"]["id"] == row["product_id"]
    assert bundle["content"]["id"] == row["content_id"]
    assert (bundle["right"] or {}).get("id", "") == row["right_id"]
    assert audit["features"]["contact_reservation"]["granted"] is True
    allowed = {c["product_id"] for c in audit["candidates"] if c["allowed"]}
    assert row["product_id"] in allowed
    for candidate in audit["candidates"]:
        rules_seen = {o["rule"] for o in candidate["outcomes"]}
        assert {
            "eligibility",
            "suitability",
            "consent",
            "content",
            "contact_cap",
            "quiet_hours",
        } <= rules_seen
    return audit


# -- the tests ---------------------------------------------------------------------------------


def test_a_push_list_is_compliant_and_the_weekly_push_cap_limits_the_next_one(rig: Rig) -> None:
    customers = _all_customers(rig)
    body = {
        "name": "存款推送",
        "channel": "push",
        "product_types": ["deposit", "wealth_management"],
        "max_contacts": 1000,
        "rights_budget_fen": 100_000,
    }
    resp = _post(rig, body)
    assert resp.status_code == 201, resp.text
    listing = resp.json()
    assert listing["status"] == "ready"
    assert listing["scanned"] == len(customers)
    assert listing["rows"] > 20
    assert listing["rows"] + sum(listing["excluded"].values()) == listing["scanned"]
    assert listing["scheduled_at"] == _next_ten(datetime.now(UTC)).isoformat().replace("+00:00", "Z")
    without_push = sum(1 for c in customers.values() if not c["consents"].get("push"))
    assert listing["excluded"]["consent_refused"] == without_push
    rows = _rows(rig, listing)
    _check_rows(rig, listing, rows, customers)
    assert {r["call_date"] for r in rows} == {listing["request"]["start_date"]}
    scores = [float(r["score"]) for r in rows]
    assert scores == sorted(scores, reverse=True)  # rows by priority
    for row in rows[:5]:
        _check_audit(rig, listing, row)
    # Every row is a recorded decision that replays (batch-scored: numbers within 1e-5 relative).
    database = open_database(rig.database_url)
    try:
        service = ReplayService(database, ModelRegistry(rig.registry_dir))
        replayed = service.replay_many(service.records([r["decision_id"] for r in rows]))
    finally:
        database.dispose()
    assert replayed.replayed == len(rows)
    assert replayed.differing == [], replayed.differing[:2]
    again = rig.recommender.get(f"/v1/outbound/lists/{listing['list_id']}", headers=auth_headers(OPERATOR))
    assert again.status_code == 200
    assert again.json() == listing

    # The same list again at once: every customer of the first was pushed this week (1 per 7 days).
    second = _post(rig, {**body, "name": "存款推送（再次）"})
    assert second.status_code == 201, second.text
    follow_up = second.json()
    assert follow_up["rows"] == 0
    assert follow_up["excluded"]["cap_weekly_push"] >= listing["rows"]
    assert _rows(rig, follow_up) == []


def test_a_call_list_respects_agent_capacity_and_the_30_day_agent_cap(rig: Rig) -> None:
    customers = _all_customers(rig)
    start = (datetime.now(SHANGHAI) + timedelta(days=1)).date()
    body = {
        "name": "理财外呼",
        "channel": "remote_agent",
        "max_contacts": 500,
        "agent_capacity_per_day": 7,
        "days": 3,
        "start_date": start.isoformat(),
    }
    resp = _post(rig, body)
    assert resp.status_code == 201, resp.text
    listing = resp.json()
    rows = _rows(rig, listing)
    assert 0 < len(rows) <= 21
    per_day = Counter(r["call_date"] for r in rows)
    assert set(per_day) <= {(start + timedelta(days=d)).isoformat() for d in range(3)}
    assert all(n <= 7 for n in per_day.values())
    assert listing["scheduled_at"].startswith(start.isoformat())  # 10:00 Shanghai = 02:00 UTC that day
    if len(rows) == 21:
        assert listing["excluded"].get("over_agent_capacity", 0) > 0
    _check_rows(rig, listing, rows, customers)
    audit = _check_audit(rig, listing, rows[-1])
    assert audit["request"]["outbound"]["contact_at"].startswith(rows[-1]["call_date"])

    # Agents call a customer at most once in 30 days: nobody of the first list is called again.
    second = _post(rig, {**body, "name": "理财外呼（再次）"})
    assert second.status_code == 201, second.text
    again = _rows(rig, second.json())
    assert not {r["customer_id"] for r in again} & {r["customer_id"] for r in rows}
    assert second.json()["excluded"]["cap_agent_30d"] >= len(rows)


def test_the_rights_budget_drops_rights_in_priority_order(rig: Rig) -> None:
    customers = _all_customers(rig)
    body = {"name": "短信", "channel": "sms", "max_contacts": 1000, "rights_budget_fen": 0}
    resp = _post(rig, body)
    assert resp.status_code == 201, resp.text
    listing = resp.json()
    rows = _rows(rig, listing)
    _check_rows(rig, listing, rows, customers)
    assert listing["rights_cost_fen"] == 0
    assert all(r["right_id"] == "" for r in rows)
    assert listing["rights_dropped"] > 0  # some rows' offers carried a right (the bank's aum drops)
    dropped = 0
    for row in rows:
        audit = _check_audit(rig, listing, row)
        assert audit["response"]["bundles"][0]["right"] is None
        (chosen,) = (c for c in audit["candidates"] if c["product_id"] == row["product_id"])
        if {"rule": "right", "passed": False, "codes": ["right_unaffordable"]} in chosen["outcomes"]:
            dropped += 1
            assert chosen["inputs"]["right_affordable"] is False
    assert dropped == listing["rights_dropped"]


def test_feedback_on_an_outbound_row_is_recorded(rig: Rig) -> None:
    # A list decided for yesterday 10:00 (its rows were contacted then), so feedback now is after it.
    outbound = rig.recommender.app.state.outbound
    yesterday = datetime.now(SHANGHAI).date() - timedelta(days=1)
    pinned = datetime.combine(yesterday, datetime.min.time().replace(hour=9), SHANGHAI).astimezone(UTC)
    original = outbound.now
    outbound.now = lambda: pinned
    try:
        # SMS: up to 3 a day, so the earlier lists leave room for it.
        resp = _post(
            rig, {"name": "短信回访", "channel": "sms", "product_types": ["deposit"], "max_contacts": 3}
        )
    finally:
        outbound.now = original
    assert resp.status_code == 201, resp.text
    listing = resp.json()
    rows = _rows(rig, listing)
    if not rows:
        pytest.fail("no customer of the bank can be sent a deposit by SMS")
    feedback = rig.recommender.post(
        "/v1/feedback",
        json={"decision_id": rows[0]["decision_id"], "product_id": rows[0]["product_id"], "event": "click"},
        headers={**auth_headers("app-gateway"), "Idempotency-Key": "outbound-click-1"},
    )
    assert feedback.status_code in (200, 201), feedback.text


BASE: dict[str, Any] = {"name": "x", "channel": "push", "max_contacts": 10}
BAD_REQUESTS: list[tuple[dict[str, Any], str]] = [
    ({**BASE, "channel": "remote_agent"}, "validation_error"),  # no agent capacity
    ({**BASE, "max_contacts": 0}, "validation_error"),
    ({**BASE, "channel": "app"}, "validation_error"),
    ({**BASE, "colour": "red"}, "validation_error"),
    ({**BASE, "segments": ["vip"]}, "validation_error"),
    ({**BASE, "product_ids": ["NOPE-1"]}, "unknown_products"),
    ({**BASE, "product_ids": ["DEP-5Y-01"]}, "scope_not_sold_in_channel"),  # no push for it
    ({**BASE, "scheduled_at": "2099-01-01T23:30:00+08:00"}, "scheduled_in_quiet_hours"),
    ({**BASE, "scheduled_at": "2099-01-01T07:59:00+08:00"}, "scheduled_in_quiet_hours"),
    ({**BASE, "scheduled_at": "2020-01-01T10:00:00+08:00"}, "scheduled_in_past"),
    ({**BASE, "start_date": "2020-01-01"}, "start_date_in_past"),
    (
        {**BASE, "start_date": "2099-01-02", "scheduled_at": "2099-01-01T10:00:00+08:00"},
        "start_date_mismatch",
    ),
]


@pytest.mark.parametrize(("body", "code"), BAD_REQUESTS)
def test_bad_requests_are_422_in_the_error_shape(rig: Rig, body: dict[str, Any], code: str) -> None:
    resp = _post(rig, body)
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"]["code"] == code


def test_scopes_and_unknown_lists(rig: Rig) -> None:
    resp = _post(rig, {"name": "x", "channel": "push", "max_contacts": 10}, who="app-gateway")
    assert resp.status_code == 403
    missing = f"obl_{'0' * 32}"
    assert (
        rig.recommender.get(f"/v1/outbound/lists/{missing}", headers=auth_headers(OPERATOR)).status_code
        == 404
    )
    assert (
        rig.recommender.get(f"/v1/outbound/lists/{missing}/file", headers=auth_headers(OPERATOR)).status_code
        == 404
    )
