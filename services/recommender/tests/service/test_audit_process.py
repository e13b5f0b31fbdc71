"""The audit writer's own process: slots settled and records written there, answers after the commit,
identifiers masked there, a lost process failing only its batch."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from qianmian_core.db import Database
from recommender.experiments.assignment import Holdout
from recommender.experiments.definition import ExperimentDefinition
from recommender.repository import AuditRecord, AuditRepository
from recommender.repository.audit import PART_REF, SharedPart
from recommender.repository.contacts import ContactRepository, Reservation, SlotRequest
from recommender.service.audit import AuditUnavailableError, GroupCommitAuditWriter, Settled, SlotClaim
from recommender.service.audit_process import (
    SettledWindows,
    WireBatch,
    WireCap,
    WireItem,
    _commit_together,
    finished_row,
    wire_claim,
)
from recommender.service.experiments import ExperimentService
from recommender.service.policies import ContactPolicy
from sqlalchemy import text

T0 = datetime(2025, 6, 30, 4, 0, tzinfo=UTC)
MOBILE = re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)")


def _record(i: int, customer_id: str = "C00000001", **overrides: Any) -> AuditRecord:
    values: dict[str, Any] = {
        "decision_id": f"dec-p{i:05d}",
        "created_at": T0 + timedelta(seconds=i),
        "customer_id": customer_id,
        "channel": "app",
        "placement": "home_banner",
        "mode": "personalised",
        "model_version": "m1",
        "experiment_id": None,
        "experiment_arm": None,
        "request": {"limit": 3},
        "features": {"contact_reservation": None, "signals": {"segments": ["payroll"]}},
        "candidates": [{"product_id": "P1", "score": 0.5}],
        "response": {"bundles": [{"product_id": "P1"}], "reason_codes": []},
    }
    return AuditRecord(**(values | overrides))


def _stored(database: Database, decision_id: str) -> AuditRecord | None:
    with database.session() as session:
        return AuditRepository(session).get(decision_id)


def test_slots_are_settled_in_the_process_and_a_refused_slot_gets_its_refusal_written(
    database: Database,
) -> None:
    """Daily cap 1: the first decision's slot is granted and its record carries the reservation; the
    second is refused there, built again from the refusal here and written without its offers; its
    exposure is not written (the decision served nothing)."""
    caps = ContactPolicy(daily_per_channel=1).caps()
    writer = GroupCommitAuditWriter(database, max_wait_ms=5, process=True)
    experiment = ExperimentService(database, holdout=Holdout(share=0.0)).create(
        ExperimentDefinition.model_validate(
            {
                "name": "banner copy",
                "hypothesis": "B converts better",
                "primary_metric": "conversion_rate",
                "arms": [{"name": "a", "weight": 50}, {"name": "b", "weight": 50}],
            }
        ),
        author="console-alice",
    )
    built: list[Reservation | None] = []

    def builder(i: int) -> Any:
        def build(reservation: Reservation | None) -> tuple[AuditRecord, dict[str, Any]]:
            built.append(reservation)
            refused = reservation is not None and not reservation.granted
            features = {"contact_reservation": None if reservation is None else reservation.as_json()}
            response = {"bundles": [] if refused else [{"product_id": "P1"}]}
            return _record(i, features=features, response=response), {"refused": refused}

        return build

    def claim(i: int) -> SlotClaim:
        at = T0 + timedelta(seconds=i)
        return SlotClaim(SlotRequest("C00000001", "app", at, f"dec-p{i:05d}"), caps, ("P1",))

    def exposure(i: int) -> dict[str, Any]:
        return {
            "experiment_id": experiment["experiment_id"],
            "arm": "b",
            "customer_id": "C00000001",
            "decision_id": f"dec-p{i:05d}",
            "channel": "app",
            "at": T0 + timedelta(seconds=i),
        }

    async def run() -> list[Settled]:
        await writer.start()
        try:
            first = await writer.write_decision("C00000001", builder(1), claim(1), exposure=exposure(1))
            second = await writer.write_decision("C00000001", builder(2), claim(2), exposure=exposure(2))
            return [first, second]
        finally:
            await writer.stop()

    first, second = asyncio.run(run())
    assert first.reservation is not None
    assert first.reservation.granted
    assert first.answer == {"refused": False}
    assert second.reservation is not None
    assert not second.reservation.granted
    assert second.reservation.blocked_by == ("cap_daily_channel",)
    assert second.answer == {"refused": True}
    assert second.window is not None
    assert len(second.window.decisions) == 1
    stored_first = _stored(database, "dec-p00001")
    stored_second = _stored(database, "dec-p00002")
    assert stored_first is not None
    assert stored_second is not None
    assert stored_first.features["contact_reservation"] == {
        "granted": True,
        "blocked_by": [],
        "counts": first.reservation.counts,
    }
    assert stored_second.features["contact_reservation"]["granted"] is False
    assert stored_second.response["bundles"] == []
    with database.session() as session:
        exposures = session.execute(text("SELECT decision_id FROM experiment_exposures")).scalars().all()
        slots = session.execute(text("SELECT decision_id FROM contact_events")).scalars().all()
    assert exposures == ["dec-p00001"]
    assert slots == ["dec-p00001"]


def _digest_like_a_mobile() -> SharedPart:
    """A shared part whose SHA-256 hex holds a run of digits that reads like a mobile number."""
    for n in range(1_000_000):
        part = SharedPart(orjson.dumps({"n": n}))
        if MOBILE.search(hashlib.sha256(part.encoded).hexdigest()):
            return part
    raise AssertionError("no such digest in a million tries")


def test_a_reference_is_kept_while_the_text_beside_it_is_masked() -> None:
    part = _digest_like_a_mobile()
    record = _record(1, request={"note": "call 13812345678"}, features={"feast": part})
    parts: dict[str, bytes] = {}
    row = finished_row(record.encoded_row(parts), None)
    features = orjson.loads(orjson.dumps(row["features"]))
    request = orjson.loads(orjson.dumps(row["request"]))
    assert features["feast"] == {PART_REF: part.digest}  # the reference, intact
    assert request["note"] == "call 138****5678"
    assert parts == {part.digest: part.encoded}


def _item(i: int, customer_id: str, caps: tuple[WireCap, ...] | None) -> WireItem:
    parts: dict[str, bytes] = {}
    row = _record(i, customer_id=customer_id).encoded_row(parts)
    if caps is None:
        return (row, None, None)
    slot = SlotRequest(customer_id, "app", T0 + timedelta(seconds=i), f"dec-p{i:05d}")
    return (row, wire_claim(slot, caps, ("P1",)), None)


def test_batches_queued_behind_a_transaction_commit_together_and_are_answered_in_order(
    database: Database,
) -> None:
    one_a_day: tuple[WireCap, ...] = (("cap_daily_channel", timedelta(days=1), 1, frozenset({"app"})),)
    part = SharedPart(b'{"values":{}}')
    batches: list[WireBatch | None] = [
        ([_item(1, "C1", one_a_day), _item(2, "C2", one_a_day)], {part.digest: part.encoded}),
        ([_item(3, "C1", one_a_day)], {}),  # C1's second slot of the day: refused
        ([_item(4, "C3", None)], {}),
    ]
    answers = _commit_together(database, batches)
    assert [status for status, _ in answers] == ["ok", "ok", "ok"]
    outcomes = [outcome for _, outcome in answers]
    assert [[written for written, _, _ in items] for items, _ in outcomes] == [[True, True], [False], [True]]
    refused = outcomes[1][0][0][1]  # (granted, blocked_by, counts, cooling)
    assert refused is not None
    assert refused[:2] == (False, ("cap_daily_channel",))
    window = outcomes[1][0][0][2]
    assert window is not None
    assert [channel for channel, _ in window[0]] == ["app"]  # C1's first decision, as stored
    assert outcomes[0][1] == {part.digest}
    assert outcomes[1][1] == set()
    with database.session() as session:
        assert AuditRepository(session).count() == 3
        assert session.execute(text("SELECT count(*) FROM decision_parts")).scalar_one() == 1


def test_a_failed_transaction_fails_every_batch_in_it(database: Database) -> None:
    same_id_twice: list[WireBatch | None] = [([_item(1, "C1", None)], {}), ([_item(1, "C2", None)], {})]
    answers = _commit_together(database, same_id_twice)
    assert [status for status, _ in answers] == ["error", "error"]
    with database.session() as session:
        assert AuditRepository(session).count() == 0


def test_a_lost_process_fails_its_batch_and_the_next_write_starts_a_new_one(database: Database) -> None:
    writer = GroupCommitAuditWriter(database, max_wait_ms=5, process=True)

    async def run() -> tuple[BaseException | None, AuditRecord]:
        await writer.start()
        try:
            await writer.write(_record(1))
            child = writer._child
            assert child is not None
            os.kill(child.pid, 9)  # the writer's process dies
            await asyncio.to_thread(child._process.join, 10)
            lost: BaseException | None = None
            try:
                await writer.write(_record(2))
            except AuditUnavailableError as exc:
                lost = exc
            third = await writer.write(_record(3))
            # a batch that failed with the old process (late) does not stop the new one
            current = writer._child
            assert current is not None
            assert current is not child
            await writer._stop_process(kill=True, only=child)
            assert writer._child is current
            assert current.alive
            await writer.write(_record(4))
            return lost, third
        finally:
            await writer.stop()

    lost, third = asyncio.run(run())
    assert third.decision_id == "dec-p00003"
    assert _stored(database, "dec-p00001") is not None
    assert _stored(database, "dec-p00003") is not None
    assert _stored(database, "dec-p00004") is not None
    if lost is not None:
        assert "did not answer" in str(lost)
        assert _stored(database, "dec-p00002") is None  # nothing answered without its record
    assert writer._child is None  # stopped with the writer


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_an_in_memory_database_cannot_be_shared_with_a_process(url: str) -> None:
    assert not Database(url).shareable


def test_records_queued_in_one_turn_go_to_the_process_before_the_turn_ends(database: Database) -> None:
    """Eager batches of 2: five writes made in one turn of the event loop go as [1, 2] and [3, 4] from
    the requests that queued them, and [5] from the writer task once the turn is over; each
    answered after its commit."""
    writer = GroupCommitAuditWriter(database, max_wait_ms=5, process=True, eager_batch=2)

    async def run() -> tuple[list[AuditRecord], int]:
        await writer.start()
        try:
            stored = await asyncio.gather(*(writer.write(_record(i)) for i in range(1, 6)))
            return list(stored), writer.stats.batches
        finally:
            await writer.stop()

    stored, batches = asyncio.run(run())
    assert [r.decision_id for r in stored] == [f"dec-p{i:05d}" for i in range(1, 6)]
    assert batches == 3
    assert writer.stats.records == 5
    for i in range(1, 6):
        assert _stored(database, f"dec-p{i:05d}") is not None


def test_an_early_batch_to_a_lost_process_fails_and_the_next_write_starts_a_new_one(
    database: Database,
) -> None:
    writer = GroupCommitAuditWriter(database, max_wait_ms=5, process=True, eager_batch=2)

    async def run() -> list[AuditRecord | BaseException]:
        await writer.start()
        try:
            await writer.write(_record(1))
            child = writer._child
            assert child is not None
            os.kill(child.pid, 9)
            await asyncio.to_thread(child._process.join, 10)
            outcomes: list[AuditRecord | BaseException] = list(
                await asyncio.gather(*(writer.write(_record(i)) for i in (2, 3)), return_exceptions=True)
            )
            outcomes.append(await writer.write(_record(4)))
            return outcomes
        finally:
            await writer.stop()

    outcomes = asyncio.run(run())
    for outcome, decision_id in zip(outcomes[:2], ("dec-p00002", "dec-p00003"), strict=True):
        if isinstance(outcome, BaseException):
            assert isinstance(outcome, AuditUnavailableError)
            assert _stored(database, decision_id) is None  # never answered without its record
        else:
            assert _stored(database, decision_id) is not None
    last = outcomes[2]
    assert isinstance(last, AuditRecord)
    assert last.decision_id == "dec-p00004"
    assert _stored(database, "dec-p00004") is not None


def test_an_early_batch_whose_record_cannot_be_built_fails_alone(database: Database) -> None:
    """A builder that raises in a batch sent early: that batch's decisions get 503's error and nothing
    of them is written; the writer goes on."""
    writer = GroupCommitAuditWriter(database, max_wait_ms=5, process=True, eager_batch=2)

    def good(i: int) -> Any:
        return lambda _reservation: (_record(i), {"decision_id": f"dec-p{i:05d}"})

    def broken(_reservation: Reservation | None) -> Any:
        raise ValueError("a record that cannot be built")

    async def run() -> tuple[list[Settled | BaseException], AuditRecord]:
        await writer.start()
        try:
            first: list[Settled | BaseException] = list(
                await asyncio.gather(
                    writer.write_decision("C00000001", good(1), None),
                    writer.write_decision("C00000001", broken, None),
                    return_exceptions=True,
                )
            )
            return first, await writer.write(_record(3))
        finally:
            await writer.stop()

    first, third = asyncio.run(run())
    assert all(isinstance(outcome, AuditUnavailableError) for outcome in first)
    assert _stored(database, "dec-p00001") is None
    assert third.decision_id == "dec-p00003"
    assert _stored(database, "dec-p00003") is not None
    assert writer.stats.failed_batches == 1


def _window_reads(database: Database) -> list[str]:
    """The statements that read contact windows, as they run (a listener on the engine)."""
    from sqlalchemy import event

    reads: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "contact_events" in statement and statement.lstrip().upper().startswith("SELECT"):
            reads.append(statement)

    event.listen(database.engine, "before_cursor_execute", seen)
    return reads


def test_settled_windows_are_used_again_until_another_connection_commits(database: Database) -> None:
    """On SQLite the process holds the windows it settled while no other connection commits: the
    caps still hold exactly from them, and a dismiss written by another connection (a cool-down) is
    seen by the next batch. Elsewhere every batch reads."""
    two_a_day: tuple[WireCap, ...] = (("cap_daily_channel", timedelta(days=1), 2, frozenset({"app"})),)
    held = SettledWindows()
    reads = _window_reads(database)
    sqlite = database.engine.dialect.name == "sqlite"

    def one(i: int, customer_id: str) -> tuple[bool, Any, Any]:
        batch: WireBatch = ([_item(i, customer_id, two_a_day)], {})
        ((status, (outcomes, _)),) = _commit_together(database, [batch], held)
        assert status == "ok"
        written, reservation, _window = outcomes[0]
        return written, reservation, _window

    assert one(1, "C1")[0]
    assert len(reads) == 1
    assert len(held) == (1 if sqlite else 0)
    written, reservation, window = one(2, "C1")  # C1 held: nothing read on SQLite
    assert written
    assert len(reads) == (1 if sqlite else 2)
    assert [at for _, at in window[0]] == [T0 + timedelta(seconds=1), T0 + timedelta(seconds=2)]
    # a record without a claim (an empty answer) writes no contact data: the windows stay held
    assert [status for status, _ in _commit_together(database, [([_item(10, "C3", None)], {})], held)] == [
        "ok"
    ]
    written, reservation, _ = one(3, "C1")  # the cap holds from the held window
    assert not written
    assert reservation[:2] == (False, ("cap_daily_channel",))
    assert one(4, "C2")[0]  # another customer: read
    assert len(reads) == (2 if sqlite else 4)

    # a dismiss on another connection: the next batch reads again and sees the cool-down
    with database.session() as session:
        ContactRepository(session).start_cooldown(
            "C2", "P1", T0 + timedelta(days=7), reason="dismiss", decision_id="dec-p00004"
        )
    written, reservation, _ = one(5, "C2")
    assert not written
    assert reservation[3] == ("P1",)  # cooling: the decision is made again
    assert len(reads) == (3 if sqlite else 5)


def test_a_failed_transaction_leaves_no_windows_held(database: Database) -> None:
    one_a_day: tuple[WireCap, ...] = (("cap_daily_channel", timedelta(days=1), 1, frozenset({"app"})),)
    held = SettledWindows()
    # the second item repeats the first's decision id: the insert fails, the slot is not taken
    failing: WireBatch = ([_item(1, "C1", one_a_day), _item(1, "C2", None)], {})
    assert [status for status, _ in _commit_together(database, [failing], held)] == ["error"]
    assert len(held) == 0
    ((status, (outcomes, _)),) = _commit_together(database, [([_item(2, "C1", one_a_day)], {})], held)
    assert status == "ok"
    assert outcomes[0][0]  # granted: the failed batch's slot was not kept anywhere
