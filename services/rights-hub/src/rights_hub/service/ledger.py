"""Ledger use cases: reserve, grant, release, redeem, reverse, expire.

Every operation runs in one transaction that (1) claims the caller's Idempotency-Key, (2) changes
the counters with conditional updates, (3) appends the ledger entry and (4) stores the answer's exact
bytes under the key. A replay finds the key and gets those bytes back; a crash before commit leaves
nothing behind, so the client's retry with the same key performs the effect exactly once.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel
from qianmian_core.db import Database
from qianmian_core.errors import AppError, UnprocessableError
from qianmian_core.responses import dumps
from sqlalchemy.orm import Session

from rights_hub.errors import (
    CustomerLimitReachedError,
    GrantNotFoundError,
    IdempotencyKeyReusedError,
    InvalidStateError,
    ReservationNotFoundError,
    RightExhaustedError,
    RightNotAvailableError,
    RightNotFoundError,
)
from rights_hub.models import Grant, Reservation, Right
from rights_hub.repository import (
    CounterDeltas,
    GrantRepository,
    IdempotencyRepository,
    LedgerRepository,
    ReservationRepository,
    RightRepository,
    UsageRepository,
)
from rights_hub.schemas import (
    ExpiryReport,
    GrantOut,
    GrantPage,
    GrantRequest,
    ReasonRequest,
    ReservationOut,
    ReserveRequest,
)
from rights_hub.service.common import StoredResponse, error_body, remaining, request_fingerprint, utc_now

#: An effect's answer, and optionally a last step that takes the contended budget row lock. Run last,
#: just before commit, the lock is held for a few round trips instead of the whole transaction.
EffectResult = tuple[BaseModel, Callable[[], None] | None]

#: Who the expiry job acts as in the ledger.
EXPIRY_ACTOR = "system:expiry"


@dataclass(frozen=True, slots=True)
class Idempotency:
    """Who asks, under which key."""

    client: str
    key: str


class LedgerService:
    """The budget ledger. Each public method is one database transaction."""

    def __init__(
        self,
        database: Database,
        *,
        default_hold_seconds: int = 900,
        max_hold_seconds: int = 86_400,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._db = database
        self._default_hold = default_hold_seconds
        self._max_hold = max_hold_seconds
        self._clock = clock

    # -- idempotent operations -----------------------------------------------------------------

    def reserve(self, right_id: str, request: ReserveRequest, idem: Idempotency) -> StoredResponse:
        """Hold one unit of the right's budget for a customer until the hold expires."""

        def effect(session: Session, now: datetime) -> EffectResult:
            hold = request.hold_seconds or self._default_hold
            if hold > self._max_hold:
                raise UnprocessableError(
                    f"hold_seconds may be at most {self._max_hold}", details={"max": self._max_hold}
                )
            right, seq = self._claim_customer_slot(session, right_id, request.customer_id, now)
            amount = right.unit_cost_fen
            reservation = Reservation(
                reservation_id=f"rsv_{uuid.uuid4().hex}",
                right_id=right_id,
                customer_id=request.customer_id,
                seq=seq,
                amount_fen=amount,
                status="held",
                decision_id=request.decision_id,
                created_at=now,
                expires_at=now + timedelta(seconds=hold),
                closed_at=None,
            )
            ReservationRepository(session).add(reservation)
            LedgerRepository(session).append(
                right_id=right_id,
                operation="reserve",
                actor=idem.client,
                at=now,
                deltas=CounterDeltas(held=1, held_money_fen=amount),
                customer_id=request.customer_id,
                reservation_id=reservation.reservation_id,
                idempotency_key=idem.key,
            )
            return ReservationOut.model_validate(reservation), lambda: self._take_budget(
                session, right, into="held", now=now
            )

        return self._idempotent(idem, "reserve", right_id, request, 201, effect)

    def grant(self, right_id: str, request: GrantRequest, idem: Idempotency) -> StoredResponse:
        """Grant the right to a customer directly, if budget and the customer's limit allow."""

        def effect(session: Session, now: datetime) -> EffectResult:
            right, seq = self._claim_customer_slot(session, right_id, request.customer_id, now)
            amount = right.unit_cost_fen
            grant = _new_grant(right, request.customer_id, seq, amount, None, request.decision_id, now)
            GrantRepository(session).add(grant)
            LedgerRepository(session).append(
                right_id=right_id,
                operation="grant",
                actor=idem.client,
                at=now,
                deltas=CounterDeltas(granted=1, granted_money_fen=amount),
                customer_id=request.customer_id,
                grant_id=grant.grant_id,
                idempotency_key=idem.key,
            )
            return GrantOut.model_validate(grant), lambda: self._take_budget(
                session, right, into="granted", now=now
            )

        return self._idempotent(idem, "grant", right_id, request, 201, effect)

    def grant_reservation(
        self, reservation_id: str, request: ReasonRequest, idem: Idempotency
    ) -> StoredResponse:
        """Turn a live hold into a grant (the budget was already taken by the hold)."""

        def effect(session: Session, now: datetime) -> EffectResult:
            reservations = ReservationRepository(session)
            held = self._close_hold(reservations, reservation_id, to="granted", now=now)
            right = RightRepository(session).get(held.right_id)
            assert right is not None
            grant = _new_grant(
                right, held.customer_id, held.seq, held.amount_fen, reservation_id, held.decision_id, now
            )
            GrantRepository(session).add(grant)
            RightRepository(session).apply(
                held.right_id,
                CounterDeltas(
                    held=-1, held_money_fen=-held.amount_fen, granted=1, granted_money_fen=held.amount_fen
                ),
            )
            LedgerRepository(session).append(
                right_id=held.right_id,
                operation="grant",
                actor=idem.client,
                at=now,
                deltas=CounterDeltas(
                    held=-1, held_money_fen=-held.amount_fen, granted=1, granted_money_fen=held.amount_fen
                ),
                customer_id=held.customer_id,
                reservation_id=reservation_id,
                grant_id=grant.grant_id,
                idempotency_key=idem.key,
            )
            return GrantOut.model_validate(grant), None

        return self._idempotent(idem, "grant_reservation", reservation_id, request, 201, effect)

    def release(self, reservation_id: str, request: ReasonRequest, idem: Idempotency) -> StoredResponse:
        """Give a hold back before it expires (the customer did not take the offer)."""

        def effect(session: Session, now: datetime) -> EffectResult:
            held = self._close_hold(ReservationRepository(session), reservation_id, to="released", now=now)
            _end_holding(
                session,
                right_id=held.right_id,
                customer_id=held.customer_id,
                operation="release",
                deltas=CounterDeltas(held=-1, held_money_fen=-held.amount_fen),
                actor=idem.client,
                key=idem.key,
                now=now,
                reservation_id=reservation_id,
                reason=request.reason,
            )
            return ReservationOut.model_validate(held), None

        return self._idempotent(idem, "release", reservation_id, request, 200, effect)

    def redeem(self, grant_id: str, request: ReasonRequest, idem: Idempotency) -> StoredResponse:
        """The customer used the granted right (before its redemption deadline)."""

        def effect(session: Session, now: datetime) -> EffectResult:
            grants = GrantRepository(session)
            current = _require_grant(grants, grant_id)
            moved = grants.move(
                grant_id,
                from_status="granted",
                to="redeemed",
                now=now,
                values={"redeemed_at": now},
                require_unexpired=True,
            )
            if moved is None:
                fresh = _require_grant(grants, grant_id)
                if fresh.status == "granted":
                    raise InvalidStateError(
                        f"grant {grant_id} expired at {fresh.expires_at.isoformat()}",
                        code="grant_expired",
                        details={"expires_at": fresh.expires_at.isoformat()},
                    )
                raise _wrong_state("grant", grant_id, fresh.status, "granted")
            deltas = CounterDeltas(
                granted=-1,
                granted_money_fen=-current.amount_fen,
                redeemed=1,
                redeemed_money_fen=current.amount_fen,
            )
            RightRepository(session).apply(moved.right_id, deltas)
            LedgerRepository(session).append(
                right_id=moved.right_id,
                operation="redeem",
                actor=idem.client,
                at=now,
                deltas=deltas,
                customer_id=moved.customer_id,
                grant_id=grant_id,
                idempotency_key=idem.key,
                detail={"reason": request.reason} if request.reason else None,
            )
            return GrantOut.model_validate(moved), None

        return self._idempotent(idem, "redeem", grant_id, request, 200, effect)

    def reverse(self, grant_id: str, request: ReasonRequest, idem: Idempotency) -> StoredResponse:
        """Take back a granted or redeemed right (mistaken grant, refunded purchase); frees its budget."""

        def effect(session: Session, now: datetime) -> EffectResult:
            grants = GrantRepository(session)
            current = _require_grant(grants, grant_id)
            # Plain values: ``move`` refreshes the same ORM object, so ``current`` changes under us.
            previous, amount = current.status, current.amount_fen
            if previous not in ("granted", "redeemed"):
                raise _wrong_state("grant", grant_id, previous, "granted or redeemed")
            moved = grants.move(
                grant_id, from_status=previous, to="reversed", now=now, values={"closed_at": now}
            )
            if moved is None:
                fresh = _require_grant(grants, grant_id)
                raise _wrong_state("grant", grant_id, fresh.status, "granted or redeemed")
            if previous == "granted":
                deltas = CounterDeltas(granted=-1, granted_money_fen=-amount)
            else:
                deltas = CounterDeltas(redeemed=-1, redeemed_money_fen=-amount)
            _end_holding(
                session,
                right_id=moved.right_id,
                customer_id=moved.customer_id,
                operation="reverse",
                deltas=deltas,
                actor=idem.client,
                key=idem.key,
                now=now,
                grant_id=grant_id,
                reason=request.reason,
            )
            return GrantOut.model_validate(moved), None

        return self._idempotent(idem, "reverse", grant_id, request, 200, effect)

    # -- reads ---------------------------------------------------------------------------------

    def get_grant(self, grant_id: str) -> GrantOut:
        """One grant; GrantNotFoundError if unknown."""
        with self._db.session() as session:
            return GrantOut.model_validate(_require_grant(GrantRepository(session), grant_id))

    def get_reservation(self, reservation_id: str) -> ReservationOut:
        """One reservation; ReservationNotFoundError if unknown."""
        with self._db.session() as session:
            found = ReservationRepository(session).get(reservation_id)
            if found is None:
                raise _reservation_not_found(reservation_id)
            return ReservationOut.model_validate(found)

    def customer_grants(
        self, customer_id: str, *, status: str | None = None, right_id: str | None = None
    ) -> GrantPage:
        """A customer's grants, newest first."""
        with self._db.session() as session:
            rows = GrantRepository(session).for_customer(
                customer_id, statuses=[status] if status else [], right_id=right_id
            )
            items = [GrantOut.model_validate(row) for row in rows]
        return GrantPage(items=items, total=len(items))

    # -- expiry --------------------------------------------------------------------------------

    def expire_due(self, *, batch_size: int = 500) -> ExpiryReport:
        """Expire holds past their expiry and grants past their redemption deadline; retire rights
        whose granting window has ended. Safe to run concurrently with traffic and with itself:
        every step is a conditional update that only one transaction can win.
        """
        holds = grants = retired = 0
        while True:
            done = self._expire_batch(batch_size)
            holds, grants = holds + done[0], grants + done[1]
            if done[0] < batch_size and done[1] < batch_size:
                break
        now = self._clock()
        with self._db.session() as session:
            repo = RightRepository(session)
            for right_id in repo.expired_windows(now):
                right = repo.get(right_id)
                if right is None or not repo.update_if(
                    right_id,
                    version=None,
                    status=right.status,
                    values={"status": "retired", "updated_at": now},
                ):
                    continue
                LedgerRepository(session).append(
                    right_id=right_id,
                    operation="status_change",
                    actor=EXPIRY_ACTOR,
                    at=now,
                    detail={"from": right.status, "to": "retired", "comment": "granting window ended"},
                )
                retired += 1
        return ExpiryReport(holds_expired=holds, grants_expired=grants, rights_retired=retired)

    def _expire_batch(self, batch_size: int) -> tuple[int, int]:
        now = self._clock()
        holds = grants = 0
        with self._db.session() as session:
            reservations = ReservationRepository(session)
            for reservation_id in reservations.due(now, batch_size):
                held = reservations.close(reservation_id, to="expired", now=now, require_unexpired=False)
                if held is None:  # granted or released meanwhile
                    continue
                _end_holding(
                    session,
                    right_id=held.right_id,
                    customer_id=held.customer_id,
                    operation="expire",
                    deltas=CounterDeltas(held=-1, held_money_fen=-held.amount_fen),
                    actor=EXPIRY_ACTOR,
                    key=None,
                    now=now,
                    reservation_id=reservation_id,
                    reason="hold expired",
                )
                holds += 1
            grant_repo = GrantRepository(session)
            for grant_id in grant_repo.due(now, batch_size):
                moved = grant_repo.move(
                    grant_id, from_status="granted", to="expired", now=now, values={"closed_at": now}
                )
                if moved is None:
                    continue
                _end_holding(
                    session,
                    right_id=moved.right_id,
                    customer_id=moved.customer_id,
                    operation="expire",
                    deltas=CounterDeltas(granted=-1, granted_money_fen=-moved.amount_fen),
                    actor=EXPIRY_ACTOR,
                    key=None,
                    now=now,
                    grant_id=grant_id,
                    reason="not redeemed in time",
                )
                grants += 1
        return holds, grants

    # -- internals -----------------------------------------------------------------------------

    def _idempotent(
        self,
        idem: Idempotency,
        operation: str,
        target: str,
        body: BaseModel,
        success_status: int,
        effect: Callable[[Session, datetime], EffectResult],
    ) -> StoredResponse:
        """Run ``effect`` once per (client, key); store and return its answer, or replay the stored one.

        Business refusals (404, 409, 422 raised by the effect) are answers too: they are stored, so a
        replay of a refused request stays refused even if budget frees up later.
        """
        fingerprint = request_fingerprint(operation, target, body)
        now = self._clock()
        with self._db.session() as session:
            keys = IdempotencyRepository(session)
            if not keys.claim(idem.client, idem.key, fingerprint, now):
                record = keys.get(idem.client, idem.key)
                assert record is not None, "a claimed key is committed before others can see it"
                if record.fingerprint != fingerprint:
                    raise IdempotencyKeyReusedError(
                        "this Idempotency-Key was already used for a different request",
                        details={"idempotency_key": idem.key},
                    )
                return StoredResponse(record.status_code, bytes(record.response_body), replayed=True)
            try:
                with session.begin_nested():
                    result, last_step = effect(session, now)
                    stored = StoredResponse(success_status, dumps(result))
                    keys.complete(idem.client, idem.key, stored.status_code, stored.body)
                    if last_step is not None:
                        last_step()
            except AppError as exc:
                # The savepoint is rolled back: nothing of the effect remains, only its refusal.
                stored = StoredResponse(exc.status_code, error_body(exc))
                keys.complete(idem.client, idem.key, stored.status_code, stored.body)
            return stored

    def _claim_customer_slot(
        self, session: Session, right_id: str, customer_id: str, now: datetime
    ) -> tuple[Right, int]:
        """Check the right is grantable and take one slot of the customer's limit; (right, sequence)."""
        right = RightRepository(session).get(right_id)
        if right is None:
            raise RightNotFoundError(f"right {right_id} not found", details={"right_id": right_id})
        _require_available(right, now)
        if remaining(right)[0] < 1:
            # Already used up when read: answer without queueing for the budget row's lock.
            raise _exhausted(right_id)
        seq = UsageRepository(session).claim(right_id, customer_id, right.per_customer_limit)
        if seq is None:
            raise CustomerLimitReachedError(
                f"customer already holds the most of right {right_id} allowed",
                details={"right_id": right_id, "per_customer_limit": right.per_customer_limit},
            )
        return right, seq

    def _take_budget(
        self, session: Session, right: Right, *, into: Literal["held", "granted"], now: datetime
    ) -> None:
        """Take one unit of budget with a conditional UPDATE; RightExhaustedError if none is left."""
        rights = RightRepository(session)
        if not rights.consume(right.right_id, into=into, amount_fen=right.unit_cost_fen, now=now):
            fresh = rights.refreshed(right.right_id)
            assert fresh is not None
            _require_available(fresh, now)
            raise _exhausted(right.right_id)

    def _close_hold(
        self, reservations: ReservationRepository, reservation_id: str, *, to: str, now: datetime
    ) -> Reservation:
        current = reservations.get(reservation_id)
        if current is None:
            raise _reservation_not_found(reservation_id)
        closed = reservations.close(reservation_id, to=to, now=now, require_unexpired=True)
        if closed is not None:
            return closed
        fresh = reservations.get(reservation_id)
        assert fresh is not None
        if fresh.status == "held":
            raise InvalidStateError(
                f"reservation {reservation_id} expired at {fresh.expires_at.isoformat()}",
                code="reservation_expired",
                details={"expires_at": fresh.expires_at.isoformat()},
            )
        raise _wrong_state("reservation", reservation_id, fresh.status, "held")


def _exhausted(right_id: str) -> RightExhaustedError:
    return RightExhaustedError(
        f"right {right_id} is no longer available: its budget is used up", details={"right_id": right_id}
    )


def _require_available(right: Right, now: datetime) -> None:
    if right.status != "active":
        raise RightNotAvailableError(
            f"right {right.right_id} is {right.status}, not active",
            details={"right_id": right.right_id, "status": right.status},
        )
    if not right.valid_from <= now < right.valid_until:
        raise RightNotAvailableError(
            f"right {right.right_id} is outside its granting window",
            details={
                "valid_from": right.valid_from.isoformat(),
                "valid_until": right.valid_until.isoformat(),
            },
        )


def _new_grant(
    right: Right,
    customer_id: str,
    seq: int,
    amount_fen: int,
    reservation_id: str | None,
    decision_id: str | None,
    now: datetime,
) -> Grant:
    return Grant(
        grant_id=f"grt_{uuid.uuid4().hex}",
        right_id=right.right_id,
        customer_id=customer_id,
        seq=seq,
        reservation_id=reservation_id,
        amount_fen=amount_fen,
        status="granted",
        decision_id=decision_id,
        granted_at=now,
        expires_at=now + timedelta(days=right.redeem_within_days),
        redeemed_at=None,
        closed_at=None,
    )


def _end_holding(
    session: Session,
    *,
    right_id: str,
    customer_id: str,
    operation: str,
    deltas: CounterDeltas,
    actor: str,
    key: str | None,
    now: datetime,
    reservation_id: str | None = None,
    grant_id: str | None = None,
    reason: str | None = None,
) -> None:
    """A hold or grant ended: free its budget and the customer's slot, and record why."""
    RightRepository(session).apply(right_id, deltas)
    UsageRepository(session).release(right_id, customer_id)
    LedgerRepository(session).append(
        right_id=right_id,
        operation=operation,
        actor=actor,
        at=now,
        deltas=deltas,
        customer_id=customer_id,
        reservation_id=reservation_id,
        grant_id=grant_id,
        idempotency_key=key,
        detail={"reason": reason} if reason else None,
    )


def _require_grant(grants: GrantRepository, grant_id: str) -> Grant:
    found = grants.get(grant_id)
    if found is None:
        raise GrantNotFoundError(f"grant {grant_id} not found", details={"grant_id": grant_id})
    return found


def _reservation_not_found(reservation_id: str) -> ReservationNotFoundError:
    return ReservationNotFoundError(
        f"reservation {reservation_id} not found", details={"reservation_id": reservation_id}
    )


def _wrong_state(kind: str, item_id: str, status: str, expected: str) -> InvalidStateError:
    return InvalidStateError(
        f"{kind} {item_id} is {status}, not {expected}", details={"status": status, "expected": expected}
    )
