"""The change feed is written in the transaction of the change, and held back behind young gaps."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from profile_service.models import Consent, ContactHistory, CustomerChange, Event, RiskAssessment
from profile_service.schemas import ConsentUpdate, ContactIn, EventIn, RiskAssessmentIn
from profile_service.service import changes, consents, contacts, events, risk
from profile_service.service.activity import RecordingPusher
from qianmian_core.db import Database
from sqlalchemy import func, select
from sqlalchemy.orm import Session

C = "C000000001"
NOW = datetime.now(UTC)


def _consent(session: Session) -> object:
    return consents.update(session, C, ConsentUpdate(push=False, personalised=False, reason="r"), "t")


def _risk(session: Session) -> object:
    assessment = RiskAssessmentIn(
        level=1, assessed_at=NOW - timedelta(days=1), expires_at=NOW + timedelta(days=300), source="t"
    )
    return risk.record(session, C, assessment, "t")


def _moment(session: Session) -> object:
    event = EventIn(
        event_id="evt-tx", customer_id=C, event_type="app_login", occurred_at=NOW - timedelta(minutes=1)
    )
    return events.ingest(session, event, RecordingPusher())


def _contact(session: Session) -> object:
    contact = ContactIn(
        channel="app", placement="p", product_id="WM-R2-01", action="convert", at=NOW - timedelta(seconds=1)
    )
    return contacts.record(session, C, contact, RecordingPusher())


WRITES: dict[str, Callable[[Session], object]] = {
    "consent": _consent,
    "risk": _risk,
    "moment": _moment,
    "contact": _contact,
}


def _state(database: Database) -> tuple[int, ...]:
    """Row counts of the change feed and of what each write path writes, and the push consent."""
    with database.session() as session:
        count = [
            int(session.scalar(select(func.count()).select_from(model)) or 0)
            for model in (CustomerChange, RiskAssessment, Event, ContactHistory)
        ]
        push = session.get(Consent, (C, "push"))
        assert push is not None
        return (*count, int(push.granted))


@pytest.mark.parametrize("kind", list(WRITES))
def test_write_commits_with_its_change(seeded_any: Database, kind: str) -> None:
    before = _state(seeded_any)
    with seeded_any.session() as session:
        WRITES[kind](session)
    after = _state(seeded_any)
    assert after != before
    assert after[0] == before[0] + 1
    with seeded_any.session() as session:
        row = session.scalars(select(CustomerChange)).one()
        assert (row.customer_id, row.kind) == (C, kind)


@pytest.mark.parametrize("kind", list(WRITES))
def test_failed_commit_leaves_neither_change_nor_feed_row(
    seeded_any: Database, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = _state(seeded_any)
    session = seeded_any.session_factory()
    try:

        def failing_commit() -> None:
            raise ConnectionError("database went away at commit")

        monkeypatch.setattr(session, "commit", failing_commit)
        with pytest.raises(ConnectionError):
            WRITES[kind](session)
        session.rollback()
    finally:
        session.close()
    assert _state(seeded_any) == before


def test_unknown_kind_is_refused(seeded_any: Database) -> None:
    with seeded_any.session() as session, pytest.raises(ValueError, match="unknown change kind"):
        changes.record(session, C, "address")  # type: ignore[arg-type]


def _row(seq: int, age_s: float) -> CustomerChange:
    return CustomerChange(seq=seq, customer_id=C, kind="moment", at=NOW - timedelta(seconds=age_s))


def test_settled_holds_back_rows_behind_a_young_gap() -> None:
    cutoff = NOW - timedelta(seconds=2)
    rows = [_row(11, 0.1), _row(12, 0.1), _row(14, 0.1), _row(15, 0.1)]
    # 11, 12 follow 10 directly; 13 is missing and 14 is younger than the settle window
    assert [r.seq for r in changes.settled(rows, 10, cutoff)] == [11, 12]
    # a missing 11 in front of a young row holds back everything
    assert list(changes.settled(rows[1:], 10, cutoff)) == []


def test_settled_passes_old_gaps_and_gap_free_young_rows() -> None:
    cutoff = NOW - timedelta(seconds=2)
    old_gap = [_row(11, 10), _row(14, 5), _row(15, 0.1)]
    assert [r.seq for r in changes.settled(old_gap, 10, cutoff)] == [11, 14, 15]
    young = [_row(1, 0.0), _row(2, 0.0)]
    assert [r.seq for r in changes.settled(young, 0, cutoff)] == [1, 2]
    assert list(changes.settled([], 7, cutoff)) == []
