"""The seed catalogue: realistic rights, authored and activated by different people, seeded once."""

from __future__ import annotations

from datetime import UTC, datetime

from rights_hub.database import open_database
from rights_hub.service import CatalogueService, RightFilter
from rights_hub.service.seed import SEED_ACTIVATOR, SEED_AUTHOR, SEED_RIGHTS, seed_rights


def test_seed_is_idempotent_and_maker_checker_clean(database_url: str) -> None:
    database = open_database(database_url)
    try:
        catalogue = CatalogueService(database)
        now = datetime.now(UTC)
        first = seed_rights(catalogue, now)
        assert (first.created, first.activated, first.unchanged) == (len(SEED_RIGHTS), len(SEED_RIGHTS), 0)
        again = seed_rights(catalogue, now)
        assert (again.created, again.activated, again.unchanged) == (0, 0, len(SEED_RIGHTS))
        rights = catalogue.list_rights(RightFilter(affordable=True)).items
        assert len(rights) == len(SEED_RIGHTS) >= 10
        assert {(r.author, r.activated_by) for r in rights} == {(SEED_AUTHOR, SEED_ACTIVATOR)}
        assert {r.right_type for r in rights} >= {
            "coupon",
            "cashback",
            "points_multiplier",
            "fee_waiver",
            "rate_boost",
            "partner_perk",
        }
        names = {r.name for r in rights}
        assert any("瑞幸" in n for n in names)
        assert any("滴滴" in n for n in names)
        wealth = catalogue.list_rights(RightFilter(affordable=True, segment="wealth")).items
        assert "RT-WM-RATE-BOOST-20BP" in {r.right_id for r in wealth}
    finally:
        database.dispose()
