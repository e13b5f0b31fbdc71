"""profiles.facts_page on SQLite and PostgreSQL: the single-customer answers, page by page, by segment."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from profile_service.models import Customer, Holding, RiskAssessment
from profile_service.schemas import ConsentUpdate, CustomerFactsItem
from profile_service.service import consents, profiles
from qianmian_core.db import Database
from qianmian_rules import SEGMENTS
from sqlalchemy import select

NOW = datetime.now(UTC)


def _everyone(database: Database, limit: int, segment: str | None = None) -> list[CustomerFactsItem]:
    items: list[CustomerFactsItem] = []
    after: str | None = None
    with database.session() as session:
        while True:
            page = profiles.facts_page(session, after, limit, segment)
            items += page.customers
            if page.next_after is None:
                return items
            after = page.next_after


def test_pages_equal_single_answers(seeded_any: Database) -> None:
    with seeded_any.session() as session:
        consents.update(session, "C000000004", ConsentUpdate(personalised=False, sms=False, reason="r"), "t")
    with seeded_any.session() as session:
        # several assessments, the latest recorded one current; several holdings of one product type
        for days, level in ((3, 2), (1, 5), (2, 1)):
            session.add(
                RiskAssessment(
                    customer_id="C000000005",
                    level=level,
                    assessed_at=NOW - timedelta(days=400),
                    expires_at=NOW - timedelta(days=35),
                    source="t",
                    recorded_at=NOW - timedelta(days=days),
                    actor="t",
                )
            )
        for product in ("DEP-A", "DEP-B", "DEP-C"):
            session.add(
                Holding(
                    customer_id="C000000005",
                    product_id=product,
                    product_type="deposit",
                    opened_at=NOW,
                    amount=10.0,
                )
            )
    items = _everyone(seeded_any, limit=4)
    with seeded_any.session() as session:
        ids = list(session.scalars(select(Customer.customer_id).order_by(Customer.customer_id)))
        assert [i.customer_id for i in items] == ids
        for item in items:
            state = profiles.consent_state(session, item.customer_id)
            assert item.facts == profiles.eligibility_facts(session, item.customer_id)
            assert item.consents == state.channels
            assert item.personalised == state.personalised
    by_id = {i.customer_id: i for i in items}
    assert by_id["C000000004"].personalised is False
    assert by_id["C000000005"].facts.risk_level == 5
    assert {"DEP-A", "DEP-B", "DEP-C"} <= by_id["C000000005"].facts.held_product_ids


def test_segment_pages(seeded_any: Database) -> None:
    everyone = _everyone(seeded_any, limit=1000)
    for segment in SEGMENTS:
        expected = [i.customer_id for i in everyone if segment in i.facts.segments]
        assert [i.customer_id for i in _everyone(seeded_any, 2, segment)] == expected
