"""Fast JSON responses: orjson-encoded bytes, bypassing FastAPI's generic encoder on hot paths."""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import BaseModel
from starlette.responses import Response

_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_UTC_Z


def _default(obj: Any) -> Any:
    if isinstance(obj, BaseModel):
        return obj.model_dump(mode="json")
    if isinstance(obj, set | frozenset):
        return sorted(obj)
    raise TypeError(f"cannot encode {type(obj).__name__}")


def dumps(payload: Any) -> bytes:
    """Encode with orjson (datetimes as ISO 8601 with Z, pydantic models via model_dump)."""
    return orjson.dumps(payload, default=_default, option=_OPTIONS)


def json_response(payload: Any, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    """An ``application/json`` response encoded with orjson."""
    return Response(dumps(payload), status_code=status_code, media_type="application/json", headers=headers)
