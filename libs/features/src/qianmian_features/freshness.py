"""Freshness: a feature value is usable only while its view's TTL has not run out.

Feast applies a view's TTL to point-in-time joins and to materialisation windows, but
*not* to online reads: a value written months ago is still returned. The decision
pipeline therefore checks every value's event timestamp and treats a stale value as
missing, and says which features were missing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any


@dataclass(frozen=True, slots=True)
class FeatureValue:
    """One online feature value with the event timestamp of the row it came from."""

    value: Any
    event_timestamp: datetime | None

    @property
    def present(self) -> bool:
        """Whether the online store had a value at all."""
        return self.value is not None and self.event_timestamp is not None


def view_of(feature_ref: str) -> str:
    """``"customer_profile:aum"`` -> ``"customer_profile"``."""
    view, sep, _ = feature_ref.partition(":")
    if not sep:
        raise ValueError(f"feature reference must be 'view:feature', got {feature_ref!r}")
    return view


def check_freshness(
    values_with_ts: Mapping[str, FeatureValue],
    ttl_by_view: Mapping[str, timedelta],
    now: datetime | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """Split one entity's features into fresh values and the names of missing ones.

    ``values_with_ts`` is keyed by ``"view:feature"``. A feature is missing when the
    online store had no value, or when its event timestamp is older than ``now`` minus
    its view's TTL (a view without TTL, or with a zero TTL, never goes stale). A value
    stamped in the future is accepted: clocks of pushing services drift by seconds.
    Returns ``(fresh_values, missing)``, ``missing`` sorted for stable audit records.
    """
    now = now or datetime.now(UTC)
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    fresh: dict[str, Any] = {}
    missing: list[str] = []
    for ref, feature in values_with_ts.items():
        ttl = ttl_by_view.get(view_of(ref)) or timedelta(0)
        stale = (
            ttl > timedelta(0) and feature.event_timestamp is not None and feature.event_timestamp < now - ttl
        )
        if stale or not feature.present:
            missing.append(ref)
        else:
            fresh[ref] = feature.value
    return fresh, sorted(missing)
