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

import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from datetime import time as dtime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pandas as pd
import pytest
from content_hub.cli import main as content_hub_cli
from content_hub.main import create_app as create_content_hub
from content_hub.settings import ContentHubSettings
from fastapi.testclient import TestClient
from product_hub.cli import main as product_hub_cli
from product_hub.main import create_app as create_product_hub
from product_hub.settings import ProductHubSettings
from profile_service.cli import main as profile_cli
from profile_service.main import create_app as create_profile
from profile_service.service.activity import NullPusher
from profile_service.settings import ProfileSettings
from qianmian_bankgen.catalogue import CATALOGUE
from qianmian_bankgen.generator import generate
from qianmian_core.testing import auth_headers, dev_token
from qianmian_features import FeastEnvironment, FeatureSettings, apply, materialize, open_store
from qianmian_rules import CustomerFacts, check_eligibility, check_suitability
from recommender.cli import main as recommender_cli
from recommender.database import migrate as migrate_recommender
from recommender.main import create_app as create_recommender
from recommender.service.context import ChangeFeedClient, FeastFeatureReader
from recommender.service.hub_cache import (
    ContentHubClient,
    HubCache,
    HubCacheConfig,
    ProductHubClient,
    RightsHubClient,
)
from recommender.service.profile import ProfileClient
from recommender.settings import RecommenderSettings
from rights_hub.cli import main as rights_hub_cli
from rights_hub.main import create_app as create_rights_hub
from rights_hub.settings import RightsHubSettings

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
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    bank = tmp_path_factory.mktemp("bank")
    generate(customers=600, seed=7, as_of=datetime.now(UTC).date(), out=bank)
    var = tmp_path_factory.mktemp("var")
    repo = var / "feature_repo"
    shutil.copytree(REPO_ROOT / "feature_repo", repo, ignore=shutil.ignore_patterns("data", "__pycache__"))
    store = open_store(
        FeatureSettings(feast_env=FeastEnvironment.LOCAL, feature_repo=repo, data_dir=str(bank))
    )
    apply(store)
    materialize(store, end=datetime.now(UTC))
    urls = {
        name: f"sqlite:///{var / f'{name}.db'}" for name in ("profile", "product", "content", "rights", "rec")
    }
    mp = pytest.MonkeyPatch()
    mp.setenv("PROFILE_DATABASE_URL", urls["profile"])
    mp.setenv("PRODUCT_HUB_DATABASE_URL", urls["product"])
    mp.setenv("CONTENT_HUB_DATABASE_URL", urls["content"])
    mp.setenv("RIGHTS_HUB_DATABASE_URL", urls["rights"])
    mp.setenv("RECOMMENDER_REGISTRY_DIR", str(var / "models"))
    mp.setenv("RECOMMENDER_LOG_LEVEL", "WARNING")
    try:
        assert recommender_cli(["train", "--data", str(bank), "--model", "lightfm", "--approve"]) == 0
        assert profile_cli(["seed", "--data", str(bank)]) == 0
        assert product_hub_cli(["migrate"]) == 0
        assert product_hub_cli(["seed"]) == 0
        assert content_hub_cli(["seed"]) == 0
        assert rights_hub_cli(["seed"]) == 0
    finally:
        mp.undo()
    migrate_recommender(urls["rec"])
    common: dict[str, Any] = {"environment": "test", "auth_tokens_file": DEV_TOKENS}
    profile_app = create_profile(ProfileSettings(database_url=urls["profile"], **common), pusher=NullPusher())
    product_app = create_product_hub(ProductHubSettings(database_url=urls["product"], **common))
    content_app = create_content_hub(ContentHubSettings(database_url=urls["content"], **common))
    rights_app = create_rights_hub(RightsHubSettings(database_url=urls["rights"], **common))

    token = dev_token("recommender")

    def transport(app: Any) -> httpx.ASGITransport:
        return httpx.ASGITransport(app=app)

    cache = HubCache(
        ProductHubClient("http://product-hub.test", token, transport=transport(product_app)),
        ContentHubClient("http://content-hub.test", token, transport=transport(content_app)),
        RightsHubClient("http://rights-hub.test", token, transport=transport(rights_app)),
        HubCacheConfig(ttl_s=30),
    )
    profile = ProfileClient("http://profile.test", token, transport=transport(profile_app))
    changes = ChangeFeedClient("http://profile.test", token, transport=transport(profile_app))
    app = create_recommender(
        RecommenderSettings(
            database_url=urls["rec"], registry_dir=str(var / "models"), change_poll_s=0.05, **common
        ),
        install_signal=False,
        hub_cache=cache,
        profile=profile,
        changes=changes,
        features=FeastFeatureReader(store),
    )
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
                assert not any("{" in str(v) for v in rendered.values()), rendered
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
    assert "cf_similar_customers" in reasons  # the trained model ranks
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
