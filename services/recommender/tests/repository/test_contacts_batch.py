"""Batch contact slots (outbound lists): ``reserve_many`` answers exactly as ``reserve`` one by one, and
``contact_windows`` reads what ``decision_times`` and ``active_cooldowns`` read, for many customers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from qianmian_core.db import Database
from qianmian_core.testing import empty_database_url
from recommender.database import migrate, open_database
from recommender.models import ContactEvent, ContactLock
from recommender.repository.contacts import ContactRepository, Reservation, SlotRequest
from recommender.service.contacts import ContactService
from recommender.service.policies import ContactPolicy
from sqlalchemy import select

NOW = datetime(2025, 6, 30, 4, 0, tzinfo=UTC)
POLICY = ContactPolicy()


def _history(service: ContactService) -> None:
    """C1 was pushed 6 days ago and called yesterday; C2 had two app decisions today; C3 nothing."""
    for customer, channel, ago, decision in (
        ("C1", "push", timedelta(days=6), "h1"),
        ("C1", "remote_agent", timedelta(days=1), "h2"),
        ("C2", "app", timedelta(hours=3), "h3"),
        ("C2", "app", timedelta(hours=2), "h4"),
    ):
        assert service.reserve(customer, channel, NOW - ago, decision_id=decision).granted


SLOTS = [
    SlotRequest("C1", "push", NOW, "d1", "P1"),  # weekly push cap: refused
    SlotRequest("C1", "sms", NOW, "d2", "P1"),
    SlotRequest("C2", "app", NOW, "d3", "P2"),  # third app decision today: granted
    SlotRequest("C2", "app", NOW + timedelta(minutes=1), "d4", "P2"),  # fourth: refused (daily cap)
    SlotRequest("C3", "remote_agent", NOW + timedelta(days=2), "d5", "P3"),
    SlotRequest("C3", "remote_agent", NOW + timedelta(days=3), "d6", "P3"),  # 30-day agent cap
    SlotRequest("C4", "push", NOW, "d7", None),
]


def _one_by_one(database: Database) -> list[Reservation]:
    service = ContactService(database, POLICY)
    return [
        service.reserve(s.customer_id, s.channel, s.at, decision_id=s.decision_id, product_id=s.product_id)
        for s in SLOTS
    ]


def test_reserve_many_answers_as_reserve_one_by_one(database: Database, tmp_path: Path) -> None:
    with empty_database_url("sqlite", tmp_path, "twin") as url:
        migrate(url)
        twin = open_database(url)
        try:
            _history(ContactService(twin, POLICY))
            expected = _one_by_one(twin)
        finally:
            twin.dispose()
    _history(ContactService(database, POLICY))
    with database.session() as session:
        got = ContactRepository(session).reserve_many(SLOTS, POLICY.caps())
    assert got == expected
    assert [r.granted for r in got] == [False, True, True, False, True, False, True]
    assert got[0].blocked_by == ("cap_weekly_push",)
    assert got[3].blocked_by == ("cap_daily_channel",)
    assert got[5].blocked_by == ("cap_agent_30d",)
    # What was granted is recorded like reserve records it: one decision event per granted slot.
    service = ContactService(database, POLICY)
    assert len(service.state("C3", NOW).contacts) == 1
    assert len(service.state("C2", NOW).contacts) == 3
    with database.session() as session:
        decided = select(ContactEvent.decision_id).where(ContactEvent.kind == "decision")
        granted = set(session.scalars(decided))
        locks = set(session.scalars(select(ContactLock.customer_id)))
    assert granted == {"h1", "h2", "h3", "h4", "d2", "d3", "d5", "d7"}
    # PostgreSQL locks each customer's row (made on first use); SQLite's write lock needs none.
    assert locks == (set() if database.engine.dialect.name == "sqlite" else {"C1", "C2", "C3", "C4"})


def test_reserve_many_of_nothing_does_nothing(database: Database) -> None:
    with database.session() as session:
        assert ContactRepository(session).reserve_many([], POLICY.caps()) == []


def test_contact_windows_read_many_customers_at_once(database: Database) -> None:
    service = ContactService(database, POLICY)
    _history(service)
    service.dismissed("C2", "app", "P9", NOW - timedelta(days=1), decision_id="h3")
    service.dismissed("C3", "app", "P8", NOW - timedelta(days=9), decision_id=None)  # over by NOW
    since = NOW - POLICY.longest_window()
    with database.session() as session:
        repository = ContactRepository(session)
        windows = repository.contact_windows(["C1", "C2", "C3", "C9"], since, NOW)
        for customer in ("C1", "C2", "C3", "C9"):
            assert windows[customer].decisions == repository.decision_times(customer, since)
            assert windows[customer].cooldowns == repository.active_cooldowns(customer, NOW)
        assert repository.contact_windows([], since, NOW) == {}
    assert windows["C2"].cooldowns == {"P9": NOW + timedelta(days=6)}
    assert windows["C9"].decisions == []


def test_settle_refuses_a_slot_whose_offer_is_cooling_and_returns_the_stored_windows(
    database: Database,
) -> None:
    """The decision path's settlement: a cool-down the decision did not know of records nothing for
    that slot (the decision is made again); the other slots are settled as ``reserve_many`` does,
    and the windows handed back are the customers' histories after the batch."""
    _history(ContactService(database, POLICY))
    with database.session() as session:
        ContactRepository(session).start_cooldown(
            "C2", "P2", NOW + timedelta(days=7), reason="dismissed", decision_id=None
        )
    slots = [
        SlotRequest("C2", "app", NOW, "d1"),  # offers P2, dismissed meanwhile
        SlotRequest("C2", "app", NOW, "d2"),  # offers P5: granted (third app decision today)
        SlotRequest("C3", "sms", NOW, "d3"),
    ]
    caps = [POLICY.caps()] * 3
    with database.session() as session:
        got, windows = ContactRepository(session).settle(slots, caps, [("P2", "P7"), ("P5",), ("P1",)])
    assert got[0] == Reservation(granted=False, blocked_by=(), counts={}, cooling=("P2",))
    assert got[1].granted
    assert got[1].counts["cap_daily_channel"] == 2
    assert got[2].granted
    assert sorted(windows) == ["C2", "C3"]
    assert [c for c, _ in windows["C2"].decisions] == ["app", "app", "app"]
    assert windows["C2"].cooldowns == {"P2": NOW + timedelta(days=7)}
    assert windows["C3"].decisions == [("sms", NOW)]
    service = ContactService(database, POLICY)
    assert len(service.state("C2", NOW).contacts) == 3  # d1 recorded nothing
    assert len(service.state("C3", NOW).contacts) == 1


def test_caps_on_sqlite_refuse_a_transaction_that_did_not_begin_immediate(tmp_path: Path) -> None:
    # Without BEGIN IMMEDIATE the counts would be read before the write lock is taken: refused.
    url = f"sqlite:///{tmp_path / 'deferred.db'}"
    migrate(url)
    deferred = Database(url)
    try:
        with deferred.session() as session:
            with pytest.raises(RuntimeError, match="BEGIN IMMEDIATE"):
                ContactRepository(session).reserve_many(SLOTS[:1], POLICY.caps())
            assert session.scalars(select(ContactEvent)).all() == []
    finally:
        deferred.dispose()
