"""Derived activity features (the ``customer_activity`` view of docs/data-contract.md) and their push.

The row is computed from the customer's moments and contact history at ``as_of`` and pushed to
Feast's ``customer_activity_push`` source. It never carries a personal identifier: only the
pseudonymous customer id, counters, a moment type and timestamps.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

ACTIVITY_COLUMNS: tuple[str, ...] = (
    "customer_id",
    "impressions_7d",
    "impressions_30d",
    "clicks_7d",
    "clicks_30d",
    "purchases_30d",
    "moments_7d",
    "moments_30d",
    "logins_7d",
    "last_moment_type",
    "last_moment_ts",
    "event_timestamp",
    "created_timestamp",
)

#: Contact actions counted as each feature.
IMPRESSION_ACTIONS = frozenset({"impression"})
CLICK_ACTIONS = frozenset({"click"})
PURCHASE_ACTIONS = frozenset({"convert"})


class FeaturePusher(Protocol):
    """Where derived feature rows go; Feast in production, a list in most tests."""

    def push_customer_activity(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Write the rows (``ACTIVITY_COLUMNS``; timestamps as ISO 8601 strings) to the online store."""


class NullPusher:
    """Discards pushes (Feast disabled)."""

    def push_customer_activity(self, rows: Sequence[Mapping[str, Any]]) -> None:
        return None


class RecordingPusher:
    """Keeps every pushed row in memory; can be told to fail, to exercise the outbox."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.fail = False

    def push_customer_activity(self, rows: Sequence[Mapping[str, Any]]) -> None:
        if self.fail:
            raise ConnectionError("feature store unavailable")
        self.rows.extend(dict(row) for row in rows)


@dataclass(frozen=True, slots=True)
class ContactFact:
    """One contact-history entry as the feature computation sees it."""

    action: str
    at: datetime


@dataclass(frozen=True, slots=True)
class MomentFact:
    """One moment as the feature computation sees it."""

    event_type: str
    occurred_at: datetime


def activity_row(
    customer_id: str,
    moments: Iterable[MomentFact],
    contacts: Iterable[ContactFact],
    as_of: datetime,
) -> dict[str, Any]:
    """The ``customer_activity`` feature row at ``as_of`` (windows end at ``as_of``)."""
    d7, d30 = as_of - timedelta(days=7), as_of - timedelta(days=30)
    row: dict[str, Any] = dict.fromkeys(ACTIVITY_COLUMNS, 0)
    last: MomentFact | None = None
    for moment in moments:
        if moment.occurred_at > as_of:
            continue
        if last is None or moment.occurred_at > last.occurred_at:
            last = moment
        if moment.occurred_at >= d30:
            row["moments_30d"] += 1
            if moment.occurred_at >= d7:
                row["moments_7d"] += 1
                if moment.event_type == "app_login":
                    row["logins_7d"] += 1
    for contact in contacts:
        if contact.at > as_of or contact.at < d30:
            continue
        recent = contact.at >= d7
        if contact.action in IMPRESSION_ACTIONS:
            row["impressions_30d"] += 1
            row["impressions_7d"] += int(recent)
        elif contact.action in CLICK_ACTIONS:
            row["clicks_30d"] += 1
            row["clicks_7d"] += int(recent)
        elif contact.action in PURCHASE_ACTIONS:
            row["purchases_30d"] += 1
    row["customer_id"] = customer_id
    row["last_moment_type"] = last.event_type if last else ""
    row["last_moment_ts"] = int(last.occurred_at.timestamp()) if last else 0
    row["event_timestamp"] = as_of.isoformat()
    row["created_timestamp"] = as_of.isoformat()
    return row
