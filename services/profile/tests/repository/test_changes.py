"""The change-feed table and event insertion on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from profile_service.models import Base, Customer, Event
from profile_service.repository import bulk, changes, events
from qianmian_core.db import Database
from qianmian_core.testing import SQLITE_AND_POSTGRES, empty_database_url
from sqlalchemy.orm import Session

NOW = datetime(2025, 6, 15, 8, tzinfo=UTC)


@pytest.fixture(params=SQLITE_AND_POSTGRES)
def session(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Session]:
    with empty_database_url(request.param, tmp_path, "profile_changes") as url:
        db = Database(url)
        Base.metadata.create_all(db.engine)
        with db.session_factory() as s:
            yield s
        db.dispose()


def test_seq_grows_and_pages(session: Session) -> None:
    assert changes.head(session) == 0
    assert changes.after(session, 0, 10) == []
    rows = [changes.add(session, f"C{i:09d}", "moment", NOW + timedelta(seconds=i)) for i in range(5)]
    session.commit()
    seqs = [r.seq for r in rows]
    assert seqs == sorted(seqs)
    assert changes.head(session) == seqs[-1]
    assert [r.seq for r in changes.after(session, seqs[1], 2)] == seqs[2:4]
    assert changes.after(session, seqs[0], 10)[0].at == NOW + timedelta(seconds=1)


def test_numbering_goes_on_after_rollbacks_and_deletes(session: Session) -> None:
    first = changes.add(session, "C000000001", "consent", NOW).seq
    session.commit()
    changes.add(session, "C000000002", "consent", NOW)
    session.rollback()
    bulk.clear(session)  # a re-seed empties the feed; the numbering goes on
    session.commit()
    assert changes.head(session) == 0
    assert changes.add(session, "C000000003", "risk", NOW).seq > first
    session.commit()


def test_event_inserted_once(session: Session) -> None:
    session.add(
        Customer(
            customer_id="C000000001",
            age=40,
            gender="F",
            birth_month=3,
            birth_day=4,
            city_tier=1,
            region="GD",
            segments=[],
            aum=1.0,
            deposits=1.0,
            loans=0.0,
            lifecycle_stage="active",
            tenure_months=12,
            customer_since=NOW,
            tags=[],
            clv=0.0,
            updated_at=NOW,
        )
    )
    session.commit()

    def event(amount: float) -> Event:
        return Event(
            event_id="e1",
            customer_id="C000000001",
            event_type="salary_credited",
            occurred_at=NOW,
            amount=amount,
            attributes={"k": 1},
            body_hash="h",
            received_at=NOW,
        )

    assert events.add_if_new(session, event(1.0)) is True
    assert events.add_if_new(session, event(2.0)) is False
    session.commit()
    stored = events.get(session, "e1")
    assert stored is not None
    assert (stored.amount, stored.attributes, stored.occurred_at) == (1.0, {"k": 1}, NOW)
