"""Group commit of decision audit records: durable before the decision is answered, and cheap.

Each request hands its record to :meth:`GroupCommitAuditWriter.write` and awaits it. One writer task
takes whatever records are queued (up to ``max_batch``; once it has one it lets the event loop finish
the requests it is computing, at most ``max_wait_ms``, so their records join) and inserts them in a
single transaction, in a worker thread so the event loop keeps serving. Every waiter's future
resolves only after that transaction has committed, so a returned decision always has a durable audit
record; many concurrent decisions share one commit (and one fsync), which is what makes auditing
every decision affordable.

A decision that offers something also claims its contact slot in the same transaction
(:meth:`GroupCommitAuditWriter.write_decision`): the batch's slots are settled against the contact
history under row locks (:meth:`~recommender.repository.contacts.ContactRepository.settle`), each
decision's record is then built from its slot's outcome (a full cap empties the answer), and the
records and the granted slots commit together. So a slot is never taken without its audit record,
and the decision path pays one transaction per batch instead of one per decision.

The database work can run in a process of its own (``process=True``, the service's default through
``RECOMMENDER_AUDIT_WRITER=process``; :mod:`recommender.service.audit_process`): the records are
built and encoded here, and the slots, the identifier check, the inserts and the commit happen there,
on the other core, instead of in a thread that holds this interpreter's lock. The answer comes back
after the commit, so the guarantee is the same. There, records do not wait for the event loop's turn
to end: the requests of one turn (all the connections whose answers just went out) queue their
records one after another, and every :data:`PROCESS_EAGER_BATCH` of them go to the process at once,
from the request that queued the last, so the process commits them while the loop still computes the
rest. (Sent only at the turn's end, the loop and the process took turns: each idle half the time.)

Failures are loud and fast: if the commit fails every waiter of the batch gets
:class:`AuditUnavailableError` (the API answers 503, never an unaudited decision) and
``qianmian_audit_write_failures_total`` counts the lost records; if the queue is full the request is
refused at once with :class:`AuditSaturatedError` rather than queued behind a stalled database.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from qianmian_core.db import Database
from qianmian_core.logging import get_logger

from recommender.repository.audit import AuditRecord, AuditRepository, check_customer_id
from recommender.repository.contacts import (
    CapLike,
    ContactRepository,
    ContactWindow,
    Reservation,
    SlotRequest,
)
from recommender.repository.experiments import ExperimentRepository
from recommender.service.audit_process import (
    ProcessLostError,
    WireCap,
    WireClaim,
    WireItem,
    WireOutcome,
    WriterProcess,
    reservation_of,
    window_of,
    wire_cap,
    wire_claim,
)
from recommender.service.metrics import AUDIT_WRITE_FAILURES
from recommender.service.tasks import cancel

log = get_logger(__name__)


#: Turns of the event loop without a new record after which a batch stops gathering and commits.
QUIET_TURNS: Final = 3
#: How long the writer's process has to start, and to answer one batch, before it counts as failed.
PROCESS_START_TIMEOUT_S: Final = 60.0
PROCESS_BATCH_TIMEOUT_S: Final = 60.0
#: Batches sent to the writer's process and not answered yet, at most.
PROCESS_IN_FLIGHT: Final = 8
#: With the writer's process, records queued by the requests of one turn of the event loop go as soon
#: as this many have queued (the rest at the turn's end): the process commits the first while the
#: loop still computes the others, instead of both taking turns.
PROCESS_EAGER_BATCH: Final = 8
#: Shared parts remembered as stored (beyond it the set starts again: a part is then written again
#: once, and left as it is by the database).
DURABLE_PARTS_MAX: Final = 200_000


class AuditUnavailableError(Exception):
    """The audit record could not be made durable; the decision must not be returned (503)."""

    code = "audit_unavailable"


class AuditSaturatedError(AuditUnavailableError):
    """The audit queue is full: refused at once rather than queued behind a slow database."""


@dataclass
class GroupCommitStats:
    """What the writer has done so far (for tests and the bench)."""

    batches: int = 0
    records: int = 0
    failed_batches: int = 0
    largest_batch: int = 0


@dataclass(frozen=True, slots=True)
class SlotClaim:
    """A decision's contact slot, settled in its audit record's transaction."""

    slot: SlotRequest
    #: The caps of the decision's contact policy (the ones that apply to the channel are checked).
    caps: tuple[CapLike, ...]
    #: The products the decision offers: one under a cool-down now makes the decision be made again.
    offered: tuple[str, ...]


#: Builds a decision's audit record and answer from its slot's outcome (None: no slot was claimed, or,
#: with the writer's process, not settled yet: the record is built as if the slot is granted, and
#: built again from the refusal when a cap refuses it). Runs in the writer's thread inside the batch's
#: transaction, or on the event loop before the batch goes to the process: it must be quick and pure.
RecordBuilder = Callable[[Reservation | None], tuple[AuditRecord, Any]]


@dataclass(frozen=True, slots=True)
class Settled:
    """What :meth:`GroupCommitAuditWriter.write_decision` made durable."""

    #: The record written (as built: masking and encoding happen on the way into the row, and with
    #: the writer's process the slot's reservation is set there, in ``features``); None
    #: when the claim met a cool-down the decision did not know of: then nothing was written and
    #: the decision must be made again.
    record: AuditRecord | None
    #: The builder's answer (None with ``record``).
    answer: Any
    reservation: Reservation | None
    #: The customer's contact window as stored after the batch (claims only).
    window: ContactWindow | None


@dataclass(frozen=True, slots=True)
class _Sent:
    """A batch written to the writer's process, its answer not read yet."""

    built: list[tuple[AuditRecord, Any]]
    parts: dict[str, bytes]
    process: WriterProcess
    answer: asyncio.Future[tuple[str, Any]]


@dataclass(frozen=True, slots=True)
class _Pending:
    build: RecordBuilder
    claim: SlotClaim | None
    done: asyncio.Future[Settled]
    #: ``ExperimentRepository.add_exposure``'s arguments: written with the record when its slot is
    #: granted (the decision then serves what the arm changed).
    exposure: dict[str, Any] | None = None


class GroupCommitAuditWriter:
    """Batches concurrent audit writes into few transactions; ``write`` returns after commit."""

    def __init__(
        self,
        database: Database,
        *,
        max_batch: int = 128,
        max_wait_ms: float = 2.0,
        max_queue: int = 4096,
        process: bool = False,
        eager_batch: int = PROCESS_EAGER_BATCH,
    ) -> None:
        if max_batch < 1 or max_queue < 1 or max_wait_ms < 0:
            raise ValueError("max_batch and max_queue must be >= 1 and max_wait_ms >= 0")
        self.database = database
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000
        self.max_queue = max_queue
        self.stats = GroupCommitStats()
        #: Digests of shared parts known to be in ``decision_parts`` (written by a committed batch).
        self._durable_parts: set[str] = set()
        self._queue: asyncio.Queue[_Pending] | None = None
        self._task: asyncio.Task[None] | None = None
        #: Write through a process of its own (see :mod:`recommender.service.audit_process`).
        self.process = process
        self._child: WriterProcess | None = None
        self._process_lock = asyncio.Lock()
        #: Batches in flight at once: one in a thread (SQLite has one writer, and the thread would
        #: only wait for it); several with a process, which commits the batches that queue up behind
        #: its transaction together in the next one.
        self.in_flight = PROCESS_IN_FLIGHT if process else 1
        #: Batches taken from the queue and not committed yet (the writer task's next one included
        #: while it waits for records), and the event set when one finishes.
        self._flying = 0
        self._landed: asyncio.Event | None = None  # made in start(), on the loop that runs the writer
        #: With the process: queued records that go at once, before the event loop's turn ends.
        self.eager_batch = eager_batch if process else 0
        self._flushing: set[asyncio.Task[None]] = set()
        self._wire_caps: dict[int, tuple[tuple[CapLike, ...], tuple[WireCap, ...]]] = {}

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        """Start the writer task on the running event loop."""
        if self.running:
            return
        if self.process:  # started now, not on the first decision; a failure here stops start-up
            await self._process()
        self._queue = asyncio.Queue(maxsize=self.max_queue)
        self._flying = 0
        self._landed = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="audit-group-commit")

    async def stop(self) -> None:
        """Write what is queued, then stop the writer task."""
        queue, task = self._queue, self._task
        if queue is None or task is None:
            return
        await queue.join()
        await cancel(task)
        self._task = None
        await self._stop_process()

    async def write(self, record: AuditRecord) -> AuditRecord:
        """Make ``record`` durable; returns the record as stored (masked and normalised).

        Raises :class:`~recommender.repository.audit.NotPseudonymousError` for a customer id that is a
        personal identifier, and :class:`AuditUnavailableError` when it cannot be made durable.
        """
        prepared = record.prepared()
        settled = await self._enqueue(lambda _: (prepared, None), None)
        assert settled.record is not None, "a record without a claim is always written"
        return settled.record

    async def write_decision(
        self,
        customer_id: str,
        build: RecordBuilder,
        claim: SlotClaim | None,
        *,
        exposure: dict[str, Any] | None = None,
    ) -> Settled:
        """Settle ``claim`` (if any), then make the record ``build`` makes from its outcome durable.

        ``exposure`` (``ExperimentRepository.add_exposure``'s arguments) is written in the same
        transaction when the slot is granted. ``customer_id`` is checked first
        (:class:`~recommender.repository.audit.NotPseudonymousError`). Raises
        :class:`AuditUnavailableError` when the batch cannot be made durable.
        """
        check_customer_id(customer_id)
        return await self._enqueue(build, claim, exposure)

    async def _enqueue(
        self, build: RecordBuilder, claim: SlotClaim | None, exposure: dict[str, Any] | None = None
    ) -> Settled:
        queue = self._queue
        if queue is None or not self.running:
            raise AuditUnavailableError("the audit writer is not running")
        pending = _Pending(build, claim, asyncio.get_running_loop().create_future(), exposure)
        try:
            queue.put_nowait(pending)
        except asyncio.QueueFull:
            raise AuditSaturatedError(f"audit queue full ({self.max_queue} records waiting)") from None
        if self.eager_batch and queue.qsize() >= self.eager_batch:
            self._send_early(queue)
        return await pending.done

    async def _run(self) -> None:
        assert self._queue is not None
        assert self._landed is not None
        queue, landed = self._queue, self._landed
        while True:
            # A slot first, then the batch: a batch gathers only once it can be sent, so the records
            # that queue while the batches in flight commit all join it.
            while self._flying >= self.in_flight:
                landed.clear()
                await landed.wait()
            self._flying += 1
            try:
                batch = [await queue.get()]
            except BaseException:
                self._release()
                raise
            self._drain(queue, batch)
            if len(batch) < self.max_batch and self.max_wait > 0:
                await self._gather(queue, batch)
            self._track(asyncio.create_task(self._flush_then_release(queue, batch)))

    def _send_early(self, queue: asyncio.Queue[_Pending]) -> None:
        """Write the queued records to the writer's process now, from the request that queued the
        last of them, if a batch may go and the process is running (else the writer task takes them
        at the turn's end). Only the answer is awaited in a task."""
        child = self._child
        if self._flying >= self.in_flight or child is None or not child.alive:
            return
        self._flying += 1
        batch: list[_Pending] = []
        self._drain(queue, batch)
        try:
            sent = self._post(child, batch)
        except Exception as exc:  # the build or the pipe: the batch fails, as a failed flush does
            self._fail(batch, exc)
            self._landed_with(queue, batch)
            return
        self._track(asyncio.create_task(self._flush_then_release(queue, batch, sent)))

    def _track(self, task: asyncio.Task[None]) -> None:
        self._flushing.add(task)
        task.add_done_callback(self._flushing.discard)

    def _release(self) -> None:
        self._flying -= 1
        if self._landed is not None:
            self._landed.set()

    async def _flush_then_release(
        self, queue: asyncio.Queue[_Pending], batch: list[_Pending], sent: _Sent | None = None
    ) -> None:
        try:
            await self._flush(batch, sent)
        finally:
            self._landed_with(queue, batch)

    def _landed_with(self, queue: asyncio.Queue[_Pending], batch: list[_Pending]) -> None:
        """``batch`` is done with (committed or failed): its slot is free, its records are off the
        queue."""
        self._release()
        for _ in batch:
            queue.task_done()

    async def _gather(self, queue: asyncio.Queue[_Pending], batch: list[_Pending]) -> None:
        """Let ``batch`` grow while the event loop still has requests to finish, at most ``max_wait``.

        The batch waits turn by turn of the loop and stops after :data:`QUIET_TURNS` turns that
        brought no record: then every request that could join is already in it or waits on the network,
        and waiting longer would only leave the worker idle. (A fixed timer did exactly that: with all
        32 connections' decisions already queued the process sat at 85 % of its core; records that
        queue while a commit runs join the next one anyway.)
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_wait
        quiet = 0
        while quiet < QUIET_TURNS and len(batch) < self.max_batch and loop.time() < deadline:
            await asyncio.sleep(0)
            before = len(batch)
            self._drain(queue, batch)
            quiet = 0 if len(batch) > before else quiet + 1

    def _drain(self, queue: asyncio.Queue[_Pending], batch: list[_Pending]) -> None:
        """Move queued records into ``batch`` up to ``max_batch``."""
        while len(batch) < self.max_batch:
            try:
                batch.append(queue.get_nowait())
            except asyncio.QueueEmpty:
                return

    async def _flush(self, batch: Sequence[_Pending], sent: _Sent | None = None) -> None:
        try:
            if self.process:
                results = await self._commit_in_process(batch, sent)
            else:
                results = await asyncio.to_thread(self._commit, batch)
            if len(results) != len(batch):
                raise RuntimeError(f"{len(results)} outcomes for a batch of {len(batch)}")
        except Exception as exc:
            self._fail(batch, exc)
            return
        written = sum(r.record is not None for r in results)
        self.stats.batches += 1
        self.stats.records += written
        self.stats.largest_batch = max(self.stats.largest_batch, written)
        for p, result in zip(batch, results, strict=True):
            if not p.done.done():
                p.done.set_result(result)

    def _fail(self, batch: Sequence[_Pending], exc: Exception) -> None:
        self.stats.failed_batches += 1
        AUDIT_WRITE_FAILURES.inc(len(batch))
        log.error("audit_write_failed", records=len(batch), error=type(exc).__name__)
        for p in batch:
            if not p.done.done():
                p.done.set_exception(AuditUnavailableError("the audit store did not accept the record"))

    def _commit(self, batch: Sequence[_Pending]) -> list[Settled]:
        """One transaction: settle the batch's slots, build and insert its records."""
        with self.database.session() as session:
            claimed = [(i, p.claim) for i, p in enumerate(batch) if p.claim is not None]
            outcomes: dict[int, tuple[Reservation, ContactWindow]] = {}
            if claimed:
                reservations, windows = ContactRepository(session).settle(
                    [c.slot for _, c in claimed],
                    [c.caps for _, c in claimed],
                    [c.offered for _, c in claimed],
                )
                for (i, claim), slot_outcome in zip(claimed, reservations, strict=True):
                    outcomes[i] = (slot_outcome, windows[claim.slot.customer_id])
            results: list[Settled] = []
            records: list[AuditRecord] = []
            for i, p in enumerate(batch):
                reservation: Reservation | None = None
                window: ContactWindow | None = None
                if i in outcomes:
                    reservation, window = outcomes[i]
                if reservation is not None and reservation.cooling:
                    results.append(Settled(None, None, reservation, window))
                    continue
                record, answer = p.build(reservation)
                records.append(record)
                results.append(Settled(record, answer, reservation, window))
            # one batch at a time in a thread: nothing else changes the set meanwhile
            written = AuditRepository(session).append_many(records, self._durable_parts)
            experiments = ExperimentRepository(session)
            for p, result in zip(batch, results, strict=True):
                granted = result.reservation is not None and result.reservation.granted
                if p.exposure is not None and result.record is not None and granted:
                    experiments.add_exposure(**p.exposure)
        self._remember_parts(written)
        return results

    def _remember_parts(self, written: set[str]) -> None:
        # committed: later batches refer to these parts without writing them again
        if len(self._durable_parts) + len(written) > DURABLE_PARTS_MAX:
            self._durable_parts.clear()
        self._durable_parts.update(written)

    # --- the writer's own process ------------------------------------------------------------------

    async def _commit_in_process(self, batch: Sequence[_Pending], sent: _Sent | None = None) -> list[Settled]:
        """The batch through the writer's process: each record built as if its slot is granted and
        encoded here, on the event loop; the slots settled and the records written there, in one
        transaction. A record whose slot a cap refused is built again from the refusal and written
        in a second transaction (nothing else of its decision is written). ``sent``: the batch was
        already written to the process (:meth:`_send_early`)."""
        if sent is None:
            sent = self._post(await self._process(), batch)
        outcomes = await self._answer(sent.process, sent.answer, len(batch))
        built, parts = sent.built, sent.parts
        results: list[Settled] = []
        refused: list[int] = []
        windows: dict[int, ContactWindow] = {}  # one per customer, as sent
        for i, ((written, wire_reservation, wire_window), (record, answer)) in enumerate(
            zip(outcomes, built, strict=True)
        ):
            reservation = None if wire_reservation is None else reservation_of(wire_reservation)
            window = None
            if wire_window is not None:
                window = windows.get(id(wire_window))
                if window is None:
                    window = windows[id(wire_window)] = window_of(wire_window)
            if written:
                results.append(Settled(record, answer, reservation, window))
            elif reservation is not None and reservation.cooling:
                results.append(Settled(None, None, reservation, window))
            else:  # a full cap: the decision's answer is its refusal
                refused.append(i)
                results.append(Settled(None, None, reservation, window))
        if refused:
            again: list[WireItem] = []
            rebuilt: list[tuple[AuditRecord, Any]] = []
            for i in refused:
                record, answer = batch[i].build(results[i].reservation)
                rebuilt.append((record, answer))
                again.append((record.encoded_row(parts), None, None))
            await self._send(again, parts)
            for i, (record, answer) in zip(refused, rebuilt, strict=True):
                results[i] = Settled(record, answer, results[i].reservation, results[i].window)
        return results

    def _wire_claim(self, claim: SlotClaim | None) -> WireClaim | None:
        if claim is None:
            return None
        known = self._wire_caps.get(id(claim.caps))
        if known is None or known[0] is not claim.caps:
            if len(self._wire_caps) >= 64:
                self._wire_caps.clear()
            known = self._wire_caps[id(claim.caps)] = (claim.caps, tuple(wire_cap(c) for c in claim.caps))
        return wire_claim(claim.slot, known[1], claim.offered)

    def _post(self, process: WriterProcess, batch: Sequence[_Pending]) -> _Sent:
        """Build and encode ``batch``'s records and write them to ``process`` (no waiting)."""
        built = [p.build(None) for p in batch]
        parts: dict[str, bytes] = {}
        items: list[WireItem] = [
            (record.encoded_row(parts), self._wire_claim(p.claim), p.exposure)
            for p, (record, _) in zip(batch, built, strict=True)
        ]
        return _Sent(built, parts, process, self._write(process, items, parts))

    def _write(
        self, process: WriterProcess, items: list[WireItem], parts: dict[str, bytes]
    ) -> asyncio.Future[tuple[str, Any]]:
        new = {digest: body for digest, body in parts.items() if digest not in self._durable_parts}
        return process.send((items, new))

    async def _send(self, items: list[WireItem], parts: dict[str, bytes]) -> list[WireOutcome]:
        """One batch to the process and its answer, after its commit; raises if it failed or died."""
        process = await self._process()
        return await self._answer(process, self._write(process, items, parts), len(items))

    async def _answer(
        self, process: WriterProcess, answer: asyncio.Future[tuple[str, Any]], count: int
    ) -> list[WireOutcome]:
        """The process's answer to a batch of ``count`` records, after its commit; raises if the batch
        failed, or if the process died or does not answer."""
        try:
            async with asyncio.timeout(PROCESS_BATCH_TIMEOUT_S):
                status, payload = await answer
        except (ProcessLostError, TimeoutError) as exc:
            # the process is gone or stuck: the batch fails, the next one starts a new process
            log.error("audit_process_lost", error=type(exc).__name__)
            await self._stop_process(kill=True, only=process)
            raise AuditUnavailableError("the audit writer's process did not answer") from exc
        if status != "ok":
            raise AuditUnavailableError(f"the audit writer's process failed the batch: {payload}")
        outcomes, written = payload
        if len(outcomes) != count:
            raise RuntimeError(f"{len(outcomes)} outcomes for a batch of {count}")
        self._remember_parts(written)
        return list(outcomes)

    async def _process(self) -> WriterProcess:
        """The writer's process, started (spawned, off the loop) when there is none or it died."""
        async with self._process_lock:
            child = self._child
            if child is not None and child.alive:
                return child
            self._child = None
            if child is not None:
                await child.stop(kill=True)
            try:
                child = await asyncio.to_thread(
                    WriterProcess.spawn, self.database.url, start_timeout_s=PROCESS_START_TIMEOUT_S
                )
            except ProcessLostError as exc:
                log.error("audit_process_start_failed", error=str(exc))
                raise AuditUnavailableError("the audit writer's process did not start") from exc
            try:
                await child.attach()
            except OSError as exc:
                await child.stop(kill=True)
                raise AuditUnavailableError("the audit writer's process cannot be reached") from exc
            log.info("audit_process_started", pid=child.pid)
            self._child = child
            return child

    async def _stop_process(self, *, kill: bool = False, only: WriterProcess | None = None) -> None:
        """Stop the writer's process: asked to (it finishes what it has in hand), or killed. With
        ``only``, only that process: a batch that failed with an old process never stops the new one
        that later batches started meanwhile."""
        child = self._child
        if only is not None and child is not only:
            await only.stop(kill=kill)  # already replaced (or stopped): make sure it is gone
            return
        self._child = None
        if child is not None:
            await child.stop(kill=kill)
