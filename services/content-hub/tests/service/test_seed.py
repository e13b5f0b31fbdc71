"""Seeding goes through the real workflow (screening and maker-checker included) and is idempotent."""

from __future__ import annotations

from typing import Any

import pytest
from content_hub.main import build_service
from content_hub.schemas import TransitionRequest
from content_hub.service import ContentFilter
from content_hub.service.seed import SEED_APPROVER, SEED_AUTHOR, SEED_PRODUCTS, seed_content
from content_hub.settings import ContentHubSettings
from qianmian_bankgen.catalogue import by_id
from qianmian_core.db import Database

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_seed_approves_every_item_through_the_workflow_and_is_idempotent(
    settings: ContentHubSettings, profiles: Any
) -> None:
    database = Database(settings.database_url)
    service = build_service(settings, database, profiles)
    try:
        assert len(SEED_PRODUCTS) >= 10
        assert {by_id()[p].risk_rating for p in SEED_PRODUCTS} >= {None, 1, 2, 3}
        first = seed_content(service)
        assert (first.created, first.approved, first.unchanged) == (len(SEED_PRODUCTS), len(SEED_PRODUCTS), 0)
        again = seed_content(service)
        assert (again.created, again.approved, again.unchanged) == (0, 0, len(SEED_PRODUCTS))

        approved = service.search(ContentFilter(limit=500)).items
        assert len(approved) == len(SEED_PRODUCTS)
        assert all(v.author == SEED_AUTHOR and v.approved_by == SEED_APPROVER for v in approved)
        history = service.history("CNT-WM-R2-90").transitions
        assert [(t.to_status, t.actor) for t in history] == [
            ("draft", SEED_AUTHOR),
            ("in_review", SEED_AUTHOR),
            ("approved", SEED_APPROVER),
        ]
        # Every channel of every seeded item renders within its limits for every kind of customer.
        for item in approved:
            for channel in ("app", "mini_program", "push", "sms", "remote_agent"):
                for customer in ("C-WEALTH", "C-CARD", "C-NEW", None):
                    rendered = await service.render(item.content_id, channel, customer)
                    assert "{" not in rendered.text, rendered.text
    finally:
        database.dispose()


def test_seed_carries_on_an_interrupted_run(settings: ContentHubSettings, profiles: Any) -> None:
    database = Database(settings.database_url)
    service = build_service(settings, database, profiles)
    try:
        seed_content(service)
        # Someone retires one seeded item: seeding again must not resurrect it.
        service.transition("CNT-DEP-3M-01", 1, TransitionRequest(to="retired"), actor=SEED_AUTHOR)
        report = seed_content(service)
        assert report.approved == 0
        assert service.get("CNT-DEP-3M-01").serving_version is None
    finally:
        database.dispose()
