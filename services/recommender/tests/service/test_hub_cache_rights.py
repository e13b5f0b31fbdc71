"""Which rights the hub cache offers a customer: audience limits hold in non-personalised mode too."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from recommender.service.hub_cache import HubCache, HubCacheConfig, RightWire
from recommender.testing import NOW, Content, Products


class LimitedRights:
    async def affordable_rights(self) -> list[RightWire]:
        common = {
            "status": "active",
            "valid_from": NOW - timedelta(days=1),
            "valid_until": NOW + timedelta(days=30),
        }
        return [
            RightWire(right_id="R-ALL", name="all", right_type="coupon", remaining_count=5, **common),
            RightWire(
                right_id="R-NEW",
                name="new",
                right_type="coupon",
                remaining_count=5,
                lifecycle_stages=["new"],
                **common,
            ),
            RightWire(
                right_id="R-WEALTH",
                name="wealth",
                right_type="coupon",
                remaining_count=5,
                segments=["wealth"],
                **common,
            ),
        ]


def test_non_personalised_customers_get_only_rights_open_to_everyone() -> None:
    cache = HubCache(Products(), Content(), LimitedRights(), HubCacheConfig(ttl_s=30))
    asyncio.run(cache.refresh())

    def ids(**audience: object) -> set[str]:
        return {r.right_id for r in cache.affordable_rights(at=NOW, **audience)}  # type: ignore[arg-type]

    assert ids(segments=None, lifecycle_stage=None) == {"R-ALL"}
    assert ids(segments=frozenset({"wealth"}), lifecycle_stage="new") == {"R-ALL", "R-NEW", "R-WEALTH"}
    assert ids(segments=frozenset(), lifecycle_stage="active") == {"R-ALL"}
