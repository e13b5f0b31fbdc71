"""Feedback is recorded once per Idempotency-Key, in one transaction, on SQLite and PostgreSQL.

rights-hub is down in every test here (a closed port): the grant itself is tested against the real
rights-hub app in ``tests/test_feedback_across_services.py``.
"""

from __future__ import annotations

import asyncio
import socket
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from qianmian_core.db import Database
from recommender.models import ContactEvent, Feedback, IdempotencyRecord
from recommender.service.contacts import ContactService
from recommender.service.feedback import (
    DecisionNotFoundError,
    FeedbackInput,
    FeedbackService,
    FeedbackTimeError,
    IdempotencyKeyReusedError,
    ProductNotInDecisionError,
    StoredResponse,
)
from recommender.service.grants import RightsGrantClient, grant_key
from recommender.service.metrics import FEEDBACK_EVENTS_TOTAL, RIGHTS_GRANTS_TOTAL
from recommender.testing import record_decision
from sqlalchemy import func, select

NOW = datetime(2026, 11, 23, 4, 0, tzinfo=UTC)
CUSTOMER = "C000000042"


def closed_port_url() -> str:
    """A local URL nothing listens on: connections are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def _service(database: Database, now: datetime = NOW) -> FeedbackService:
    rights = RightsGrantClient(closed_port_url(), "unused", timeout_s=1.0)
    return FeedbackService(database=database, rights=rights, now=lambda: now)


def _record(service: FeedbackService, feedback: FeedbackInput, key: str, client: str = "app-gateway") -> Any:
    return asyncio.run(service.record(feedback, client=client, key=key))


def _count(database: Database, model: Any, *where: Any) -> int:
    with database.session() as session:
        return int(session.execute(select(func.count()).select_from(model).where(*where)).scalar_one())


def _decision(database: Database, **kwargs: Any) -> str:
    kwargs.setdefault("created_at", NOW - timedelta(minutes=2))
    return record_decision(database, [("DEP-1Y-01", None), ("WM-R2-01", "RT-BOOST")], **kwargs)


def test_a_dismiss_records_the_event_and_starts_the_cool_down(database: Database) -> None:
    decision_id = _decision(database, experiment=("EXP-1", "treatment"))
    service = _service(database)
    at = NOW - timedelta(minutes=1)
    stored = _record(service, FeedbackInput(decision_id, "DEP-1Y-01", "dismiss", at=at), "k-dismiss")

    assert stored.status_code == 201
    assert not stored.replayed
    body = orjson.loads(stored.body)
    until = at + timedelta(days=7)
    assert body == {
        "feedback_id": body["feedback_id"],
        "decision_id": decision_id,
        "product_id": "DEP-1Y-01",
        "event": "dismiss",
        "at": at.isoformat().replace("+00:00", "Z"),
        "recorded_at": NOW.isoformat().replace("+00:00", "Z"),
        "value": None,
        "cooldown_until": until.isoformat().replace("+00:00", "Z"),
        "right_grant": None,
    }
    assert ContactService(database).state(CUSTOMER, NOW).cooldowns == {"DEP-1Y-01": until}
    with database.session() as session:
        event = session.execute(select(ContactEvent).where(ContactEvent.kind == "dismiss")).scalar_one()
        assert (event.customer_id, event.channel, event.product_id, event.decision_id, event.at) == (
            CUSTOMER,
            "app",
            "DEP-1Y-01",
            decision_id,
            at,
        )
        row = session.get(Feedback, body["feedback_id"])
        assert row is not None
        # The experiment hook: the decision's arm travels with its feedback.
        assert (row.experiment_id, row.experiment_arm, row.client) == ("EXP-1", "treatment", "app-gateway")


def test_a_replay_is_byte_identical_and_records_nothing(database: Database) -> None:
    decision_id = _decision(database)
    service = _service(database)
    feedback = FeedbackInput(decision_id, "DEP-1Y-01", "click")
    counted = FEEDBACK_EVENTS_TOTAL.labels(event="click")._value.get()
    first = _record(service, feedback, "k-click")
    later = _service(database, now=NOW + timedelta(minutes=3))  # "at" defaults to now: still a replay
    again = _record(later, feedback, "k-click")

    assert again == StoredResponse(first.status_code, first.body, replayed=True)
    assert _count(database, Feedback) == 1
    assert _count(database, ContactEvent, ContactEvent.kind == "click") == 1
    assert FEEDBACK_EVENTS_TOTAL.labels(event="click")._value.get() == counted + 1
    # Another client's key is its own: the same key from it is another event.
    other = _record(service, feedback, "k-click", client="console-alice")
    assert not other.replayed
    assert _count(database, Feedback) == 2


def test_the_same_key_with_another_request_is_refused(database: Database) -> None:
    decision_id = _decision(database)
    service = _service(database)
    at = NOW - timedelta(seconds=30)
    _record(service, FeedbackInput(decision_id, "DEP-1Y-01", "impression", at=at), "k-1")
    # The same instant written in another time zone is the same request.
    shanghai = at.astimezone(timezone(timedelta(hours=8)))
    assert _record(
        service, FeedbackInput(decision_id, "DEP-1Y-01", "impression", at=shanghai), "k-1"
    ).replayed
    for other in (
        FeedbackInput(decision_id, "DEP-1Y-01", "click", at=at),
        FeedbackInput(decision_id, "WM-R2-01", "impression", at=at),
        FeedbackInput(decision_id, "DEP-1Y-01", "impression", at=at, value=1),
        FeedbackInput(decision_id, "DEP-1Y-01", "impression"),
    ):
        with pytest.raises(IdempotencyKeyReusedError):
            _record(service, other, "k-1")
    assert _count(database, Feedback) == 1


def test_refused_requests_record_nothing_and_leave_the_key_free(database: Database) -> None:
    decision_id = _decision(database)
    service = _service(database)
    with pytest.raises(DecisionNotFoundError):
        _record(service, FeedbackInput("dec_unknown", "DEP-1Y-01", "click"), "k-2")
    with pytest.raises(ProductNotInDecisionError) as refused:
        _record(service, FeedbackInput(decision_id, "CC-GOLD-01", "click"), "k-2")
    assert refused.value.details["offered"] == ["DEP-1Y-01", "WM-R2-01"]
    cases = {
        "feedback_in_future": NOW + timedelta(minutes=6),
        "feedback_too_old": NOW - timedelta(days=31),
        "feedback_before_decision": NOW - timedelta(minutes=8),
    }
    for code, at in cases.items():
        with pytest.raises(FeedbackTimeError) as wrong_time:
            _record(service, FeedbackInput(decision_id, "DEP-1Y-01", "click", at=at), "k-2")
        assert wrong_time.value.error_code == code
    assert _count(database, Feedback) == 0
    assert _count(database, ContactEvent) == 0
    assert _count(database, IdempotencyRecord) == 0
    # A small skew is tolerated, and the key is still free for the corrected request.
    ok = _record(
        service, FeedbackInput(decision_id, "DEP-1Y-01", "click", at=NOW + timedelta(minutes=4)), "k-2"
    )
    assert ok.status_code == 201
    assert not ok.replayed


def test_concurrent_duplicates_have_one_effect(database: Database) -> None:
    decision_id = _decision(database)
    service = _service(database)
    feedback = FeedbackInput(decision_id, "WM-R2-01", "dismiss", at=NOW - timedelta(seconds=10))

    async def race() -> list[StoredResponse]:
        return list(
            await asyncio.gather(
                *(service.record(feedback, client="app-gateway", key="k-race") for _ in range(20))
            )
        )

    answers = asyncio.run(race())
    assert {a.body for a in answers} == {answers[0].body}
    assert sorted(a.replayed for a in answers) == [False] + [True] * 19
    assert _count(database, Feedback) == 1
    assert _count(database, ContactEvent, ContactEvent.kind == "dismiss") == 1
    assert ContactService(database).state(CUSTOMER, NOW).cooldowns == {
        "WM-R2-01": NOW - timedelta(seconds=10) + timedelta(days=7)
    }


def test_concurrent_dismisses_never_shorten_the_cool_down(database: Database) -> None:
    decision_id = _decision(database)
    service = _service(database)
    times = [NOW - timedelta(seconds=s) for s in range(0, 100, 5)]

    async def race() -> list[StoredResponse]:
        return list(
            await asyncio.gather(
                *(
                    service.record(
                        FeedbackInput(decision_id, "DEP-1Y-01", "dismiss", at=at), client="c", key=f"k-{i}"
                    )
                    for i, at in enumerate(times)
                )
            )
        )

    answers = asyncio.run(race())
    latest = max(times) + timedelta(days=7)
    assert ContactService(database).state(CUSTOMER, NOW).cooldowns == {"DEP-1Y-01": latest}
    ends = [datetime.fromisoformat(orjson.loads(a.body)["cooldown_until"]) for a in answers]
    assert all(end <= latest for end in ends)
    assert _count(database, ContactEvent, ContactEvent.kind == "dismiss") == len(times)


def test_a_convert_is_recorded_when_rights_hub_is_down_and_a_replay_retries(database: Database) -> None:
    decision_id = _decision(database)
    service = _service(database)
    pending = RIGHTS_GRANTS_TOTAL.labels(outcome="pending_retry")._value.get()
    feedback = FeedbackInput(decision_id, "WM-R2-01", "convert", value=5_000_000)
    first = _record(service, feedback, "k-convert")

    body = orjson.loads(first.body)
    assert first.status_code == 201
    assert body["value"] == 5_000_000
    assert body["right_grant"] == {
        "right_id": "RT-BOOST",
        "status": "pending_retry",
        "grant_id": None,
        "error_code": "rights_hub_unavailable",
    }
    assert _count(database, ContactEvent, ContactEvent.kind == "convert") == 1
    again = _record(service, feedback, "k-convert")  # still down: retried, still pending
    assert again.replayed
    assert again.body == first.body
    assert RIGHTS_GRANTS_TOTAL.labels(outcome="pending_retry")._value.get() == pending + 2
    with database.session() as session:
        row = session.get(Feedback, body["feedback_id"])
        assert row is not None
        assert row.grant_attempts == 2
        assert row.grant_key == grant_key(decision_id, "WM-R2-01", "RT-BOOST")
    assert _count(database, Feedback) == 1
    # A convert of a bundle without a right, and other events on a bundle with one, grant nothing.
    plain = _record(service, FeedbackInput(decision_id, "DEP-1Y-01", "convert"), "k-plain")
    click = _record(service, FeedbackInput(decision_id, "WM-R2-01", "click"), "k-right-click")
    assert orjson.loads(plain.body)["right_grant"] is None
    assert orjson.loads(click.body)["right_grant"] is None


def test_old_keys_are_purged_and_a_retry_after_the_purge_is_refused_not_repeated(database: Database) -> None:
    decision_id = _decision(database)
    first = _record(_service(database), FeedbackInput(decision_id, "DEP-1Y-01", "click"), "k-old")
    assert first.status_code == 201
    # A key of another operation is not feedback's to purge.
    with database.session() as session:
        session.add(
            IdempotencyRecord(
                client="console",
                idempotency_key="k-other",
                operation="outbound_list",
                fingerprint="f",
                status_code=201,
                response_body=b"{}",
                created_at=NOW - timedelta(days=90),
                updated_at=NOW - timedelta(days=90),
            )
        )
    service = _service(database)
    assert service.key_retention == timedelta(days=31, minutes=5)
    assert asyncio.run(service.purge_keys()) == 0  # still within its retention

    later = NOW + service.key_retention + timedelta(minutes=1)
    purged_by = _service(database, now=later)
    assert asyncio.run(purged_by.purge_keys()) == 1
    assert _count(database, IdempotencyRecord) == 1  # the other operation's key stays
    # The client retries the old request: the key is gone, but the decision is too old for feedback,
    # so nothing happens a second time.
    with pytest.raises(FeedbackTimeError) as refused:
        _record(purged_by, FeedbackInput(decision_id, "DEP-1Y-01", "click"), "k-old")
    assert refused.value.error_code == "decision_too_old"
    assert _count(database, Feedback) == 1
    assert _count(database, ContactEvent) == 1


def test_housekeeping_retries_pending_grants_and_purges_keys(database: Database) -> None:
    from recommender.service.housekeeping import KEYS_PURGED, Housekeeping

    decision_id = _decision(database)
    _record(_service(database), FeedbackInput(decision_id, "WM-R2-01", "convert"), "k-hk")
    later = NOW + timedelta(days=32)
    keeper = Housekeeping(_service(database, now=later), interval_s=0.01)
    purged = KEYS_PURGED._value.get()

    async def run() -> None:
        await keeper.start()
        try:
            for _ in range(500):  # until one run has purged the key and counted it
                await asyncio.sleep(0.01)
                if KEYS_PURGED._value.get() > purged:
                    break
        finally:
            await keeper.stop()

    asyncio.run(run())
    assert _count(database, IdempotencyRecord) == 0
    assert KEYS_PURGED._value.get() == purged + 1
    with database.session() as session:  # rights-hub is still down: asked again, still pending
        row = session.execute(select(Feedback)).scalar_one()
        assert row.grant_status == "pending_retry"
        assert row.grant_attempts >= 2
    assert asyncio.run(Housekeeping(_service(database), interval_s=0).run_once()).keys_purged == 0


def test_grant_keys_are_deterministic_and_fit_rights_hub() -> None:
    assert grant_key("dec_1", "DEP-1Y-01", "RT-A") == "grant:dec_1:DEP-1Y-01:RT-A"
    long = grant_key("d" * 64, "p" * 64, "r" * 64)
    assert long == grant_key("d" * 64, "p" * 64, "r" * 64)
    assert long.startswith("grant:")
    assert len(long) <= 128
    assert grant_key("dec 1", "P/1", "R") != grant_key("dec 1", "P/2", "R")
