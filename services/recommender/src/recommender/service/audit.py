"""Group commit of decision audit records: durable before the decision is answered, and cheap.

Each request hands its record to :meth:`GroupCommitAuditWriter.write` and awaits it. One writer task
takes whatever records are queued (up to ``max_batch``, waiting at most ``max_wait_ms`` for more once
it has one) and inserts them in a single transaction, in a worker thread so the event loop keeps
serving. Every waiter's future resolves only after that transaction has committed, so a returned
decision always has a durable audit record; many concurrent decisions share one commit (and one
fsync), which is what makes auditing every decision affordable.

Failures are loud and fast: if the commit fails every waiter of the batch gets
:class:`AuditUnavailableError` (the API answers 503, never an unaudited decision) and
``qianmian_audit_write_failures_total`` counts the lost records; if the queue is full the request is
refused at once with :class:`AuditSaturatedError` rather than queued behind a stalled database.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

from qianmian_core.db import Database
from qianmian_core.logging import get_logger

from recommender.repository.audit import AuditRecord, AuditRepository
from recommender.service.metrics import AUDIT_WRITE_FAILURES

log = get_logger(__name__)


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
class _Pending:
    record: AuditRecord
    done: asyncio.Future[AuditRecord]


class GroupCommitAuditWriter:
    """Batches concurrent audit writes into few transactions; ``write`` returns after commit."""

    def __init__(
        self,
        database: Database,
        *,
        max_batch: int = 128,
        max_wait_ms: float = 2.0,
        max_queue: int = 4096,
    ) -> None:
        if max_batch < 1 or max_queue < 1 or max_wait_ms < 0:
            raise ValueError("max_batch and max_queue must be >= 1 and max_wait_ms >= 0")
        self.database = database
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000
        self.max_queue = max_queue
        self.stats = GroupCommitStats()
        self._queue: asyncio.Queue[_Pending] | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        """Start the writer task on the running event loop."""
        if self.running:
            return
        self._queue = asyncio.Queue(maxsize=self.max_queue)
        self._task = asyncio.create_task(self._run(), name="audit-group-commit")

    async def stop(self) -> None:
        """Write what is queued, then stop the writer task."""
        queue, task = self._queue, self._task
        if queue is None or task is None:
            return
        await queue.join()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        self._task = None

    async def write(self, record: AuditRecord) -> AuditRecord:
        """Make ``record`` durable; returns the record as stored (masked and normalised).

        Raises :class:`~recommender.repository.audit.NotPseudonymousError` for a customer id that is a
        personal identifier, and :class:`AuditUnavailableError` when it cannot be made durable.
        """
        prepared = record.prepared()
        queue = self._queue
        if queue is None or not self.running:
            raise AuditUnavailableError("the audit writer is not running")
        pending = _Pending(prepared, asyncio.get_running_loop().create_future())
        try:
            queue.put_nowait(pending)
        except asyncio.QueueFull:
            raise AuditSaturatedError(f"audit queue full ({self.max_queue} records waiting)") from None
        return await pending.done

    async def _run(self) -> None:
        assert self._queue is not None
        queue = self._queue
        loop = asyncio.get_running_loop()
        while True:
            batch = [await queue.get()]
            deadline = loop.time() + self.max_wait
            while len(batch) < self.max_batch:
                try:
                    batch.append(queue.get_nowait())
                    continue
                except asyncio.QueueEmpty:
                    pass
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(queue.get(), remaining))
                except TimeoutError:
                    break
            try:
                await self._flush(batch)
            finally:
                for _ in batch:
                    queue.task_done()

    async def _flush(self, batch: Sequence[_Pending]) -> None:
        records = [p.record for p in batch]
        try:
            await asyncio.to_thread(self._commit, records)
        except Exception as exc:
            self.stats.failed_batches += 1
            AUDIT_WRITE_FAILURES.inc(len(batch))
            log.error("audit_write_failed", records=len(batch), error=type(exc).__name__)
            for p in batch:
                if not p.done.done():
                    p.done.set_exception(AuditUnavailableError("the audit store did not accept the record"))
            return
        self.stats.batches += 1
        self.stats.records += len(batch)
        self.stats.largest_batch = max(self.stats.largest_batch, len(batch))
        for p in batch:
            if not p.done.done():
                p.done.set_result(p.record)

    def _commit(self, records: Sequence[AuditRecord]) -> None:
        with self.database.session() as session:
            AuditRepository(session).append_many(records)
