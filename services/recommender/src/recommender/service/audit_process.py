"""The audit writer's own process: the group commit's database work off the serving process's core.

A decision's audit record is built and encoded by the serving process (it holds the decision); what
then remains — settling the batch's contact slots under the counters' locks, checking the record's
free text for identifiers and masking it, inserting the parts, the records and the experiment
exposures, and committing — is work the event loop does not need to wait on, only for. In a thread of
the serving process it shared the interpreter lock with the event loop: measured on the decision
benchmark it cost more than half of the worker's throughput (build only 5,547 req/s; with the
database work in a thread 2,114). In a process of its own it runs on the machine's other core, like
the work a database server does for its clients.

Nothing about durability changes: the serving process writes a batch to the pipe and waits for this
process's answer, which comes after the batch's transaction has committed; a decision is answered
only then. If this process dies, the batches in flight fail (the decisions get 503, as when the
database fails) and the next batch starts a new one.

The protocol is plain tuples, dicts and bytes: a ``WireBatch`` in, ``("ok", BatchOutcome)`` or
``("error", kind)`` out, one answer per batch in the order they were sent.
Only the decision's contact slot is settled here; an item whose slot a cap refuses is *not* written
(its answer changes: no offers), and the serving process sends its record again, built from the
refusal, as an item without a claim. An item whose offers met a cool-down is not written either (the
decision is made again), as in the thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import multiprocessing
import os
import pickle
import signal
import socket
import struct
from collections import OrderedDict, deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any, Final

import orjson
from qianmian_core.app import gc_thresholds
from qianmian_core.db import Database, begins_immediate
from qianmian_core.logging import get_logger
from qianmian_core.masking import contains_identifier, mask_value
from sqlalchemy.orm import Session

from recommender.database import open_database
from recommender.repository.audit import AuditRepository, is_part_ref
from recommender.repository.contacts import (
    CapLike,
    ContactRepository,
    ContactWindow,
    Reservation,
    SlotRequest,
    settle_since,
)
from recommender.repository.experiments import ExperimentRepository

log = get_logger(__name__)

#: The record's JSON columns that may hold free text (checked and masked here); ``candidates`` is
#: made by the pipeline from ids, codes and scores and is stored as sent.
TEXT_COLUMNS: Final = ("request", "features", "response")


@dataclass(frozen=True, slots=True)
class Cap:
    """A contact cap as plain data (``CapLike``): what the slot is settled against."""

    code: str
    window: timedelta
    limit: int
    channels: frozenset[str] | None = None


# What crosses the pipe is plain tuples, dicts and bytes: pickle handles them in C, where a slotted
# dataclass costs a Python call each way (measured: a few per cent of the serving process's time).

#: A cap: (code, window, limit, channels).
WireCap = tuple[str, timedelta, int, frozenset[str] | None]
#: A decision's slot claim: (customer id, channel, at, decision id, product id, caps, offered products).
WireClaim = tuple[str, str, datetime, str, str | None, tuple[WireCap, ...], tuple[str, ...]]
#: One record to write: the ``decisions`` row with its JSON columns encoded (shared parts as
#: references, free text not yet checked), its slot claim (or None), and the exposure
#: (``ExperimentRepository.add_exposure``'s arguments) written with it when its slot is granted.
WireItem = tuple[dict[str, Any], WireClaim | None, dict[str, Any] | None]
#: One transaction's items, and the shared parts (digest → bytes) they refer to that may not be
#: stored yet.
WireBatch = tuple[list[WireItem], dict[str, bytes]]
#: A reservation: (granted, blocked_by, counts, cooling).
WireReservation = tuple[bool, tuple[str, ...], dict[str, int], tuple[str, ...]]
#: A contact window: (decisions, cooldowns, shown).
WireWindow = tuple[list[tuple[str, datetime]], dict[str, datetime], dict[str, datetime]]
#: What became of one item: written or not, its slot's reservation and the customer's window.
WireOutcome = tuple[bool, WireReservation | None, WireWindow | None]
#: The committed batch: one outcome per item, and the digests of the parts it inserted.
BatchOutcome = tuple[list[WireOutcome], set[str]]


def wire_claim(slot: SlotRequest, caps: tuple[WireCap, ...], offered: tuple[str, ...]) -> WireClaim:
    return (slot.customer_id, slot.channel, slot.at, slot.decision_id, slot.product_id, caps, offered)


def wire_cap(cap: CapLike) -> WireCap:
    return (cap.code, cap.window, cap.limit, cap.channels)


def reservation_of(wire: WireReservation) -> Reservation:
    granted, blocked_by, counts, cooling = wire
    return Reservation(granted=granted, blocked_by=blocked_by, counts=counts, cooling=cooling)


def window_of(wire: WireWindow) -> ContactWindow:
    decisions, cooldowns, shown = wire
    return ContactWindow(decisions, cooldowns, shown)


def finished_row(row: dict[str, Any], reservation: Reservation | None) -> dict[str, Any]:
    """The row as stored: its free text checked (and masked where it holds an identifier), the slot's
    reservation in ``features.contact_reservation`` (claimed items), each JSON column an
    ``orjson.Fragment`` for the insert."""
    out = dict(row)
    for name in TEXT_COLUMNS:
        encoded: bytes = row[name]
        value = orjson.loads(encoded)
        changed = False
        if name == "features" and reservation is not None:
            value["contact_reservation"] = reservation.as_json()
            changed = True
        # references to stored parts are kept: a digest's hex can hold a run of digits that reads like
        # a mobile number (the part itself was checked when it was made)
        if contains_identifier(value, keep=is_part_ref):
            value = mask_value(value, keep=is_part_ref)
            changed = True
        out[name] = orjson.Fragment(orjson.dumps(value) if changed else encoded)
    out["candidates"] = orjson.Fragment(row["candidates"])
    return out


#: Customers whose contact windows the writer's process holds (see :class:`SettledWindows`).
WINDOWS_MAX_CUSTOMERS: Final = 50_000


class SettledWindows:
    """The contact windows this process settled last, used again while the database is known not to
    have changed since: on SQLite only, where ``PRAGMA data_version`` on a connection changes exactly
    when another connection has committed (a feedback event, a dismiss, an outbound list, another
    process), and the connection's ``total_changes`` tells whether anything else wrote through it.

    The decision path's batches come back to the same customers every few seconds, and reading their
    windows was the largest statement of a group commit after the commit itself (its rows grow with
    the customers' decisions). A transaction here holds SQLite's write lock from its first statement
    (``BEGIN IMMEDIATE``), so no other connection commits between the version read at its start and
    its own commit; the windows it settled are then the database's, and :meth:`keep` holds them once
    it has committed (a batch that fails keeps nothing). Another connection's commit, a write through
    the same connection by anything else, a different pooled connection, or another dialect: every
    window is read again.
    """

    def __init__(self, max_customers: int = WINDOWS_MAX_CUSTOMERS) -> None:
        self.max_customers = max_customers
        self._windows: OrderedDict[str, tuple[datetime, ContactWindow]] = OrderedDict()
        #: After the last commit that settled windows: its DBAPI connection, the data_version read in
        #: its transaction, and the connection's total_changes after it committed.
        self._stamp: tuple[Any, int, int] | None = None

    def __len__(self) -> int:
        return len(self._windows)

    def current(self, session: Session) -> tuple[Mapping[str, tuple[datetime, ContactWindow]], Any]:
        """The windows that are still the database's (empty when it may have changed) and this
        transaction's stamp, for :meth:`keep`. Call it in the transaction, before anything else."""
        connection = session.connection()
        if not begins_immediate(connection.engine):  # the write lock from the first statement
            return {}, None
        dbapi = connection.connection.dbapi_connection
        version = int(connection.exec_driver_sql("PRAGMA data_version").scalar_one())
        held = self._stamp
        if (
            held is None
            or held[0] is not dbapi
            or held[1] != version
            or held[2] != getattr(dbapi, "total_changes", None)
        ):
            self._windows.clear()
        return self._windows, (dbapi, version)

    def keep(self, stamp: Any, settled: tuple[Mapping[str, ContactWindow], datetime] | None) -> None:
        """Right after a transaction under ``stamp`` (:meth:`current`) committed: hold the windows it
        settled (``settled``: them, complete from the given time on; None when it settled none) as
        the database's, beside those still held. Every transaction of this process's connection
        must end here or in :meth:`forget`, since the next one compares the connection's total
        changes with those after this one."""
        if stamp is None:
            self.forget()
            return
        dbapi, version = stamp
        changes = getattr(dbapi, "total_changes", None)
        if not isinstance(changes, int):
            self.forget()
            return
        self._stamp = (dbapi, version, changes)
        if settled is None:
            return
        windows, since = settled
        held = self._windows
        for customer_id, window in windows.items():
            held[customer_id] = (since, window)
            held.move_to_end(customer_id)
        while len(held) > self.max_customers:
            held.popitem(last=False)

    def forget(self) -> None:
        """Hold nothing (a transaction failed: what it settled is not the database's)."""
        self._stamp = None
        self._windows.clear()


def commit_batch(database: Database, batch: WireBatch, held: SettledWindows | None = None) -> BatchOutcome:
    """One transaction: settle the batch's slots, then insert its parts, the records whose slot was
    granted (or that claim none) and their exposures. Raises on any database error (nothing of the
    batch is then written). ``held``: the windows this process settled before, used where they are
    still the database's and updated after the commit."""
    items, parts = batch
    caps: dict[int, tuple[Cap, ...]] = {}  # a policy's caps arrive as one shared tuple
    settled_windows: tuple[dict[str, ContactWindow], datetime] | None = None
    with database.session() as session:
        known, stamp = held.current(session) if held is not None else ({}, None)
        claimed: list[tuple[int, SlotRequest, tuple[Cap, ...], tuple[str, ...]]] = []
        for i, (_, claim, _) in enumerate(items):
            if claim is not None:
                customer_id, channel, at, decision_id, product_id, wire_caps, offered = claim
                slot_caps = caps.get(id(wire_caps))
                if slot_caps is None:
                    slot_caps = caps[id(wire_caps)] = tuple(Cap(*c) for c in wire_caps)
                slot = SlotRequest(customer_id, channel, at, decision_id, product_id)
                claimed.append((i, slot, slot_caps, offered))
        settled: dict[int, tuple[Reservation, ContactWindow]] = {}
        if claimed:
            slots, slot_caps_list = [c[1] for c in claimed], [c[2] for c in claimed]
            reservations, windows = ContactRepository(session).settle(
                slots, slot_caps_list, [c[3] for c in claimed], known=known
            )
            for (i, slot, _, _), reservation in zip(claimed, reservations, strict=True):
                settled[i] = (reservation, windows[slot.customer_id])
            settled_windows = (windows, settle_since(slots, slot_caps_list))
        outcomes: list[WireOutcome] = []
        rows: list[dict[str, Any]] = []
        exposures: list[dict[str, Any]] = []
        wired: dict[int, WireWindow] = {}  # one per customer, shared by the customer's items
        for i, (row, _, exposure) in enumerate(items):
            if i not in settled:
                rows.append(finished_row(row, None))
                outcomes.append((True, None, None))
                continue
            reservation, window = settled[i]
            wire_window = wired.get(id(window))
            if wire_window is None:
                wire_window = wired[id(window)] = (window.decisions, window.cooldowns, window.shown)
            wire_reservation = (
                reservation.granted,
                reservation.blocked_by,
                reservation.counts,
                reservation.cooling,
            )
            if not reservation.granted:
                outcomes.append((False, wire_reservation, wire_window))
                continue
            rows.append(finished_row(row, reservation))
            outcomes.append((True, wire_reservation, wire_window))
            if exposure is not None:
                exposures.append(exposure)
        written = AuditRepository(session).insert_rows(rows, parts)
        experiments = ExperimentRepository(session)
        for exposure in exposures:
            experiments.add_exposure(**exposure)
    if held is not None:  # committed (a batch without claims wrote no contact data: the held stay)
        held.keep(stamp, settled_windows)
    return outcomes, written


#: The most records one transaction takes when batches queue up behind each other.
MAX_COALESCED_ITEMS: Final = 512


def _next_batches(connection: Connection) -> list[WireBatch | None]:
    """The next batch and every batch already sent after it (up to :data:`MAX_COALESCED_ITEMS`
    records): they share one transaction. Ends with ``None`` when the parent asked to stop (or is
    gone); empty when there is nothing left to do."""
    batches: list[WireBatch | None] = []
    items = 0
    while not batches or (items < MAX_COALESCED_ITEMS and connection.poll(0)):
        try:
            batch = connection.recv()
        except (EOFError, OSError):
            batch = None
        if batch is None:
            if batches:
                batches.append(None)
            return batches
        batches.append(batch)
        items += len(batch[0])
    return batches


def _commit_together(
    database: Database, batches: list[WireBatch | None], held: SettledWindows | None = None
) -> list[tuple[str, Any]]:
    """Commit the batches in one transaction; one answer per batch, in order."""
    real = [b for b in batches if b is not None]
    if not real:
        return []
    merged: WireBatch = ([item for b in real for item in b[0]], {k: v for b in real for k, v in b[1].items()})
    try:
        outcomes, written = commit_batch(database, merged, held)
    except Exception as exc:  # every failure is the transaction's: the parent fails its waiters
        if held is not None:
            held.forget()
        log.error("audit_process_batch_failed", error=type(exc).__name__, records=len(merged[0]))
        return [("error", type(exc).__name__)] * len(real)
    answers: list[tuple[str, Any]] = []
    start = 0
    for items, parts in real:
        end = start + len(items)
        answers.append(("ok", (outcomes[start:end], written & set(parts))))
        start = end
    return answers


def serve(connection: Connection, url: str) -> None:
    """The process's main loop: answer each batch after its commit, until ``None`` or the pipe closes.

    Interrupts are left to the serving process (Ctrl-C reaches the whole process group): this
    process stops when it is told to or when its parent is gone, after the batch in hand.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    database = open_database(url)
    held = SettledWindows()
    # As the services do once started (qianmian_core.app): what start-up made is frozen, and the
    # cyclic collector runs at the services' thresholds. At CPython's defaults (700, 10, 10) this
    # process rescanned its held windows, SQLAlchemy's caches and the masking cache in full
    # collections of 27-185 ms, several a minute under load, and every decision waiting on a commit
    # waited for them too.
    gc.collect()
    gc.freeze()
    gc.set_threshold(*gc_thresholds())
    connection.send(("ready", os.getpid()))
    try:
        while True:
            batches = _next_batches(connection)
            if not batches:
                return
            answers = _commit_together(database, batches, held)
            try:
                for answer in answers:
                    connection.send(answer)
            except OSError:
                return
            if batches[-1] is None:
                return
    finally:
        database.engine.dispose()


class ProcessLostError(ConnectionError):
    """The writer's process died, stopped answering or could not be started."""


#: ``multiprocessing.Connection``'s frame header: the payload's length (``-1`` then an 8-byte length
#: for payloads of 2 GiB and more).
_HEADER: Final = struct.Struct("!i")
_LONG_HEADER: Final = struct.Struct("!Q")


def _frame(obj: object) -> bytes:
    payload = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    if len(payload) > 0x7FFFFFFF:
        return _HEADER.pack(-1) + _LONG_HEADER.pack(len(payload)) + payload
    return _HEADER.pack(len(payload)) + payload


class WriterProcess:
    """The serving process's end of the writer's process, on its event loop.

    The process is spawned (:meth:`spawn`, blocking: call it off the loop) with one end of a socket
    pair; this end is read and written by the event loop itself (asyncio streams, in the frames
    ``multiprocessing.Connection`` reads and writes at the other end), so a batch is sent without
    blocking and its answer resolves the waiting decisions straight from the loop, with no thread
    to wake on the way. Answers come back in the order the batches were sent, so several batches can
    be in flight: the process commits the ones that queued up behind its transaction together.
    """

    def __init__(self, process: BaseProcess, connection: Connection, pid: int) -> None:
        self._process = process
        self._connection = connection
        self.pid = pid
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._waiting: deque[asyncio.Future[tuple[str, Any]]] = deque()
        self._listening: asyncio.Task[None] | None = None
        self._lost = False

    @classmethod
    def spawn(cls, url: str, *, start_timeout_s: float) -> WriterProcess:
        """Start the process and wait until it has opened the database (blocking)."""
        context = multiprocessing.get_context("spawn")
        ours, theirs = context.Pipe()
        process = context.Process(target=serve, args=(theirs, url), name="qianmian-audit-writer", daemon=True)
        process.start()
        theirs.close()
        try:
            if not ours.poll(start_timeout_s):
                raise TimeoutError(f"not ready in {start_timeout_s:.0f} s")
            pid = int(ours.recv()[1])
        except (OSError, EOFError, TimeoutError) as exc:
            process.kill()
            process.join(5)
            ours.close()
            raise ProcessLostError(f"the audit writer's process did not start: {type(exc).__name__}") from exc
        return cls(process, ours, pid)

    async def attach(self) -> None:
        """Read and write the process's pipe from the running event loop (once, before
        :meth:`send`)."""
        if self._writer is not None:
            return
        sock = socket.socket(fileno=os.dup(self._connection.fileno()))
        self._connection.close()
        self._reader, self._writer = await asyncio.open_connection(sock=sock, limit=1 << 22)
        self._listening = asyncio.create_task(self._listen(), name="audit-writer-answers")

    @property
    def alive(self) -> bool:
        return not self._lost and self._process.is_alive()

    def send(self, batch: WireBatch) -> asyncio.Future[tuple[str, Any]]:
        """Write ``batch`` to the process now (no waiting). The future resolves to the process's
        answer: ``("ok", BatchOutcome)`` after its commit, or ``("error", kind)``; it fails with
        :class:`ProcessLostError` if the process goes, and this raises that at once if it is gone."""
        if self._lost or self._writer is None:
            raise ProcessLostError("the audit writer's process is gone")
        answer: asyncio.Future[tuple[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting.append(answer)
        self._writer.write(_frame(batch))
        return answer

    async def _listen(self) -> None:
        reader = self._reader
        assert reader is not None
        try:
            while True:
                (size,) = _HEADER.unpack(await reader.readexactly(_HEADER.size))
                if size == -1:
                    (size,) = _LONG_HEADER.unpack(await reader.readexactly(_LONG_HEADER.size))
                # the answer of our own child process, over a socket pair only the two of us hold
                answer = pickle.loads(await reader.readexactly(size))  # noqa: S301
                if self._waiting:
                    waiter = self._waiting.popleft()
                    if not waiter.done():
                        waiter.set_result(answer)
        except (asyncio.IncompleteReadError, OSError, pickle.UnpicklingError):
            pass
        finally:
            self._lose()

    def _lose(self) -> None:
        self._lost = True
        waiting, self._waiting = self._waiting, deque()
        for waiter in waiting:
            if not waiter.done():
                waiter.set_exception(ProcessLostError("the audit writer's process is gone"))

    async def stop(self, *, kill: bool = False) -> None:
        """Ask the process to stop after what it has in hand (or kill it), and wait for it."""
        writer = self._writer
        if not kill and not self._lost:
            with contextlib.suppress(OSError):
                if writer is None:  # never used: the pipe is still the one it was started with
                    self._connection.send(None)
                else:
                    writer.write(_frame(None))
                    await writer.drain()
        process = self._process
        if kill:
            process.kill()
        await asyncio.to_thread(process.join, 10)
        if process.is_alive():
            process.kill()
            await asyncio.to_thread(process.join, 5)
        if self._listening is not None:
            self._listening.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listening
        if writer is not None:
            writer.close()
        else:
            self._connection.close()
        self._lose()
