"""The catalogue workflow: draft -> active <-> paused; draft, active or paused -> retired.

Moving a right to ``active`` (first activation or resumption) is the checker's act and must be done
by someone other than the author, so nobody can start spending budget on their own say-so.
"""

from __future__ import annotations

from typing import Final

#: For each target status, the statuses a right may move to it from.
ALLOWED_TRANSITIONS: Final[dict[str, frozenset[str]]] = {
    "active": frozenset({"draft", "paused"}),
    "paused": frozenset({"active"}),
    "retired": frozenset({"draft", "active", "paused"}),
}


def can_transition(from_status: str, to_status: str) -> bool:
    """True when the workflow allows moving from ``from_status`` to ``to_status``."""
    return from_status in ALLOWED_TRANSITIONS.get(to_status, frozenset())
