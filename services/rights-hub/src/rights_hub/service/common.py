"""Small pieces shared by the use cases: the clock, stored answers, conversions."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import BaseModel
from qianmian_core.errors import AppError

from rights_hub.models import Right
from rights_hub.schemas import RightOut


def utc_now() -> datetime:
    """The current time, timezone-aware."""
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """An answer as HTTP status and JSON bytes, exactly as stored under its Idempotency-Key."""

    status_code: int
    body: bytes
    replayed: bool = False


def error_body(exc: AppError) -> bytes:
    """The bytes of the shared error shape, identical to what the app's error handler writes."""
    return orjson.dumps({"error": {"code": exc.error_code, "message": exc.message, "details": exc.details}})


def request_fingerprint(operation: str, target: str, body: BaseModel | None) -> str:
    """A digest of what a request asks for: the operation, its target and its parsed body.

    Parsed rather than raw, so that key order or whitespace do not make two equal requests differ.
    """
    payload = {
        "operation": operation,
        "target": target,
        "body": body.model_dump(mode="json") if body else None,
    }
    return hashlib.sha256(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)).hexdigest()


def remaining(right: Right) -> tuple[int, int]:
    """Units and money still free: the count budget, further capped by what the money buys."""
    committed = right.held_count + right.granted_count + right.redeemed_count
    committed_money = right.held_money_fen + right.granted_money_fen + right.redeemed_money_fen
    money_left = right.budget_money_fen - committed_money
    count_left = right.budget_count - committed
    if right.unit_cost_fen > 0:
        count_left = min(count_left, money_left // right.unit_cost_fen)
    return max(count_left, 0), max(money_left, 0)


def right_out(right: Right) -> RightOut:
    """The API view of a stored right, with its remaining budget."""
    count_left, money_left = remaining(right)
    data: dict[str, Any] = {
        name: getattr(right, name) for name in RightOut.model_fields if hasattr(right, name)
    }
    data |= {"remaining_count": count_left, "remaining_money_fen": money_left}
    return RightOut.model_validate(data)
