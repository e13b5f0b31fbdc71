"""Catalogue use cases: create and edit drafts, the workflow, listings, budget status and the ledger."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError
from qianmian_core.db import Database
from qianmian_core.errors import UnprocessableError

from rights_hub.errors import (
    IllegalTransitionError,
    MakerCheckerError,
    NotAuthorError,
    NotEditableError,
    RightExistsError,
    RightNotFoundError,
    VersionConflictError,
)
from rights_hub.models import Right
from rights_hub.repository import LedgerRepository, RightRepository
from rights_hub.schemas import (
    BudgetOut,
    LedgerEntryOut,
    LedgerPage,
    RightCreate,
    RightFields,
    RightOut,
    RightPage,
    RightUpdate,
    TransitionRequest,
)
from rights_hub.service.common import remaining, right_out, utc_now
from rights_hub.service.workflow import can_transition


@dataclass(frozen=True, slots=True)
class RightFilter:
    """What a listing asks for.

    ``affordable`` keeps only rights the recommender may promise now: active, inside the granting
    window at ``at``, with budget for at least one more grant, and eligible for the given segment and
    lifecycle stage (a right with no segment or stage restriction is open to all).
    """

    status: str | None = None
    right_type: str | None = None
    affordable: bool = False
    segment: str | None = None
    lifecycle_stage: str | None = None
    at: datetime | None = None
    limit: int = 100
    offset: int = 0


class CatalogueService:
    """The rights catalogue. Each public method is one database transaction."""

    def __init__(self, database: Database, *, clock: Callable[[], datetime] = utc_now) -> None:
        self._db = database
        self._clock = clock

    # -- reads ---------------------------------------------------------------------------------

    def get(self, right_id: str) -> RightOut:
        """One right; RightNotFoundError if unknown."""
        with self._db.session() as session:
            return right_out(_require(RightRepository(session), right_id))

    def list_rights(self, query: RightFilter) -> RightPage:
        """A page of rights matching ``query``."""
        at = query.at or self._clock()
        with self._db.session() as session:
            rows = RightRepository(session).find(
                statuses=["active"] if query.affordable else ([query.status] if query.status else []),
                right_types=[query.right_type] if query.right_type else [],
            )
            rights = [right_out(row) for row in rows]
        if query.status is not None:
            rights = [r for r in rights if r.status == query.status]
        if query.segment is not None:
            rights = [r for r in rights if not r.segments or query.segment in r.segments]
        if query.lifecycle_stage is not None:
            rights = [
                r for r in rights if not r.lifecycle_stages or query.lifecycle_stage in r.lifecycle_stages
            ]
        if query.affordable:
            rights = [r for r in rights if r.valid_from <= at < r.valid_until and r.remaining_count >= 1]
        page = rights[query.offset : query.offset + query.limit]
        return RightPage(items=page, total=len(rights), limit=query.limit, offset=query.offset)

    def budget(self, right_id: str, *, window_hours: float = 24.0) -> BudgetOut:
        """Budget status with pacing: the net units committed per hour over the last ``window_hours``."""
        now = self._clock()
        with self._db.session() as session:
            right = _require(RightRepository(session), right_id)
            net = LedgerRepository(session).net_committed_since(right_id, now - timedelta(hours=window_hours))
            count_left, money_left = remaining(right)
            burn = max(net, 0) / window_hours
            projected = None
            if burn > 0 and count_left > 0:
                projected = now + timedelta(hours=count_left / burn)
            elif count_left == 0:
                projected = now
            return BudgetOut(
                right_id=right_id,
                budget_count=right.budget_count,
                budget_money_fen=right.budget_money_fen,
                reserved_count=right.held_count,
                reserved_money_fen=right.held_money_fen,
                granted_count=right.granted_count,
                granted_money_fen=right.granted_money_fen,
                redeemed_count=right.redeemed_count,
                redeemed_money_fen=right.redeemed_money_fen,
                remaining_count=count_left,
                remaining_money_fen=money_left,
                burn_rate_per_hour=round(burn, 6),
                pacing_window_hours=window_hours,
                projected_exhaustion_at=projected,
            )

    def ledger(self, right_id: str, *, after: int = 0, limit: int = 100) -> LedgerPage:
        """A page of the right's ledger, in order."""
        with self._db.session() as session:
            _require(RightRepository(session), right_id)
            rows = LedgerRepository(session).page(right_id, after=after, limit=limit)
            items = [LedgerEntryOut.model_validate(row) for row in rows]
        return LedgerPage(items=items, next_after=items[-1].entry_id if len(items) == limit else None)

    # -- writes --------------------------------------------------------------------------------

    def create(self, data: RightCreate, *, author: str) -> RightOut:
        """Store a new draft authored by ``author``; its creation is the first ledger entry."""
        now = self._clock()
        with self._db.session() as session:
            repo = RightRepository(session)
            if repo.get(data.right_id) is not None:
                raise RightExistsError(
                    f"right {data.right_id} already exists", details={"right_id": data.right_id}
                )
            right = Right(
                right_id=data.right_id,
                **_columns(data),
                status="draft",
                author=author,
                activated_by=None,
                activated_at=None,
                version=1,
                held_count=0,
                held_money_fen=0,
                granted_count=0,
                granted_money_fen=0,
                redeemed_count=0,
                redeemed_money_fen=0,
                created_at=now,
                updated_at=now,
            )
            repo.add(right)
            LedgerRepository(session).append(right_id=data.right_id, operation="create", actor=author, at=now)
            return right_out(right)

    def update(self, right_id: str, patch: RightUpdate, *, actor: str) -> RightOut:
        """Edit a draft: only its author, only at the current version."""
        now = self._clock()
        with self._db.session() as session:
            repo = RightRepository(session)
            current = right_out(_require(repo, right_id))
            if actor != current.author:
                raise NotAuthorError(
                    f"only the author ({current.author}) may edit draft {right_id}",
                    details={"author": current.author},
                )
            if current.status != "draft":
                raise NotEditableError(
                    f"right {right_id} is {current.status}; only drafts can be edited",
                    details={"status": current.status},
                )
            if patch.version != current.version:
                raise VersionConflictError(
                    f"right {right_id} is at version {current.version}, not {patch.version}",
                    details={"current_version": current.version},
                )
            changes = patch.changes()
            merged = {**current.model_dump(include=set(RightFields.model_fields)), **changes}
            try:
                fields = RightFields.model_validate(merged)
            except ValidationError as exc:
                raise UnprocessableError(
                    "the edited right is invalid", details=_validation_details(exc)
                ) from None
            if not repo.update_if(
                right_id,
                version=patch.version,
                status="draft",
                values={**_columns(fields), "updated_at": now},
            ):
                raise VersionConflictError(
                    f"right {right_id} was changed concurrently", details={"right_id": right_id}
                )
            LedgerRepository(session).append(
                right_id=right_id, operation="edit", actor=actor, at=now, detail={"fields": sorted(changes)}
            )
            return right_out(_require(repo, right_id, fresh=True))

    def transition(self, right_id: str, request: TransitionRequest, *, actor: str) -> RightOut:
        """Move a right along the workflow; activation needs someone other than the author."""
        now = self._clock()
        with self._db.session() as session:
            repo = RightRepository(session)
            current = _require(repo, right_id)
            from_status, target = current.status, request.to
            if not can_transition(from_status, target):
                raise IllegalTransitionError(
                    f"cannot move right {right_id} from {from_status} to {target}",
                    details={"from": from_status, "to": target},
                )
            values: dict[str, Any] = {"status": target, "updated_at": now}
            if target == "active":
                if actor == current.author:
                    raise MakerCheckerError(
                        "a right must be activated by someone other than its author",
                        details={"author": current.author},
                    )
                if current.valid_until <= now:
                    raise IllegalTransitionError(
                        f"right {right_id}'s granting window ended at {current.valid_until.isoformat()}",
                        code="window_ended",
                        details={"valid_until": current.valid_until.isoformat()},
                    )
                values |= {"activated_by": actor, "activated_at": now}
            if not repo.update_if(right_id, version=None, status=from_status, values=values):
                raise VersionConflictError(
                    f"right {right_id} changed status concurrently", details={"right_id": right_id}
                )
            LedgerRepository(session).append(
                right_id=right_id,
                operation="status_change",
                actor=actor,
                at=now,
                detail={"from": from_status, "to": target, "comment": request.comment},
            )
            return right_out(_require(repo, right_id, fresh=True))


def _require(repo: RightRepository, right_id: str, *, fresh: bool = False) -> Right:
    right = repo.refreshed(right_id) if fresh else repo.get(right_id)
    if right is None:
        raise RightNotFoundError(f"right {right_id} not found", details={"right_id": right_id})
    return right


def _columns(fields: RightFields) -> dict[str, Any]:
    """Column values of the author-written fields (lists and dicts as plain JSON)."""
    return fields.model_dump(mode="python", include=set(RightFields.model_fields))


def _validation_details(exc: ValidationError) -> list[dict[str, Any]]:
    # Same shape as request validation errors, and likewise never echoes the input.
    return [
        {"loc": ["body", *(str(p) for p in err["loc"])], "msg": err["msg"], "type": err["type"]}
        for err in exc.errors()
    ]
