"""The ``Idempotency-Key`` header every idempotent operation of every service reads the same way."""

# No ``from __future__ import annotations``: FastAPI must see the header annotation as an object,
# since it closes over ``description``.

from collections.abc import Callable, Coroutine
from typing import Annotated, Any, Final

from fastapi import Header

from qianmian_core.errors import BadRequestError

#: A UUID or any client-made key of up to 128 safe characters.
IDEMPOTENCY_KEY_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"


class IdempotencyKeyRequiredError(BadRequestError):
    """The request has no Idempotency-Key header."""

    code = "idempotency_key_required"


def idempotency_key_dependency(what: str, description: str) -> Callable[..., Coroutine[Any, Any, str]]:
    """A FastAPI dependency returning the request's key; 400 ``idempotency_key_required`` without one.

    ``what`` names the operations in the error message ("ledger operations need …"). An ``async def``:
    FastAPI runs a plain ``def`` dependency in its thread pool, a hand-off per request.
    """

    async def idempotency_key(
        key: Annotated[
            str | None,
            Header(alias="Idempotency-Key", pattern=IDEMPOTENCY_KEY_PATTERN, description=description),
        ] = None,
    ) -> str:
        if key is None:
            raise IdempotencyKeyRequiredError(
                f"{what} need an Idempotency-Key header, reused unchanged on every retry"
            )
        return key

    return idempotency_key


__all__ = ["IDEMPOTENCY_KEY_PATTERN", "IdempotencyKeyRequiredError", "idempotency_key_dependency"]
