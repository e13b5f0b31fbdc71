"""Repositories on SQLite and PostgreSQL: timestamps stay UTC, ordering and history hold."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from profile_service.models import Base, ConsentChange, ContactHistory, Customer, Event, RiskAssessment
from profile_service.repository import customers, events, outbox
from qianmian_core.db import Database
from qianmian_core.testing import SQLITE_AND_POSTGRES, empty_database_url
from sqlalchemy.orm import Session

NOW = datetime(2025, 6, 15, 8, tzinfo=UTC)
C = "C000000001"


@pytest.fixture(params=SQLITE_AND_POSTGRES)
def session(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Session]:
    def run(url: str) -> Iterator[Session]:
        db = Database(url)
        Base.metadata.create_all(db.engine)
        with db.session_factory() as s:
            s.add(
                Customer(
                    customer_id=C,
                    age=40,
                    gender="F",
                    birth_month=3,
                    birth_day=4,
                    city_tier=1,
                    region="GD",
                    segments=["payroll"],
                    aum=1.0,
                    deposits=1.0,
                    loans=0.0,
                    lifecycle_stage="active",
                    tenure_months=12,
                    customer_since=NOW - timedelta(days=400),
                    tags=[],
                    clv=0.0,
                    updated_at=NOW,
                )
            )
            s.commit()
            yield s
        db.dispose()

    with empty_database_url(request.param, tmp_path, "profile_repo") as url:
        yield from run(url)


def test_risk_latest_recorded_is_current(session: Session) -> None:
    assert customers.current_risk(session, C) is None
    for level, recorded in ((2, NOW - timedelta(days=2)), (4, NOW), (1, NOW - timedelta(days=1))):
        customers.add_risk(
            session,
            RiskAssessment(
                customer_id=C,
                level=level,
                assessed_at=recorded,
                expires_at=recorded + timedelta(days=365),
                source="t",
                recorded_at=recorded,
                actor="a",
            ),
        )
    session.commit()
    current = customers.current_risk(session, C)
    assert current is not None
    assert current.level == 4
    assert current.expires_at.tzinfo is not None
    assert current.expires_at == NOW + timedelta(days=365)


def test_consent_set_and_history(session: Session) -> None:
    assert customers.set_consent(session, C, "push", True, NOW) is None
    session.flush()
    assert customers.set_consent(session, C, "push", False, NOW + timedelta(seconds=1)) is True
    for i, value in enumerate((True, False)):
        customers.add_consent_change(
            session,
            ConsentChange(
                customer_id=C,
                channel="push",
                old_value=not value,
                new_value=value,
                reason="r",
                actor="a",
                changed_at=NOW + timedelta(seconds=i),
            ),
        )
    session.commit()
    assert [c.granted for c in customers.consents(session, C)] == [False]
    assert [h.new_value for h in customers.consent_history(session, C, 10)] == [False, True]


def test_events_contacts_and_outbox(session: Session) -> None:
    for i in range(3):
        events.add(
            session,
            Event(
                event_id=f"e{i}",
                customer_id=C,
                event_type="app_login",
                occurred_at=NOW - timedelta(days=10 * i),
                amount=None,
                attributes={"k": i},
                body_hash="h",
                received_at=NOW,
            ),
        )
        events.add_contact(
            session,
            ContactHistory(
                customer_id=C,
                channel="app",
                placement="p",
                product_id="P",
                action="impression",
                at=NOW - timedelta(days=10 * i),
            ),
        )
    session.commit()
    assert [e.event_id for e in events.since(session, C, NOW - timedelta(days=15))] == ["e1", "e0"]
    assert [e.event_id for e in events.recent(session, C, 2)] == ["e0", "e1"]
    assert events.recent(session, C, 1)[0].occurred_at == NOW
    assert events.count_contacts_since(session, C, NOW - timedelta(days=15)) == 2
    assert len(events.contacts(session, C, channel="sms")) == 0
    outbox.add(session, C, {"customer_id": C}, NOW)
    session.commit()
    rows = outbox.pending(session, 10)
    outbox.mark_failed(session, [r.id for r in rows], "ConnectionError")
    session.commit()
    session.expire_all()
    assert outbox.pending(session, 10)[0].attempts == 1
    outbox.remove(session, [r.id for r in rows])
    session.commit()
    assert outbox.size(session) == 0
