"""Periodic upkeep in the serving process: pending rights grants retried, old feedback keys purged.

Every ``interval_s`` (``RECOMMENDER_HOUSEKEEPING_INTERVAL_S``, 0 disables) one run asks rights-hub
again for up to ``grant_batch`` grants left ``pending_retry`` (rights-hub was unreachable when the
conversion came in) and deletes stored feedback Idempotency-Keys older than their retention
(:attr:`recommender.service.feedback.FeedbackService.key_retention`). Several replicas may run it at
once: a grant is asked for under the same rights-hub key and settled once, and deletes are
idempotent. A failed run is logged and counted, and the next one tries again.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Final

from prometheus_client import Counter
from qianmian_core.logging import get_logger

from recommender.service.feedback import FeedbackService
from recommender.service.tasks import cancel

log = get_logger(__name__)

HOUSEKEEPING_RUNS: Final = Counter(
    "qianmian_housekeeping_runs_total", "Housekeeping runs of the recommender, by outcome", ["outcome"]
)
KEYS_PURGED: Final = Counter(
    "qianmian_idempotency_keys_purged_total", "Stored feedback Idempotency-Keys deleted after their retention"
)
for _outcome in ("ok", "error"):
    HOUSEKEEPING_RUNS.labels(outcome=_outcome)


@dataclass(frozen=True, slots=True)
class HousekeepingRun:
    """What one run did."""

    grants_retried: int
    keys_purged: int


class Housekeeping:
    def __init__(self, feedback: FeedbackService, *, interval_s: float, grant_batch: int = 100) -> None:
        if interval_s < 0 or grant_batch < 1:
            raise ValueError("interval_s must be >= 0 and grant_batch >= 1")
        self.feedback = feedback
        self.interval_s = interval_s
        self.grant_batch = grant_batch
        self._task: asyncio.Task[None] | None = None

    async def run_once(self) -> HousekeepingRun:
        """One run: retry pending grants, then purge old keys."""
        retried = await self.feedback.retry_pending_grants(self.grant_batch)
        purged = await self.feedback.purge_keys()
        KEYS_PURGED.inc(purged)
        if retried or purged:
            log.info("housekeeping", grants_retried=len(retried), keys_purged=purged)
        return HousekeepingRun(len(retried), purged)

    async def start(self) -> None:
        if self.interval_s > 0 and self._task is None:
            self._task = asyncio.create_task(self._loop(), name="recommender-housekeeping")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel(task)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.run_once()
            except Exception as exc:  # the next run tries again; serving is never affected
                HOUSEKEEPING_RUNS.labels(outcome="error").inc()
                log.error("housekeeping_failed", error_type=type(exc).__name__)
            else:
                HOUSEKEEPING_RUNS.labels(outcome="ok").inc()
