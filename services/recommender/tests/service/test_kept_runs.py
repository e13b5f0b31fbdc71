"""Kept pipeline runs (``DecisionService._kept_run``) answer exactly as runs made afresh.

Two recommenders over their own databases, one keeping a warm customer's runs and one making every
run afresh, are asked the same questions at the same moments: a walk over two days in two-hour steps
for customers and channels whose answers change with time and history — quiet hours (push and calls
from 21:00 to 08:00), daily caps filling up and draining, a dismiss starting a cool-down, content
leaving its window, products leaving their sale window, a risk assessment expiring. Every answer
and every audit record must be the same, but for the decision's id.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from qianmian_core.testing import auth_headers
from recommender.database import migrate, open_database
from recommender.main import create_app
from recommender.service.audit import GroupCommitAuditWriter
from recommender.service.hub_cache import HubCache, HubCacheConfig
from recommender.service.policies import ContactPolicy
from recommender.settings import RecommenderSettings
from recommender.testing import NOW, WEALTHY, Content, FakeProfile, Products, Rights, StaticFeatures

REPO_ROOT = Path(__file__).resolve().parents[4]
DEV_TOKENS = REPO_ROOT / "config" / "dev-tokens.yaml"

#: The walk: 24 steps of two hours at whole hours, so that its steps meet the quiet hours' edges; it
#: starts 40 hours before the stand-ins' NOW (their rights are valid from a day before it) so that
#: feedback is not in the future.
START = NOW.replace(minute=0, second=0, microsecond=0) - timedelta(hours=40)
STEP = timedelta(hours=2)
STEPS = 24
CONTENT_ENDS = START + 19 * STEP
RISK_EXPIRES = START + 13 * STEP
SALES_END = START + 7 * STEP
#: Caps that fill up and drain within the walk (the weekly ones would stay full after a few steps).
POLICY = ContactPolicy(daily_per_channel=2, weekly_all_channels=1000, weekly_push=1000, agent_calls_30d=3)


class ContentUntil(Content):
    """The stand-in's content, every variant in its window only until :data:`CONTENT_ENDS`."""

    async def approved_content(self) -> list[Any]:
        return [c.model_copy(update={"valid_until": CONTENT_ENDS}) for c in await super().approved_content()]


class SalesEnding(Products):
    """The stand-in's products, every one on sale only until :data:`SALES_END` but the first five."""

    async def active_products(self) -> list[Any]:
        products = await super().active_products()
        return [p if i < 5 else p.model_copy(update={"sale_end": SALES_END}) for i, p in enumerate(products)]


class WalkProfile(FakeProfile):
    """The stand-in's customers and one whose risk assessment expires during the walk."""

    def __init__(self) -> None:
        super().__init__()
        wealthy = self.people["C000000001"]
        self.people["C000000004"] = type(wealthy)(
            WEALTHY.model_copy(update={"risk_expires_at": RISK_EXPIRES}), wealthy.consents, True
        )


def _app(tmp_path: Path, name: str, *, keep: bool, stack: ExitStack) -> tuple[TestClient, Any]:
    url = f"sqlite:///{tmp_path / f'{name}.db'}"
    migrate(url)
    settings = RecommenderSettings(
        database_url=url,
        registry_dir=str(tmp_path / f"{name}-models"),
        environment="test",
        auth_tokens_file=DEV_TOKENS,
        contact_policy=POLICY,
    )
    cache = HubCache(SalesEnding(), ContentUntil(), Rights(), HubCacheConfig(ttl_s=30))
    app = create_app(
        settings,
        install_signal=False,
        hub_cache=cache,
        profile=WalkProfile(),
        features=StaticFeatures(),
        audit=GroupCommitAuditWriter(open_database(url)),
    )
    client = stack.enter_context(TestClient(app))
    service = app.state.decisions
    if not keep:
        service.runs = None
    return client, service


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[tuple[TestClient, Any], tuple[TestClient, Any]]]:
    with ExitStack() as stack:
        yield _app(tmp_path, "kept", keep=True, stack=stack), _app(tmp_path, "fresh", keep=False, stack=stack)


def _without_ids(value: Any, decision_id: str) -> Any:
    """``value`` with the decision's own id blanked wherever it appears."""
    if isinstance(value, dict):
        return {k: _without_ids(v, decision_id) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_ids(v, decision_id) for v in value]
    return "<id>" if value == decision_id else value


def _audit(client: TestClient, decision_id: str) -> Any:
    record = client.get(f"/v1/decisions/{decision_id}", headers=auth_headers("console-alice"))
    assert record.status_code == 200
    return _without_ids(record.json(), decision_id)


def test_kept_runs_answer_as_fresh_runs_over_time_caps_cooldowns_and_windows(
    pair: tuple[tuple[TestClient, Any], tuple[TestClient, Any]],
) -> None:
    (kept, kept_service), (fresh, fresh_service) = pair
    customers = ("C000000001", "C000000002", "C000000004")
    channels = ("app", "push", "remote_agent")
    seen_codes: set[str] = set()
    dismissed = False
    for step in range(STEPS):
        at = START + step * STEP
        for offset, (customer, channel) in enumerate((c, ch) for c in customers for ch in channels):
            moment = at + timedelta(seconds=offset)
            body = {"customer_id": customer, "channel": channel, "placement": "home_banner", "limit": 3}
            # twice at the same moment and once a second later: the kept run's second and third use
            for again in (timedelta(0), timedelta(0), timedelta(seconds=1)):
                clock = moment + again
                for service in (kept_service, fresh_service):
                    service.now = lambda clock=clock: clock
                a = kept.post("/v1/decisions", json=body, headers=auth_headers("app-gateway"))
                b = fresh.post("/v1/decisions", json=body, headers=auth_headers("app-gateway"))
                assert a.status_code == b.status_code == 200
                answer_a, answer_b = a.json(), b.json()
                assert _without_ids(answer_a, answer_a["decision_id"]) == _without_ids(
                    answer_b, answer_b["decision_id"]
                ), (step, customer, channel)
                assert _audit(kept, answer_a["decision_id"]) == _audit(fresh, answer_b["decision_id"])
                seen_codes.update(answer_a["reason_codes"])
                if not dismissed and answer_a["bundles"] and channel == "app" and step >= 1:
                    # a dismiss on both: the product cools down from the next decision on
                    product = answer_a["bundles"][0]["product"]["id"]
                    for client, answer in ((kept, answer_a), (fresh, answer_b)):
                        client.app.state.feedback.now = lambda clock=clock: clock + timedelta(seconds=1)
                        feedback = client.post(
                            "/v1/feedback",
                            json={
                                "decision_id": answer["decision_id"],
                                "product_id": product,
                                "event": "dismiss",
                                "at": (clock + timedelta(seconds=1)).isoformat(),
                            },
                            headers={
                                **auth_headers("app-gateway"),
                                "Idempotency-Key": f"dismiss-{answer['decision_id']}",
                            },
                        )
                        assert feedback.status_code in (200, 201), feedback.text
                    dismissed = True
    # the walk met what it set out to meet
    assert dismissed
    assert {"quiet_hours", "contact_cap"} <= seen_codes, seen_codes
    runs = kept_service.runs
    assert runs is not None
    assert len(runs) > 0
    assert fresh_service.runs is None
