"""Group-commit audit: durable before answered, batched, loud on failure, replayable, no identifiers."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from qianmian_core.db import Database
from recommender.database import open_database
from recommender.repository import AuditRecord, AuditRepository, NotPseudonymousError
from recommender.repository.audit import RULE_ORDER, SharedPart, shared_part
from recommender.service.audit import (
    AuditSaturatedError,
    AuditUnavailableError,
    GroupCommitAuditWriter,
    Settled,
)
from recommender.service.metrics import AUDIT_WRITE_FAILURES
from sqlalchemy import text

T0 = datetime(2025, 6, 30, 4, 0, tzinfo=UTC)


@pytest.fixture(params=["thread", "process"])
def process(request: pytest.FixtureRequest) -> bool:
    """Whether the writer's database work runs in a process of its own (the service's default) or in
    a thread of this one: both keep every promise below."""
    return bool(request.param == "process")


def record(i: int, **overrides: object) -> AuditRecord:
    values: dict[str, object] = {
        "decision_id": f"dec-{i:05d}",
        "created_at": T0 + timedelta(milliseconds=i),
        "customer_id": f"C{i % 37:08d}",
        "channel": "app",
        "placement": "home_banner",
        "mode": "personalised",
        "model_version": "als-20250630-01",
        "experiment_id": "exp-banner" if i % 2 else None,
        "experiment_arm": "B" if i % 2 else None,
        "request": {"limit": 3, "moment": {"type": "deposit_maturing", "at": "2025-06-30T03:00:00+00:00"}},
        "features": {
            "aum": {"value": 123456.78 + i, "event_timestamp": "2025-06-29T16:00:00+00:00"},
            "segments": {"value": ["payroll", "wealth"], "event_timestamp": "2025-06-29T16:00:00+00:00"},
        },
        "candidates": [
            {
                "product_id": "P1",
                "score": 0.1 + i / 1e4,
                "outcomes": [{"rule": "suitability", "passed": True}],
            },
            {"product_id": "P2", "score": 0.05, "outcomes": [{"rule": "suitability", "passed": False}]},
        ],
        "response": {"bundles": [{"product_id": "P1", "explanation": "因为您近期有定期存款到期…"}]},
    }
    return AuditRecord(**(values | overrides))  # type: ignore[arg-type]


async def _write_all(writer: GroupCommitAuditWriter, records: Sequence[AuditRecord]) -> list[AuditRecord]:
    await writer.start()
    try:
        return list(await asyncio.gather(*(writer.write(r) for r in records)))
    finally:
        await writer.stop()


def test_200_concurrent_writes_are_durable_batched_and_replay_exactly(
    database: Database, process: bool
) -> None:
    records = [record(i) for i in range(200)]
    writer = GroupCommitAuditWriter(database, max_batch=64, max_wait_ms=5, process=process)
    stored = asyncio.run(_write_all(writer, records))
    stats = writer.stats
    print(
        f"\n{database.dialect}: 200 records in {stats.batches} commits (largest batch {stats.largest_batch})"
    )
    assert writer.stats.records == 200
    assert writer.stats.batches < 200 // 4  # batching: far fewer commits than records
    # Durable: a fresh connection (another engine) reads every one back, equal to what was written.
    other = open_database(database.url)
    try:
        with other.session() as session:
            audit = AuditRepository(session)
            assert audit.count() == 200
            for written in stored:
                assert audit.get(written.decision_id) == written
            assert audit.get("dec-00007") == records[7]  # nothing to mask: stored exactly as given
    finally:
        other.dispose()


def test_a_batch_commits_when_no_request_is_left_to_join_not_after_the_wait(database: Database) -> None:
    # A minute of max_wait: a batch that waited for its timer would make wait_for time out.
    writer = GroupCommitAuditWriter(database, max_batch=64, max_wait_ms=60_000)

    async def computed_later(i: int) -> AuditRecord:
        for _ in range(2):  # a request still being computed for two more turns of the loop
            await asyncio.sleep(0)
        return await writer.write(record(i))

    async def run() -> None:
        await writer.start()
        try:
            await asyncio.wait_for(writer.write(record(0)), timeout=30)  # alone: committed at once
            await asyncio.wait_for(
                asyncio.gather(writer.write(record(1)), computed_later(2), computed_later(3)), timeout=30
            )
        finally:
            await writer.stop()

    asyncio.run(run())
    assert writer.stats.records == 4
    assert writer.stats.batches == 2  # the lone record, then the three that were ready together
    assert writer.stats.largest_batch == 3


def test_a_failed_commit_fails_every_waiter_of_the_batch_and_is_counted(
    tmp_path: Path, process: bool
) -> None:
    unmigrated = open_database(f"sqlite:///{tmp_path / 'empty.db'}")  # no tables: every INSERT fails
    before = AUDIT_WRITE_FAILURES._value.get()
    writer = GroupCommitAuditWriter(unmigrated, max_wait_ms=5, process=process)

    async def run() -> list[object]:
        await writer.start()
        try:
            return await asyncio.gather(*(writer.write(record(i)) for i in range(20)), return_exceptions=True)
        finally:
            await writer.stop()

    try:
        outcomes = asyncio.run(run())
    finally:
        unmigrated.dispose()
    assert all(isinstance(o, AuditUnavailableError) for o in outcomes)
    assert AUDIT_WRITE_FAILURES._value.get() - before == 20
    assert writer.stats.records == 0


def test_a_duplicate_decision_id_is_not_acknowledged(database: Database, process: bool) -> None:
    writer = GroupCommitAuditWriter(database, process=process)
    asyncio.run(_write_all(writer, [record(1)]))
    with pytest.raises(AuditUnavailableError):
        asyncio.run(_write_all(GroupCommitAuditWriter(database, process=process), [record(1)]))


def test_a_full_queue_is_refused_at_once(database: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    gate = threading.Event()
    writer = GroupCommitAuditWriter(database, max_batch=1, max_wait_ms=0, max_queue=4)
    commit = writer._commit

    def stalled(batch: Sequence[Any]) -> list[Settled]:
        gate.wait(10)  # a database that stopped answering
        return commit(batch)

    monkeypatch.setattr(writer, "_commit", stalled)

    async def run() -> tuple[list[AuditRecord], BaseException | None]:
        await writer.start()
        refused: BaseException | None = None
        try:
            first = [asyncio.ensure_future(writer.write(record(0)))]
            await asyncio.sleep(0.05)  # the writer took it and is stuck committing
            queued = [asyncio.ensure_future(writer.write(record(i))) for i in range(1, 5)]
            await asyncio.sleep(0.01)  # four wait in the queue: it is full
            try:
                await writer.write(record(99))
            except AuditSaturatedError as exc:
                refused = exc
        finally:
            gate.set()
        done = await asyncio.gather(*first, *queued)
        await writer.stop()
        return done, refused

    done, refused = asyncio.run(run())
    assert isinstance(refused, AuditSaturatedError)
    assert len(done) == 5


def test_writing_without_a_running_writer_is_unavailable(database: Database) -> None:
    with pytest.raises(AuditUnavailableError, match="not running"):
        asyncio.run(GroupCommitAuditWriter(database).write(record(1)))


def test_identifiers_are_masked_and_customer_ids_must_be_pseudonymous(
    database: Database, process: bool
) -> None:
    noisy = record(
        3,
        request={"note": "客户来电 13812345678，身份证 110101199003071234", "limit": 3},
        features={"free_text": {"value": "card 6222021234567890123"}},
    )
    (stored,) = asyncio.run(_write_all(GroupCommitAuditWriter(database, process=process), [noisy]))
    with database.session() as session:
        replayed = AuditRepository(session).get(noisy.decision_id)
    assert replayed == stored
    assert replayed is not None
    text = str(replayed.request) + str(replayed.features)
    for secret in ("13812345678", "110101199003071234", "6222021234567890123"):
        assert secret not in text
    assert "138****5678" in replayed.request["note"]
    with pytest.raises(NotPseudonymousError):
        record(4, customer_id="13812345678").prepared()


def test_shared_parts_are_masked_encoded_once_and_read_back_as_json(database: Database) -> None:
    """A part many records share (a cached feature snapshot, a ranker rescoring) is checked and
    encoded once per owner object; stored, it reads back as the JSON it stands for."""
    owner = object()
    made: list[int] = []

    def make() -> dict[str, Any]:
        made.append(1)
        return {"values": {"customer_profile:note": "call 13812345678"}, "n": [1, 2.5, None]}

    part = shared_part(owner, make)
    assert shared_part(owner, make) is part
    assert len(made) == 1
    rows = [record(i, features={"feast": shared_part(owner, make), "other": "x"}) for i in (5, 6)]
    with database.session() as session:
        AuditRepository(session).append_many(rows)
    with database.session() as session:
        read = [AuditRepository(session).get(r.decision_id) for r in rows]
    for got in read:
        assert got is not None
        assert got.features == {
            "feast": {"values": {"customer_profile:note": "call 138****5678"}, "n": [1, 2.5, None]},
            "other": "x",
        }


def test_verdicts_are_stored_as_their_failed_rules_and_read_back_in_full(database: Database) -> None:
    """Schema 2 keeps only each verdict's failed rules in the row; a schema-1 row reads as it was."""
    stored_form = {
        "product_id": "P1",
        "score": 0.2,
        "allowed": False,
        "failed": {"suitability": ["suitability_risk_level_too_low"], "right": ["right_unaffordable"]},
        "inputs": {"content_approved": True, "right_affordable": False, "content": None, "right": None},
        "arbitration": None,
    }
    old = record(1, decision_id="dec-v1", schema_version=1)
    new = record(2, decision_id="dec-v2", candidates=[stored_form])
    with database.session() as session:
        AuditRepository(session).append_many([old, new])
    with database.session() as session:
        raw = session.execute(
            text("SELECT candidates FROM decisions WHERE decision_id = 'dec-v2'")
        ).scalar_one()
        read_new = AuditRepository(session).get("dec-v2")
        read_old = AuditRepository(session).get("dec-v1")
    raw_json = orjson.loads(raw) if isinstance(raw, str | bytes) else raw
    assert raw_json == [stored_form]  # no passed outcome is written
    assert read_new is not None
    assert read_old is not None
    (candidate,) = read_new.candidates
    assert "failed" not in candidate
    assert [o["rule"] for o in candidate["outcomes"]] == list(RULE_ORDER)
    assert {o["rule"]: o["codes"] for o in candidate["outcomes"] if not o["passed"]} == stored_form["failed"]
    assert all(o["codes"] == [] for o in candidate["outcomes"] if o["passed"])
    assert read_old.candidates == old.candidates
    assert read_old.schema_version == 1


def _shared_record(i: int, candidates: SharedPart, feast: SharedPart) -> AuditRecord:
    return record(
        i,
        candidates=candidates,
        features={"feast": feast, "context": {"contacts": i}},
    )


async def _write_decisions(writer: GroupCommitAuditWriter, records: Sequence[AuditRecord]) -> list[Settled]:
    def builder(r: AuditRecord) -> Any:
        return lambda _reservation: (r, {"decision_id": r.decision_id})

    return list(
        await asyncio.gather(*(writer.write_decision(r.customer_id, builder(r), None) for r in records))
    )


def test_shared_parts_are_stored_once_and_read_back_in_place(database: Database, process: bool) -> None:
    entries = [
        {"product_id": "P1", "score": 0.4, "failed": {}, "allowed": True},
        {
            "product_id": "P2",
            "score": 0.1,
            "failed": {"suitability": ["risk_above_assessment"]},
            "allowed": False,
        },
    ]
    candidates = SharedPart(orjson.dumps(entries))
    other = SharedPart(orjson.dumps(entries[:1]))
    feast = shared_part(object(), lambda: {"values": {"customer_profile:aum": 1.5}, "missing": []})
    records = [_shared_record(i, candidates if i % 3 else other, feast) for i in range(60)]
    writer = GroupCommitAuditWriter(database, max_batch=16, max_wait_ms=5, process=process)

    async def run() -> None:
        await writer.start()
        try:
            await _write_decisions(writer, records[:30])
            await _write_decisions(writer, records[30:])
        finally:
            await writer.stop()

    asyncio.run(run())
    assert writer.stats.batches >= 4
    with database.session() as session:
        assert session.execute(text("SELECT count(*) FROM decision_parts")).scalar_one() == 3
        raw = session.execute(
            text("SELECT candidates, features FROM decisions WHERE decision_id = 'dec-00001'")
        ).one()
        # as the column holds them (text on SQLite, json on PostgreSQL)
        stored = [orjson.loads(v) if isinstance(v, str | bytes) else v for v in raw]
        assert stored[0] == {"$part": candidates.digest}
        assert stored[1]["feast"] == {"$part": feast.digest}
        audit = AuditRepository(session)
        read = audit.get("dec-00001")
        assert read is not None
        assert read.schema_version == 3
        assert read.features["feast"] == {"values": {"customer_profile:aum": 1.5}, "missing": []}
        assert read.features["context"] == {"contacts": 1}
        assert [c["product_id"] for c in read.candidates] == ["P1", "P2"]  # type: ignore[union-attr]
        assert read.candidates[1]["outcomes"][1] == {  # type: ignore[index]
            "rule": "suitability",
            "passed": False,
            "codes": ["risk_above_assessment"],
        }
        listed = audit.for_customer(records[3].customer_id)
        assert listed
        assert all(isinstance(r.candidates, list) for r in listed)


def test_a_failed_batch_leaves_its_parts_to_be_written_by_the_next(database: Database, process: bool) -> None:
    first = SharedPart(b'[{"product_id":"P1"}]')
    later = SharedPart(b'[{"product_id":"P9"}]')
    feast = SharedPart(b'{"values":{}}')
    writer = GroupCommitAuditWriter(database, max_batch=16, max_wait_ms=50, process=process)

    async def run() -> list[object]:
        await writer.start()
        try:
            await _write_decisions(writer, [_shared_record(1, first, feast)])
            # one batch: a new part and a duplicate decision id, so the whole batch rolls back
            failed = await asyncio.gather(
                _write_decisions(writer, [_shared_record(2, later, feast), _shared_record(1, first, feast)]),
                return_exceptions=True,
            )
            await _write_decisions(writer, [_shared_record(3, later, feast)])
            return list(failed)
        finally:
            await writer.stop()

    failed = asyncio.run(run())
    assert all(isinstance(f, AuditUnavailableError) for f in failed)
    with database.session() as session:
        audit = AuditRepository(session)
        assert audit.get("dec-00002") is None
        again = audit.get("dec-00003")
        assert again is not None
        assert again.candidates == [{"product_id": "P9"}]
