"""``/v1/decisions`` with in-memory stand-ins for profile and the hubs (no other service needed)."""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from qianmian_bankgen.catalogue import CATALOGUE
from qianmian_core.testing import assert_error, auth_headers
from qianmian_rules import CustomerFacts, check_eligibility, check_suitability
from recommender.api import decisions as decisions_api
from recommender.api import feedback as feedback_api
from recommender.database import migrate
from recommender.main import create_app
from recommender.service.audit import GroupCommitAuditWriter, Settled
from recommender.service.hub_cache import (
    HubCache,
    HubCacheConfig,
)
from recommender.settings import RecommenderSettings
from recommender.testing import (
    NOW,
    WEALTHY,
    Content,
    Down,
    FakeProfile,
    Products,
    Rights,
    StaticFeatures,
)
from sqlalchemy.exc import OperationalError

REPO_ROOT = Path(__file__).resolve().parents[4]
DEV_TOKENS = REPO_ROOT / "config" / "dev-tokens.yaml"


class BrokenWriter(GroupCommitAuditWriter):
    """An audit store whose every commit fails (the batch's slots and records roll back together)."""

    def _commit(self, batch: Sequence[Any]) -> list[Settled]:
        raise OperationalError("INSERT INTO decisions", {}, Exception("disk I/O error"))


def _settings(tmp_path: Path) -> RecommenderSettings:
    url = f"sqlite:///{tmp_path / 'recommender.db'}"
    migrate(url)
    return RecommenderSettings(
        database_url=url,
        registry_dir=str(tmp_path / "models"),
        environment="test",
        auth_tokens_file=DEV_TOKENS,
    )


def _client(
    tmp_path: Path,
    profile: FakeProfile,
    *,
    products: Any = None,
    writer_cls: type = GroupCommitAuditWriter,
    features: StaticFeatures | None = None,
) -> TestClient:
    settings = _settings(tmp_path)
    from recommender.database import open_database

    cache = HubCache(products or Products(), Content(), Rights(), HubCacheConfig(ttl_s=30))
    app = create_app(
        settings,
        install_signal=False,
        hub_cache=cache,
        profile=profile,
        features=features or StaticFeatures(),
        audit=writer_cls(open_database(settings.database_url)),
    )
    return TestClient(app)


@pytest.fixture
def profile() -> FakeProfile:
    return FakeProfile()


@pytest.fixture
def client(tmp_path: Path, profile: FakeProfile) -> Iterator[TestClient]:
    with _client(tmp_path, profile) as c:
        yield c


def _post(client: TestClient, body: Mapping[str, Any], who: str = "app-gateway") -> Any:
    return client.post("/v1/decisions", json=body, headers=auth_headers(who))


def _offerable(facts: CustomerFacts) -> set[str]:
    return {
        p.product_id
        for p in CATALOGUE
        if not check_eligibility(p.eligibility, facts)
        and not check_suitability(p.risk_rating, facts, NOW)
        and p.product_id not in facts.held_product_ids
    }


def test_a_decision_is_compliant_audited_and_readable(client: TestClient) -> None:
    resp = _post(
        client, {"customer_id": "C000000001", "channel": "app", "placement": "home_banner", "limit": 5}
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["mode"] == "fallback"  # no model in the registry
    assert body["degraded_reasons"] == ["model_unavailable"]
    assert body["experiment"] is None
    assert 1 <= len(body["bundles"]) <= 5
    offerable = _offerable(WEALTHY)
    types = [b["product"]["type"] for b in body["bundles"]]
    assert len(types) == len(set(types))  # diversity
    for bundle in body["bundles"]:
        assert bundle["product"]["id"] in offerable
        assert bundle["content"]["id"] == f"CNT-{bundle['product']['id']}"
        assert bundle["content"]["fields"]["title"].endswith("(app)")
        assert bundle["explanation"]["zh"]
        assert bundle["explanation"]["en"]
    record = client.get(f"/v1/decisions/{body['decision_id']}", headers=auth_headers("console-alice"))
    assert record.status_code == 200, record.text
    audit = record.json()
    assert audit["customer_id"] == "C000000001"
    assert audit["response"]["bundles"] == body["bundles"]
    assert len(audit["candidates"]) >= len(body["bundles"])
    assert all(c["outcomes"] for c in audit["candidates"])


def test_opted_out_customer_gets_non_personalised_popularity(client: TestClient) -> None:
    body = _post(client, {"customer_id": "C000000002", "channel": "app", "placement": "home_banner"}).json()
    assert body["mode"] == "non_personalised"
    assert body["model_version"] is None
    assert body["bundles"]
    for bundle in body["bundles"]:
        assert bundle["product"]["id"] in _offerable(WEALTHY)
        assert bundle["explanation"]["en"] == "This is a popular choice among our customers."


def test_no_risk_rated_product_without_assessment(client: TestClient) -> None:
    body = _post(
        client, {"customer_id": "C000000003", "channel": "app", "placement": "wealth_tab", "limit": 10}
    ).json()
    assert body["bundles"]
    assert all(b["product"]["risk_rating"] is None for b in body["bundles"])


def test_profile_down_falls_back_and_offers_nothing_unconsented(
    client: TestClient, profile: FakeProfile
) -> None:
    profile.down = True
    resp = _post(client, {"customer_id": "C000000001", "channel": "app", "placement": "home_banner"})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["mode"] == "fallback"
    assert "profile_unavailable" in body["degraded_reasons"]
    assert body["bundles"] == []  # consent unknown counts as refused: nothing is offered
    audit = client.get(f"/v1/decisions/{body['decision_id']}", headers=auth_headers("console-alice")).json()
    assert audit["candidates"]
    assert all(not c["allowed"] for c in audit["candidates"])
    metrics = client.get("/metrics").text
    assert 'qianmian_decision_fallback_total{reason="profile_unavailable"}' in metrics


def test_hubs_down_fall_back_with_no_products(tmp_path: Path, profile: FakeProfile) -> None:
    with _client(tmp_path, profile, products=Down()) as client:
        body = _post(client, {"customer_id": "C000000001", "channel": "app", "placement": "x"}).json()
    assert body["mode"] == "fallback"
    assert "product_catalogue_missing" in body["degraded_reasons"]
    assert body["bundles"] == []


def test_contact_cap_gives_empty_bundles(client: TestClient) -> None:
    request = {"customer_id": "C000000001", "channel": "mini_program", "placement": "home_banner"}
    for _ in range(3):  # 3 per day per channel by default
        assert _post(client, request).json()["bundles"]
    body = _post(client, request).json()
    assert body["bundles"] == []
    assert "contact_cap" in body["reason_codes"]
    assert "cap_daily_channel" in body["reason_codes"]


def test_audit_failure_is_503_and_nothing_is_returned(tmp_path: Path, profile: FakeProfile) -> None:
    with _client(tmp_path, profile, writer_cls=BrokenWriter) as client:
        resp = _post(client, {"customer_id": "C000000001", "channel": "app", "placement": "home_banner"})
    assert_error(resp, 503, "audit_unavailable")


def test_an_unmigrated_store_is_503_quickly(tmp_path: Path, profile: FakeProfile) -> None:
    settings = RecommenderSettings(
        database_url=f"sqlite:///{tmp_path / 'empty.db'}",
        registry_dir=str(tmp_path / "models"),
        environment="test",
        auth_tokens_file=DEV_TOKENS,
    )
    cache = HubCache(Products(), Content(), Rights(), HubCacheConfig(ttl_s=30))
    app = create_app(settings, install_signal=False, hub_cache=cache, profile=profile)
    with TestClient(app) as client:
        resp = _post(client, {"customer_id": "C000000001", "channel": "app", "placement": "home_banner"})
    assert_error(resp, 503, "audit_unavailable")


def test_unknown_customer_is_404(client: TestClient) -> None:
    resp = _post(client, {"customer_id": "C999999999", "channel": "app", "placement": "home_banner"})
    assert_error(resp, 404, "customer_not_found")
    assert_error(client.get("/v1/decisions/dec_nope", headers=auth_headers("console-alice")), 404)


@pytest.mark.parametrize(
    "body",
    [
        {"customer_id": "C1", "channel": "fax", "placement": "home_banner"},
        {"customer_id": "C1", "channel": "app", "placement": "home_banner", "limit": 0},
        {"customer_id": "C1", "channel": "app", "placement": "home_banner", "limit": 11},
        {"customer_id": "C1", "channel": "app", "placement": "home_banner", "moment": {"type": "lottery"}},
        {"channel": "app", "placement": "home_banner"},
        {"customer_id": "C1", "channel": "app", "placement": "home_banner", "extra": 1},
    ],
)
def test_bad_input_is_422_in_the_error_shape(client: TestClient, body: dict[str, Any]) -> None:
    assert_error(_post(client, body), 422)


@pytest.mark.parametrize(
    ("raw", "content_type"),
    [
        (b"{bad", "application/json"),
        (b"", "application/json"),
        (b"[1]", "application/json"),
        (b'{"customer_id": "C000000001", "channel": "app", "placement": "home_banner"}', "text/plain"),
    ],
)
def test_a_body_that_is_no_json_object_is_422_in_the_error_shape(
    client: TestClient, raw: bytes, content_type: str
) -> None:
    resp = client.post(
        "/v1/decisions", content=raw, headers={**auth_headers("app-gateway"), "content-type": content_type}
    )
    error = assert_error(resp, 422, "validation_error")
    assert all(d["loc"][0] == "body" for d in error["details"])


def test_the_decision_route_is_documented_as_fastapi_would(client: TestClient) -> None:
    operation = client.get("/openapi.json").json()["paths"]["/v1/decisions"]["post"]
    assert operation["operationId"] == "create_decision"
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/DecisionRequestBody"}
    assert {"200", "401", "403", "422"} <= set(operation["responses"])


def test_auth_is_required(client: TestClient) -> None:
    body = {"customer_id": "C000000001", "channel": "app", "placement": "home_banner"}
    assert_error(client.post("/v1/decisions", json=body), 401)
    assert_error(_post(client, body, who="readonly-analyst"), 403, "insufficient_scope")
    assert_error(client.get("/v1/decisions/x", headers=auth_headers("readonly-analyst")), 403)


def test_the_hot_paths_run_on_the_event_loop() -> None:
    """No plain ``def`` in the decision and feedback paths: FastAPI would hand each request to its
    thread pool for it (measured: a fifth of the decision endpoint's throughput)."""
    hot = {("POST", "/v1/decisions"), ("POST", "/v1/feedback")}
    seen = set()
    for route in (*decisions_api.router.routes, *feedback_api.router.routes):
        assert isinstance(route, APIRoute)
        for method in route.methods:
            if (method, route.path) not in hot:
                continue
            seen.add((method, route.path))
            stack = [route.dependant]
            while stack:
                dependant = stack.pop()
                if dependant.call is not None:
                    assert inspect.iscoroutinefunction(dependant.call), (route.path, dependant.call)
                stack.extend(dependant.dependencies)
    assert seen == hot


class ContentUntil(Content):
    """The stand-in's content, every variant in its window only until ``until``."""

    def __init__(self, until: Any) -> None:
        self.until = until

    async def approved_content(self) -> list[Any]:
        return [c.model_copy(update={"valid_until": self.until}) for c in await super().approved_content()]


def test_content_leaving_its_window_is_not_served_from_the_kept_parts(
    tmp_path: Path, profile: FakeProfile
) -> None:
    """A warm customer's offer parts are kept per content snapshot and window epoch: the second the
    content's window ends, the same customer's next decision no longer carries it."""
    from datetime import timedelta

    settings = _settings(tmp_path)
    from recommender.database import open_database

    end = NOW + timedelta(hours=1)
    cache = HubCache(Products(), ContentUntil(end), Rights(), HubCacheConfig(ttl_s=30))
    app = create_app(
        settings,
        install_signal=False,
        hub_cache=cache,
        profile=profile,
        features=StaticFeatures(),
        audit=GroupCommitAuditWriter(open_database(settings.database_url)),
    )
    body = {"customer_id": "C000000001", "channel": "app", "placement": "home_banner", "limit": 3}
    with TestClient(app) as client:
        service = app.state.decisions
        service.now = lambda: end - timedelta(seconds=2)
        assert _post(client, body).json()["bundles"]
        service.now = lambda: end - timedelta(seconds=1)
        before = _post(client, body).json()
        assert before["bundles"]
        assert all(b["content"]["id"].startswith("CNT-") for b in before["bundles"])
        service.now = lambda: end
        after = _post(client, body).json()
        assert after["bundles"] == []
        record = client.get(f"/v1/decisions/{after['decision_id']}", headers=auth_headers("console-alice"))
        for candidate in record.json()["candidates"]:
            content = next(o for o in candidate["outcomes"] if o["rule"] == "content")
            assert content == {"rule": "content", "passed": False, "codes": ["content_not_approved"]}
