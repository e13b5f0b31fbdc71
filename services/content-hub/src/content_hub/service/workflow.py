"""The review workflow of one version.

    draft -> in_review -> approved | rejected;  approved | rejected -> retired
    approved -> superseded (automatically, when a newer version of the item is approved)

Rework is not a move back: a rejected (or approved) version stays as it was, and a *new* draft version
is started from it, so that the archive keeps every version exactly as it was reviewed.
"""

from __future__ import annotations

from typing import Final

#: For each target status, the statuses a version may move to it from (by an explicit request).
ALLOWED_TRANSITIONS: Final[dict[str, frozenset[str]]] = {
    "in_review": frozenset({"draft"}),
    "approved": frozenset({"in_review"}),
    "rejected": frozenset({"in_review"}),
    "retired": frozenset({"approved", "rejected"}),
}

#: Versions still being worked on: an item has at most one of them at a time.
OPEN_STATUSES: Final[frozenset[str]] = frozenset({"draft", "in_review"})

#: Review decisions: taken by someone other than the version's author.
REVIEW_DECISIONS: Final[frozenset[str]] = frozenset({"approved", "rejected"})


def can_transition(from_status: str, to_status: str) -> bool:
    """True when the workflow allows moving from ``from_status`` to ``to_status``."""
    return from_status in ALLOWED_TRANSITIONS.get(to_status, frozenset())
