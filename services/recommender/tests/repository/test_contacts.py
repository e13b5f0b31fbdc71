"""Contact history: what the reservation counts, feedback events and cool-downs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from qianmian_core.db import Database
from recommender.service.contacts import ContactService
from recommender.service.policies import ContactPolicy, ContactRecord

NOW = datetime(2025, 6, 30, 4, 0, tzinfo=UTC)


def test_reservations_count_sliding_windows_per_channel_and_across(database: Database) -> None:
    service = ContactService(database)
    for hours_ago in (30, 3, 2, 1):
        assert service.reserve(
            "C1", "app", NOW - timedelta(hours=hours_ago), decision_id=f"a{hours_ago}"
        ).granted
    refused = service.reserve("C1", "app", NOW, decision_id="a0")
    assert not refused.granted
    assert refused.blocked_by == ("cap_daily_channel",)
    assert refused.counts == {"cap_daily_channel": 3, "cap_weekly_all": 4}
    assert service.reserve("C1", "mini_program", NOW, decision_id="m0").granted
    # Push: one per week.
    assert service.reserve("C1", "push", NOW - timedelta(days=6), decision_id="p1").granted
    assert service.reserve("C1", "push", NOW, decision_id="p2").blocked_by == ("cap_weekly_push",)
    state = service.state("C1", NOW)
    assert sorted(state.contacts, key=lambda c: c.at)[0] == ContactRecord("push", NOW - timedelta(days=6))
    assert len(state.contacts) == 6


def test_a_dismiss_starts_a_cool_down_that_never_shortens(database: Database) -> None:
    service = ContactService(database, ContactPolicy())
    until = service.dismissed("C2", "app", "P9", NOW, decision_id="d1")
    assert until == NOW + timedelta(days=7)
    service.dismissed("C2", "app", "P9", NOW - timedelta(days=2), decision_id="d0")  # older: kept later end
    assert service.state("C2", NOW).cooldowns == {"P9": until}
    assert service.state("C2", until).cooldowns == {}  # over at its end
    later = service.dismissed("C2", "sms", "P9", NOW + timedelta(days=1), decision_id="d2")
    assert service.state("C2", NOW).cooldowns == {"P9": later}


def test_feedback_kinds_are_checked(database: Database) -> None:
    from recommender.repository import ContactRepository

    with database.session() as session, pytest.raises(ValueError, match="not a feedback kind"):
        ContactRepository(session).record("C3", "app", "decision", NOW)
