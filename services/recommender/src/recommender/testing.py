"""In-memory stand-ins for profile, the hubs and the Feast online store, for the recommender's tests.

They answer in the wire shapes of the real services (``ProductWire``, ``ContentWire``, ``RightWire``,
``ProfileView``, Feast ``FeatureValue`` rows with event timestamps), so the decision path runs
unchanged; the cross-service tests under ``tests/`` run the same path against the real services and
a real Feast store. Test support only: nothing in the service imports this module.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from qianmian_bankgen.catalogue import CATALOGUE
from qianmian_core.db import Database
from qianmian_features.freshness import FeatureValue
from qianmian_rules import CustomerFacts

from recommender.repository.audit import AuditRecord, AuditRepository
from recommender.service.hub_cache import ContentWire, ProductWire, RightWire
from recommender.service.profile import CustomerNotFoundError, ProfileUnavailableError, ProfileView

if TYPE_CHECKING:
    from fastapi.testclient import TestClient

NOW = datetime.now(UTC)
CHANNELS = ("app", "mini_program", "push", "sms", "remote_agent", "online_rm")


class Products:
    async def active_products(self) -> list[ProductWire]:
        return [
            ProductWire(
                product_id=p.product_id,
                name=p.name,
                product_type=p.product_type,
                risk_rating=p.risk_rating,
                eligibility=p.eligibility,
                channels=list(p.channels),
                value=p.value,
                sold=i,
                status="active",
            )
            for i, p in enumerate(CATALOGUE)
        ]


class Content:
    async def approved_content(self) -> list[ContentWire]:
        return [
            ContentWire(
                content_id=f"CNT-{p.product_id}",
                version=1,
                status="approved",
                product_id=p.product_id,
                variants={c: {"title": f"{p.name} ({c})"} for c in CHANNELS},
            )
            for p in CATALOGUE
        ]


class Rights:
    async def affordable_rights(self) -> list[RightWire]:
        return [
            RightWire(
                right_id="R-BOOST",
                name="rate boost",
                right_type="rate_boost",
                status="active",
                valid_from=NOW - timedelta(days=1),
                valid_until=NOW + timedelta(days=30),
                remaining_count=10,
            )
        ]


class Down:
    async def active_products(self) -> list[ProductWire]:
        raise RuntimeError("down")


WEALTHY = CustomerFacts(
    age=45,
    aum=2_000_000,
    region="shanghai",
    segments=frozenset({"wealth"}),
    lifecycle_stage="active",
    risk_level=3,
    risk_expires_at=NOW + timedelta(days=200),
)
ALL_CONSENT = MappingProxyType(dict.fromkeys(CHANNELS, True))


class FakeProfile:
    def __init__(self) -> None:
        self.down = False
        self.people: dict[str, ProfileView] = {
            "C000000001": ProfileView(WEALTHY, ALL_CONSENT, True),
            "C000000002": ProfileView(WEALTHY, ALL_CONSENT, False),
            "C000000003": ProfileView(
                WEALTHY.model_copy(update={"risk_level": None, "risk_expires_at": None}), ALL_CONSENT, True
            ),
        }

    async def customer(self, customer_id: str) -> ProfileView:
        if self.down:
            raise ProfileUnavailableError("the profile service is unreachable")
        if customer_id not in self.people:
            raise CustomerNotFoundError(f"customer {customer_id} not found")
        return self.people[customer_id]


class StaticFeatures:
    """Online features as a Feast store would answer them: fresh rows for every known customer.

    ``stale`` customers get rows stamped beyond the views' TTL; ``down`` makes every read fail.
    """

    ttl_by_view = MappingProxyType(
        {"customer_profile": timedelta(days=62), "customer_activity": timedelta(days=14)}
    )

    def __init__(self) -> None:
        self.down = False
        self.stale: set[str] = set()
        self.reads = 0

    def read(self, customer_ids: Sequence[str]) -> dict[str, dict[str, FeatureValue]]:
        self.reads += 1
        if self.down:
            raise ConnectionError("online store unreachable")
        out: dict[str, dict[str, FeatureValue]] = {}
        for cid in customer_ids:
            when = NOW - (timedelta(days=90) if cid in self.stale else timedelta(hours=1))
            out[cid] = {
                "customer_profile:seg_wealth": FeatureValue(1, when),
                "customer_profile:lifecycle_stage": FeatureValue("active", when),
                "customer_profile:age_band": FeatureValue("45-54", when),
                "customer_profile:aum": FeatureValue(2_000_000.0, when),
                "customer_profile:risk_level": FeatureValue(3, when),
                "customer_activity:last_moment_type": FeatureValue("", when),
                "customer_activity:last_moment_ts": FeatureValue(0, when),
            }
        return out


def record_decision(
    database: Database,
    offers: Sequence[tuple[str, str | None]],
    *,
    customer_id: str = "C000000042",
    channel: str = "app",
    created_at: datetime | None = None,
    experiment: tuple[str, str] | None = None,
) -> str:
    """Write a decision's audit record as the decision API does, with exactly these bundles
    (``(product_id, right_id or None)``, best first); returns the decision id. For feedback tests."""
    decision_id = f"dec_{uuid.uuid4().hex}"
    bundles = [
        {
            "product": {"id": product_id, "name": product_id, "type": "deposit", "risk_rating": None},
            "content": None,
            "right": None if right_id is None else {"id": right_id, "type": "rate_boost"},
            "score": 1.0,
            "reason_codes": ["popular_in_segment"],
            "explanation": {"zh": "", "en": ""},
        }
        for product_id, right_id in offers
    ]
    record = AuditRecord(
        decision_id=decision_id,
        created_at=created_at or datetime.now(UTC),
        customer_id=customer_id,
        channel=channel,
        placement="home_banner",
        mode="fallback",
        model_version=None,
        experiment_id=None if experiment is None else experiment[0],
        experiment_arm=None if experiment is None else experiment[1],
        request={"customer_id": customer_id, "channel": channel, "placement": "home_banner"},
        features={},
        candidates=[],
        response={"decision_id": decision_id, "mode": "fallback", "bundles": bundles},
    )
    with database.session() as session:
        AuditRepository(session).append_many([record.prepared()])
    return decision_id


def start_experiment(
    client: TestClient, definition: dict[str, Any], tokens_file: str = "config/dev-tokens.yaml"
) -> str:
    """Create, submit, approve (a second principal) and start an experiment through the API; its id."""
    from qianmian_core.testing import auth_headers

    who = {c: auth_headers(c, tokens_file) for c in ("console-alice", "console-bob")}
    created = client.post("/v1/experiments", json=definition, headers=who["console-alice"])
    assert created.status_code == 201, created.text
    experiment_id: str = created.json()["experiment_id"]
    for action, by in (("submit", "console-alice"), ("approve", "console-bob"), ("start", "console-alice")):
        resp = client.post(
            f"/v1/experiments/{experiment_id}/status", json={"action": action}, headers=who[by]
        )
        assert resp.status_code == 200, resp.text
    return experiment_id
