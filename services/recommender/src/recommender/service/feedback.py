"""Feedback on a decision's bundles: contact history, cool-downs and the grant of a converted right.

:meth:`FeedbackService.record` takes one event (impression, click, dismiss, accept, convert, redeem)
for one product of one decision, under the client's Idempotency-Key. In **one transaction** it

1. claims the (client, key) pair; a key already taken answers with what is stored under it
   (the same request) or ``422 idempotency_key_reused`` (another request);
2. reads the decision's audit record: unknown → ``404 decision_not_found``; a product that is not one
   of the decision's returned bundles → ``422 product_not_in_decision``. The customer, channel and
   experiment arm come from that record, never from the client;
3. checks the event time (default now): at most ``max_skew`` ahead of the recommender's clock, at
   most ``max_age`` old, and not before the decision (``feedback_in_future``, ``feedback_too_old``,
   ``feedback_before_decision``, all 422); and the decision itself: at most ``max_age`` old
   (``decision_too_old``, 422), which is what lets stored keys be purged safely (below);
4. appends the event to ``contact_events``; a dismiss also starts the product's cool-down for the
   customer until ``at + ContactPolicy.dismiss_cooldown`` (never shortening a running one), which
   the next decision's policies report as ``cooldown_dismissed``;
5. writes the ``feedback_events`` row and stores the answer's bytes under the key.

A refused request (4xx) rolls all of it back, its key included: nothing is recorded and the key may
be used again. Concurrent requests with one key perform the effect once (see
``recommender.repository.feedback``).

A **convert** of a bundle that carried a right is then granted through rights-hub, outside the
transaction (no lock is held across the call), under rights-hub's Idempotency-Key
:func:`~recommender.service.grants.grant_key` of (decision, product, right). The outcome, ``granted``
(with the grant id), ``refused`` (with rights-hub's error code, e.g. ``right_exhausted``) or
``pending_retry`` (rights-hub unreachable or no final answer), is stored on the feedback row and in
the stored answer. The feedback itself is recorded whatever rights-hub says.

Replays: the same key and body get the stored bytes back (``replayed``). While the grant is
``pending_retry``, a replay first retries the grant, under the same rights-hub key, and answers with
the refreshed stored answer; so the bytes change exactly once, from pending to settled, and a settled
grant is never asked for again. :meth:`FeedbackService.retry_pending_grants` does the same for every
pending grant, for a periodic job.

Stored keys are kept for ``max_age + max_skew`` plus a day (:meth:`FeedbackService.purge_keys`, also
periodic): a request that could reuse a purged key names a decision older than ``max_age`` and is
refused (``decision_too_old``) before it could act a second time.

Experiments do not exist yet: each feedback row carries the decision's ``experiment_id`` and
``experiment_arm`` (exposures are its impressions, conversions its converts), which is what their
analysis will count.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import orjson
from qianmian_core.db import Database
from qianmian_core.errors import (
    DependencyUnavailableError,
    NotFoundError,
    UnprocessableError,
)
from qianmian_core.ids import random_hex
from qianmian_core.logging import get_logger
from qianmian_core.responses import dumps
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from recommender.models import FEEDBACK_EVENTS, Feedback
from recommender.repository.audit import AuditRecord, AuditRepository
from recommender.repository.contacts import ContactRepository
from recommender.repository.feedback import FeedbackRepository, IdempotencyRepository
from recommender.repository.snapshots import SnapshotRepository
from recommender.service.experiments import ExperimentService
from recommender.service.grants import GrantRequest, GrantResult, RightsGranter, grant_key
from recommender.service.metrics import FEEDBACK_EVENTS_TOTAL, RIGHTS_GRANTS_TOTAL
from recommender.service.policies import ContactPolicy

log = get_logger(__name__)

#: The ``operation`` of feedback's stored answers in ``idempotency_keys``.
OPERATION: Final = "feedback"
#: How far ahead of the recommender's clock a reported event time may be (clock skew).
MAX_SKEW: Final = timedelta(minutes=5)
#: How old a reported event may be.
MAX_AGE: Final = timedelta(days=30)
CREATED: Final = 201


class IdempotencyKeyReusedError(UnprocessableError):
    """The Idempotency-Key was already used for a different request."""

    code = "idempotency_key_reused"


class DecisionNotFoundError(NotFoundError):
    """No decision with this id in the audit log."""

    code = "decision_not_found"


class ProductNotInDecisionError(UnprocessableError):
    """The product was not one of the decision's returned bundles."""

    code = "product_not_in_decision"


class FeedbackTimeError(UnprocessableError):
    """The event time is in the future, too old, or before the decision."""

    code = "feedback_time_invalid"


class FeedbackStoreUnavailableError(DependencyUnavailableError):
    """The recommender's database did not accept the feedback (nothing was recorded)."""

    code = "feedback_store_unavailable"


@dataclass(frozen=True, slots=True)
class FeedbackInput:
    """A validated feedback request (``at``: None means now)."""

    decision_id: str
    product_id: str
    event: str
    at: datetime | None = None
    value: int | None = None

    def __post_init__(self) -> None:
        if self.event not in FEEDBACK_EVENTS:
            raise ValueError(f"unknown feedback event {self.event!r}")
        if self.at is not None and self.at.tzinfo is None:
            raise ValueError("the event time must carry a time zone")
        if self.value is not None and self.value < 0:
            raise ValueError("value must be >= 0")

    def fingerprint(self) -> str:
        """A digest of what the request asks for; equal instants in other time zones are equal."""
        body = {
            "decision_id": self.decision_id,
            "product_id": self.product_id,
            "event": self.event,
            "at": None if self.at is None else self.at.astimezone(UTC).isoformat(),
            "value": self.value,
        }
        payload = orjson.dumps({"operation": OPERATION, "body": body}, option=orjson.OPT_SORT_KEYS)
        return hashlib.sha256(payload).hexdigest()


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """An answer as HTTP status and JSON bytes, exactly as stored under its Idempotency-Key."""

    status_code: int
    body: bytes
    replayed: bool = False


@dataclass(frozen=True, slots=True)
class PendingGrant:
    """A converted bundle's right that rights-hub has not settled yet."""

    feedback_id: str
    request: GrantRequest


@dataclass(frozen=True, slots=True)
class _Recorded:
    response: StoredResponse
    grant: PendingGrant | None
    #: The customer whose cool-down this feedback started, if it did.
    cooled: str | None = None
    #: ``(customer, product, at)`` of a newly stored impression.
    shown: tuple[str, str, datetime] | None = None


def feedback_json(row: Feedback) -> dict[str, Any]:
    """The answer's JSON for a feedback row (``FeedbackOut`` in the API)."""
    return {
        "feedback_id": row.feedback_id,
        "decision_id": row.decision_id,
        "product_id": row.product_id,
        "event": row.event,
        "at": row.at,
        "recorded_at": row.recorded_at,
        "value": row.value,
        "cooldown_until": row.cooldown_until,
        "right_grant": None
        if row.right_id is None
        else {
            "right_id": row.right_id,
            "status": row.grant_status,
            "grant_id": row.grant_id,
            "error_code": row.grant_error_code,
        },
    }


def _pending(row: Feedback) -> PendingGrant | None:
    if row.grant_status != "pending_retry" or row.right_id is None or row.grant_key is None:
        return None
    return PendingGrant(
        feedback_id=row.feedback_id,
        request=GrantRequest(
            right_id=row.right_id,
            customer_id=row.customer_id,
            decision_id=row.decision_id,
            key=row.grant_key,
        ),
    )


def _bundle(record: AuditRecord, product_id: str) -> Mapping[str, Any] | None:
    for bundle in record.response.get("bundles") or ():
        if (bundle.get("product") or {}).get("id") == product_id:
            found: Mapping[str, Any] = bundle
            return found
    return None


def _offered(record: AuditRecord) -> list[str]:
    return [str((b.get("product") or {}).get("id")) for b in record.response.get("bundles") or ()]


def _store_down(exc: Exception) -> FeedbackStoreUnavailableError:
    log.error("feedback_store_failed", error_type=type(exc).__name__)
    return FeedbackStoreUnavailableError("the feedback store is unavailable; retry with the same key")


#: Feedback events that count in experiments, by the experiment outcome they are (impressions are the
#: exposures the decisions log; accept and redeem are steps towards a conversion, not one).
EXPERIMENT_EVENTS: Final[Mapping[str, str]] = {"click": "click", "convert": "convert"}


class FeedbackService:
    """Records feedback idempotently and grants converted rights through rights-hub."""

    def __init__(
        self,
        *,
        database: Database,
        rights: RightsGranter,
        contact_policy: ContactPolicy | None = None,
        on_cooldown: Callable[[str], None] | None = None,
        on_shown: Callable[[str, str, datetime], None] | None = None,
        experiments: ExperimentService | None = None,
        max_skew: timedelta = MAX_SKEW,
        max_age: timedelta = MAX_AGE,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.database = database
        self.rights = rights
        self.policy = contact_policy or ContactPolicy()
        #: Told the customer id once a dismiss's cool-down is stored (the decisions' contact ledger).
        self.on_cooldown = on_cooldown
        #: Told (customer, product, at) once an impression is stored (the no-repeat rule's input).
        self.on_shown = on_shown
        #: Clicks and conversions are attributed to the customer's experiment exposures.
        self.experiments = experiments
        self.max_skew = max_skew
        self.max_age = max_age
        self.now = now
        #: Product values (fen) per catalogue snapshot hash, read once per snapshot.
        self._values: dict[str, Mapping[str, int]] = {}

    async def record(self, feedback: FeedbackInput, *, client: str, key: str) -> StoredResponse:
        """Record ``feedback`` once per (client, key) and settle its grant if it has one pending."""
        try:
            recorded = await asyncio.to_thread(self._record, feedback, client, key)
        except SQLAlchemyError as exc:
            raise _store_down(exc) from None
        if not recorded.response.replayed:
            FEEDBACK_EVENTS_TOTAL.labels(event=feedback.event).inc()
        if recorded.cooled is not None and self.on_cooldown is not None:
            self.on_cooldown(recorded.cooled)
        if recorded.shown is not None and self.on_shown is not None:
            self.on_shown(*recorded.shown)
        if recorded.grant is None:
            return recorded.response
        body = await self._settle(recorded.grant)
        if body is None:  # the outcome could not be stored: answer what is stored (pending)
            return recorded.response
        return StoredResponse(CREATED, body, replayed=recorded.response.replayed)

    @property
    def key_retention(self) -> timedelta:
        """How long a stored Idempotency-Key answer is kept (see the module docstring)."""
        return self.max_age + self.max_skew + timedelta(days=1)

    async def purge_keys(self, limit: int = 10_000) -> int:
        """Delete stored feedback keys older than :attr:`key_retention`; how many were deleted."""

        def purge() -> int:
            with self.database.session() as session:
                return IdempotencyRepository(session).purge(
                    OPERATION, before=self.now() - self.key_retention, limit=limit
                )

        return await asyncio.to_thread(purge)

    async def retry_pending_grants(self, limit: int = 100) -> list[GrantResult]:
        """Ask rights-hub again for up to ``limit`` pending grants (oldest first); their outcomes."""

        def pending() -> list[PendingGrant]:
            with self.database.session() as session:
                rows = FeedbackRepository(session).pending_grants(limit)
                return [p for p in map(_pending, rows) if p is not None]

        results = []
        for grant in await asyncio.to_thread(pending):
            result = await self.rights.grant(grant.request)
            RIGHTS_GRANTS_TOTAL.labels(outcome=result.status).inc()
            await asyncio.to_thread(self._store_grant, grant, result)
            results.append(result)
        return results

    # -- internals -------------------------------------------------------------------------------

    def _record(self, feedback: FeedbackInput, client: str, key: str) -> _Recorded:
        fingerprint = feedback.fingerprint()
        now = self.now()
        with self.database.session() as session:
            keys = IdempotencyRepository(session)
            rows = FeedbackRepository(session)
            if not keys.claim(client, key, operation=OPERATION, fingerprint=fingerprint, now=now):
                return self._replay(keys, rows, client, key, fingerprint)
            # Any error from here on rolls the transaction back, the key's claim included.
            decision = AuditRepository(session).get(feedback.decision_id)
            if decision is None:
                raise DecisionNotFoundError(
                    f"decision {feedback.decision_id} not found",
                    details={"decision_id": feedback.decision_id},
                )
            bundle = _bundle(decision, feedback.product_id)
            if bundle is None:
                raise ProductNotInDecisionError(
                    f"product {feedback.product_id} was not offered by decision {feedback.decision_id}",
                    details={"product_id": feedback.product_id, "offered": _offered(decision)},
                )
            at = self._event_time(feedback.at, decision.created_at, now)
            contacts = ContactRepository(session)
            contacts.record(
                decision.customer_id,
                decision.channel,
                feedback.event,
                at,
                product_id=feedback.product_id,
                decision_id=decision.decision_id,
            )
            cooldown_until = None
            if feedback.event == "dismiss":
                cooldown_until = contacts.start_cooldown(
                    decision.customer_id,
                    feedback.product_id,
                    at + self.policy.dismiss_cooldown,
                    reason="dismissed",
                    decision_id=decision.decision_id,
                )
            right = bundle.get("right") if feedback.event == "convert" else None
            right_id = str(right["id"]) if isinstance(right, Mapping) and right.get("id") else None
            row = Feedback(
                feedback_id=f"fbk_{random_hex()}",
                client=client,
                idempotency_key=key,
                decision_id=decision.decision_id,
                customer_id=decision.customer_id,
                channel=decision.channel,
                product_id=feedback.product_id,
                event=feedback.event,
                at=at,
                recorded_at=now,
                value=feedback.value,
                cooldown_until=cooldown_until,
                experiment_id=decision.experiment_id,
                experiment_arm=decision.experiment_arm,
                right_id=right_id,
                grant_key=None
                if right_id is None
                else grant_key(decision.decision_id, feedback.product_id, right_id),
                grant_status=None if right_id is None else "pending_retry",
                grant_id=None,
                grant_error_code=None,
                grant_attempts=0,
                grant_updated_at=None,
            )
            rows.add(row)
            kind = EXPERIMENT_EVENTS.get(feedback.event)
            if self.experiments is not None and kind is not None:
                # In the feedback's transaction: a replayed key attributes nothing twice.
                self.experiments.attribute(
                    session,
                    decision.customer_id,
                    kind,
                    at=at,
                    value=feedback.value if kind == "convert" else None,
                    decision_id=decision.decision_id,
                    margin_fen=self._margin_fen(session, decision, feedback.product_id)
                    if kind == "convert"
                    else None,
                )
            body = dumps(feedback_json(row))
            keys.store(client, key, CREATED, body, now)
        return _Recorded(
            StoredResponse(CREATED, body),
            _pending(row),
            cooled=row.customer_id if cooldown_until is not None else None,
            shown=(row.customer_id, row.product_id, at) if feedback.event == "impression" else None,
        )

    def _margin_fen(self, session: Session, decision: AuditRecord, product_id: str) -> int | None:
        """The product's value to the bank (fen) in the decision's catalogue snapshot; None if unknown."""
        key = decision.features.get("catalogue_snapshot")
        if not isinstance(key, str):
            return None
        values = self._values.get(key)
        if values is None:
            rows = SnapshotRepository(session).get(key) or []
            values = {
                str(r["product_id"]): max(0, round(float(r["value"]) * 100))
                for r in rows
                if isinstance(r.get("value"), int | float)
            }
            if len(self._values) >= 16:
                self._values.clear()
            self._values[key] = values
        return values.get(product_id)

    def _replay(
        self,
        keys: IdempotencyRepository,
        rows: FeedbackRepository,
        client: str,
        key: str,
        fingerprint: str,
    ) -> _Recorded:
        stored = keys.get(client, key)
        assert stored is not None, "a claimed key is committed before another request can see it"
        if stored.operation != OPERATION or stored.fingerprint != fingerprint:
            raise IdempotencyKeyReusedError(
                "this Idempotency-Key was already used for a different request",
                details={"idempotency_key": key},
            )
        row = rows.by_key(client, key)
        return _Recorded(
            StoredResponse(stored.status_code, bytes(stored.response_body), replayed=True),
            None if row is None else _pending(row),
        )

    def _event_time(self, requested: datetime | None, decided_at: datetime, now: datetime) -> datetime:
        at = now if requested is None else requested.astimezone(UTC)
        if at > now + self.max_skew:
            raise FeedbackTimeError(
                "the event time is in the future",
                code="feedback_in_future",
                details={"max_skew_s": self.max_skew.total_seconds()},
            )
        if at < now - self.max_age:
            raise FeedbackTimeError(
                "the event is too old to be reported",
                code="feedback_too_old",
                details={"max_age_days": self.max_age.days},
            )
        if now - decided_at > self.max_age:
            raise FeedbackTimeError(
                "the decision is too old to take feedback",
                code="decision_too_old",
                details={"decided_at": decided_at.isoformat(), "max_age_days": self.max_age.days},
            )
        if at < decided_at - self.max_skew:
            raise FeedbackTimeError(
                "the event time is before the decision was made",
                code="feedback_before_decision",
                details={"decided_at": decided_at.isoformat()},
            )
        return at

    async def _settle(self, grant: PendingGrant) -> bytes | None:
        """One grant attempt and its stored outcome; the refreshed answer, or None if not stored."""
        result = await self.rights.grant(grant.request)
        RIGHTS_GRANTS_TOTAL.labels(outcome=result.status).inc()
        try:
            return await asyncio.to_thread(self._store_grant, grant, result)
        except SQLAlchemyError as exc:
            # rights-hub keeps a made grant under its key: the next retry learns it again.
            log.error(
                "grant_outcome_not_stored", feedback_id=grant.feedback_id, error_type=type(exc).__name__
            )
            return None

    def _store_grant(self, grant: PendingGrant, result: GrantResult) -> bytes:
        now = self.now()
        with self.database.session() as session:
            rows = FeedbackRepository(session)
            # A pending outcome only counts the attempt; a settled grant is never overwritten.
            rows.settle_grant(
                grant.feedback_id,
                status=result.status,
                grant_id=result.grant_id,
                error_code=result.error_code,
                now=now,
            )
            row = rows.get(grant.feedback_id)
            assert row is not None, "feedback rows are never deleted"
            body = dumps(feedback_json(row))
            IdempotencyRepository(session).store(row.client, row.idempotency_key, CREATED, body, now)
        return body


__all__ = [
    "DecisionNotFoundError",
    "FeedbackInput",
    "FeedbackService",
    "FeedbackStoreUnavailableError",
    "FeedbackTimeError",
    "IdempotencyKeyReusedError",
    "PendingGrant",
    "ProductNotInDecisionError",
    "StoredResponse",
    "feedback_json",
]
