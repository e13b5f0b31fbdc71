"""The approval workflow: draft -> approved -> active -> retired (approved or active may retire)."""

from __future__ import annotations

from typing import Final

#: For each target status, the statuses a product may move to it from.
ALLOWED_TRANSITIONS: Final[dict[str, frozenset[str]]] = {
    "approved": frozenset({"draft"}),
    "active": frozenset({"approved"}),
    "retired": frozenset({"approved", "active"}),
}


def can_transition(from_status: str, to_status: str) -> bool:
    """True when the workflow allows moving from ``from_status`` to ``to_status``."""
    return from_status in ALLOWED_TRANSITIONS.get(to_status, frozenset())
