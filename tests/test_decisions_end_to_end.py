"""End to end on embedded defaults: generate a bank, apply and materialise Feast, train, run all five.

The four other services run in-process (httpx.ASGITransport) on SQLite databases seeded from a small
generated bank; the recommender reads a real Feast store (SQLite online store, materialised from the
bank's parquet files), serves a LightFM model trained on the bank and registered as approved, and
follows profile's change feed. Customers of every segment are asked for in every channel.

Every bundle is checked independently of the recommender: its product against the rule engine with
the customer's facts from profile, its content against content-hub's approved listing for the
channel, its right against rights-hub's affordable list, and the channel against the consents.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from datetime import time as dtime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from qianmian_bankgen.catalogue import CATALOGUE
from qianmian_core.testing import auth_headers
from qianmian_rules import CustomerFacts, check_eligibility, check_suitability
from recommender.cli import main as recommender_cli
from recommender.main import create_app as create_recommender
from recommender.service.context import ChangeFeedClient, FeastFeatureReader
from recommender.service.profile import ProfileClient
from recommender.settings import RecommenderSettings

#: A placeholder of content-hub's templates (``{product_name}``) that was not filled.
PLACEHOLDER = re.compile(r"\{[a-z_][a-z0-9_]*\}")

DEV_TOKENS = Path("config/dev-tokens.yaml")
REPO_ROOT = Path(__file__).resolve().parents[1]
SEGMENTS = ("payroll", "mortgage", "credit_card", "wealth", "social_security", "long_tail")
CHANNELS = ("app", "mini_program", "push", "sms", "remote_agent", "online_rm")
RULES = {p.product_id: p for p in CATALOGUE}


@dataclass
class Rig:
    recommender: TestClient
    profile: TestClient
    content: TestClient
    rights: TestClient
    customers: list[str]
    model_version: str


@pytest.fixture(scope="module")
def rig(seeded_stack: Callable[[int, int], Any]) -> Iterator[Rig]:
    stack = seeded_stack(600, 7)  # tests/conftest.py: bank, Feast, model, four seeded services
    bank, token = stack.bank, stack.token
    # The LightGBM ranker on six monthly snapshots of the same bank's holdings history, as `make demo`
    # trains it: one world for the ranker and the policies.
    ranker_dir = stack.var / "ranker"
    mp = pytest.MonkeyPatch()
    mp.setenv("RECOMMENDER_REGISTRY_DIR", str(stack.registry_dir))
    mp.setenv("RECOMMENDER_LOG_LEVEL", "WARNING")
    try:
        sizes = ["--bank", str(bank), "--months", "6", "--seed", "7", "--train-months", "2"]
        assert recommender_cli(["train-ranker", *sizes, "--workdir", str(ranker_dir), "--approve"]) == 0
    finally:
        mp.undo()
    app = create_recommender(
        RecommenderSettings(
            database_url=stack.urls["rec"],
            registry_dir=str(stack.registry_dir),
            ranker_store=ranker_dir / "repo",
            change_poll_s=0.05,
            environment="test",
            auth_tokens_file=DEV_TOKENS,
        ),
        install_signal=False,
        hub_cache=stack.hub_cache(),
        profile=ProfileClient("http://profile.test", token, transport=stack.transport(stack.profile_app)),
        changes=ChangeFeedClient("http://profile.test", token, transport=stack.transport(stack.profile_app)),
        features=FeastFeatureReader(stack.store),
    )
    profile_app, content_app, rights_app = stack.profile_app, stack.content_app, stack.rights_app
    profiles = pd.read_parquet(bank / "features" / "customer_profile.parquet")
    latest = profiles.sort_values("event_timestamp").groupby("customer_id").tail(1)
    customers: list[str] = []
    for segment in SEGMENTS:  # four customers of every segment
        members = latest.loc[latest[f"seg_{segment}"] == 1, "customer_id"].sort_values()
        customers.extend([c for c in members.tolist() if c not in customers][:4])
    with TestClient(app) as client:
        yield Rig(
            recommender=client,
            profile=TestClient(profile_app),
            content=TestClient(content_app),
            rights=TestClient(rights_app),
            customers=customers,
            model_version=client.app.state.model_holder.require().manifest.version,
        )


def _facts(rig: Rig, customer_id: str) -> CustomerFacts:
    resp = rig.profile.get(
        f"/v1/customers/{customer_id}/eligibility-facts", headers=auth_headers("recommender")
    )
    assert resp.status_code == 200, resp.text
    return CustomerFacts.model_validate(resp.json())


def _consents(rig: Rig, customer_id: str) -> dict[str, Any]:
    resp = rig.profile.get(f"/v1/customers/{customer_id}/consents", headers=auth_headers("recommender"))
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def _approved(rig: Rig) -> dict[tuple[str, int], dict[str, Any]]:
    resp = rig.content.get(
        "/v1/content",
        params={"status": "approved", "limit": 500},
        headers=auth_headers("recommender"),
    )
    assert resp.status_code == 200, resp.text
    return {(i["content_id"], i["version"]): i for i in resp.json()["items"]}


def _affordable(rig: Rig) -> set[str]:
    resp = rig.rights.get(
        "/v1/rights", params={"affordable": "true", "limit": 500}, headers=auth_headers("recommender")
    )
    assert resp.status_code == 200, resp.text
    return {r["right_id"] for r in resp.json()["items"]}


def _decide(rig: Rig, customer_id: str, channel: str, **extra: Any) -> dict[str, Any]:
    resp = rig.recommender.post(
        "/v1/decisions",
        json={
            "customer_id": customer_id,
            "channel": channel,
            "placement": "home_banner",
            "limit": 5,
            **extra,
        },
        headers=auth_headers("app-gateway"),
    )
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def _in_quiet_hours(channel: str, at: datetime) -> bool:
    local = at.astimezone(ZoneInfo("Asia/Shanghai")).time()
    return channel in {"push", "sms", "remote_agent"} and (local >= dtime(21) or local < dtime(8))


def test_every_segment_and_channel_gets_compliant_explained_audited_bundles(rig: Rig) -> None:
    approved = _approved(rig)
    affordable = _affordable(rig)
    served = 0
    modes: set[str] = set()
    reasons: set[str] = set()
    for n, customer_id in enumerate(rig.customers):
        facts = _facts(rig, customer_id)
        consents = _consents(rig, customer_id)
        for channel in CHANNELS:
            moment = {"type": "deposit_maturing"} if n % 2 else None
            before = datetime.now(UTC)
            body = _decide(rig, customer_id, channel, **({"moment": moment} if moment else {}))
            now = datetime.now(UTC)
            expected_mode = "personalised" if consents["personalised"] else "non_personalised"
            assert body["mode"] == expected_mode, (customer_id, body["degraded_reasons"])
            assert body["degraded_reasons"] == []
            assert body["model_version"] == (rig.model_version if consents["personalised"] else None)
            modes.add(body["mode"])
            if not consents["channels"].get(channel, False):
                assert body["bundles"] == [], (customer_id, channel)
            if _in_quiet_hours(channel, before) and _in_quiet_hours(channel, now):
                assert body["bundles"] == []
                assert "quiet_hours" in body["reason_codes"]
            for bundle in body["bundles"]:
                product_id = bundle["product"]["id"]
                rules = RULES[product_id]
                assert not check_eligibility(rules.eligibility, facts), (customer_id, product_id)
                assert not check_suitability(rules.risk_rating, facts, now), (customer_id, product_id)
                assert product_id not in facts.held_product_ids
                content = approved.get((bundle["content"]["id"], bundle["content"]["version"]))
                assert content is not None, bundle["content"]
                assert content["product_id"] == product_id
                assert content["variants"].get(channel), (channel, content["variants"])
                rendered = bundle["content"]["fields"]  # the channel variant, placeholders filled
                assert set(rendered) == set(content["variants"][channel])
                # No placeholder left unfilled, in any field (call scripts hold lists of objections).
                assert not PLACEHOLDER.search(json.dumps(rendered, ensure_ascii=False)), rendered
                if bundle["right"] is not None:
                    assert bundle["right"]["id"] in affordable
                assert bundle["reason_codes"], bundle
                assert bundle["explanation"]["zh"]
                assert bundle["explanation"]["en"]
                if (
                    moment is not None
                    and bundle["product"]["type"] == "deposit"
                    and body["mode"] == "personalised"
                ):
                    assert "moment_deposit_renewal" in bundle["reason_codes"]
                reasons.update(bundle["reason_codes"])
            served += bool(body["bundles"])
            record = rig.recommender.get(
                f"/v1/decisions/{body['decision_id']}", headers=auth_headers("console-alice")
            )
            assert record.status_code == 200, record.text
            audit = record.json()
            assert audit["response"]["bundles"] == body["bundles"]
            feast = audit["features"]["feast"]
            assert feast["missing"] == [], feast
            assert feast["values"], feast
            assert set(feast["event_timestamps"]) == {"customer_profile", "customer_activity"}
            for candidate in audit["candidates"]:
                rules_seen = [o["rule"] for o in candidate["outcomes"]]
                assert {"eligibility", "suitability", "consent", "content", "contact_cap"} <= set(rules_seen)
            allowed = {c["product_id"] for c in audit["candidates"] if c["allowed"]}
            assert {b["product"]["id"] for b in body["bundles"]} <= allowed
    assert modes == {"personalised"} or modes == {"personalised", "non_personalised"}
    assert served >= len(rig.customers)  # every customer is served something in some channel
    assert "cf_similar_customers" in reasons  # the trained model finds candidates …
    assert "ranker_next_product" in reasons  # … and the ranker scores them
    assert "moment_deposit_renewal" in reasons or "moment_maturity_wealth" in reasons


def test_opted_out_customer_gets_non_personalised(rig: Rig) -> None:
    customer_id = rig.customers[0]
    resp = rig.profile.put(
        f"/v1/customers/{customer_id}/consents",
        json={"personalised": False, "app": True, "reason": "customer asked"},
        headers=auth_headers("console-alice"),
    )
    assert resp.status_code == 200, resp.text
    # The recommender follows profile's change feed (polled every 50 ms here, 1 s by default): the
    # opt-out takes effect within one poll, never from a cached profile beyond it.
    changed = time.monotonic()
    body = _decide(rig, customer_id, "app", moment={"type": "salary_credited"})
    while body["mode"] != "non_personalised" and time.monotonic() - changed < 5:
        time.sleep(0.05)
        body = _decide(rig, customer_id, "app", moment={"type": "salary_credited"})
    assert body["mode"] == "non_personalised"
    assert time.monotonic() - changed < 1.0
    assert body["model_version"] is None
    for bundle in body["bundles"]:
        assert bundle["explanation"]["en"] == "This is a popular choice among our customers."
    audit = rig.recommender.get(
        f"/v1/decisions/{body['decision_id']}", headers=auth_headers("console-alice")
    ).json()
    assert audit["mode"] == "non_personalised"
    assert all(c["sources"] == ["popularity:global"] for c in audit["candidates"])
