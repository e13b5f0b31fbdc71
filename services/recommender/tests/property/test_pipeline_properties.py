"""Properties of whole decisions: random customers, catalogues, content, rights and history, real service.

Every example drives the real ``POST /v1/decisions`` of apps built by ``create_app`` (TestClient,
lifespan started once per module) over in-memory stand-ins for the hubs, profile and Feast. Each
example draws a catalogue (types, risk ratings, eligibility rules, channels, sale windows, quotas,
statuses), content per product and channel (approved or not, in or out of its window, targeted or
not, linked to a right or not), rights (active or not, in or out of window, with or without budget
left), a customer (facts, consents, opt-out), the freshness of their features, whether a trained
LightFM model is served, earlier contacts and cool-downs, and a few requests at controlled times
(the app's ``DecisionService.now``). Every answer is then checked against the rules, recomputed here
from ``qianmian_rules`` and the stand-ins' data, never from the service's own verdicts:

- suitability, eligibility, holdings, channel, consent, sale window/quota, cool-down;
- content: one the stand-in marks approved, in window, for that channel and audience;
- right: active, in window, budget left, audience open to the customer;
- caps (daily per channel, weekly, push weekly, agent 30 days) against the contact history kept here;
- quiet hours for outbound channels; mode and degraded reasons consistent with what was down;
- an opted-out customer gets the same answer from a second app whose profile segments, features
  and model differ (the eligibility-relevant facts being equal).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st
from qianmian_bankgen.catalogue import CATALOGUE
from qianmian_core.testing import auth_headers
from qianmian_features.freshness import FeatureValue
from qianmian_rules import (
    LIFECYCLE_STAGES,
    MOMENT_TYPES,
    PRODUCT_TYPES,
    SEGMENTS,
    CustomerFacts,
    EligibilityRules,
    check_eligibility,
    check_suitability,
)
from recommender.database import migrate
from recommender.main import create_app
from recommender.ml.data import TrainingData
from recommender.ml.models.lightfm_hybrid import LightFMHybrid
from recommender.ml.registry import ModelRegistry
from recommender.models import ContactEvent, ContactLock, Cooldown
from recommender.repository.contacts import ContactRepository
from recommender.service.contacts import ContactService
from recommender.service.decisions import DecisionService
from recommender.service.hub_cache import (
    ContentWire,
    HubCache,
    HubCacheConfig,
    ProductWire,
    RightWire,
)
from recommender.service.policies import CHANNELS, ContactPolicy
from recommender.service.profile import ProfileView
from recommender.settings import RecommenderSettings
from recommender.testing import NOW, FakeProfile, StaticFeatures
from sqlalchemy import delete, func, select

REPO_ROOT = Path(__file__).resolve().parents[4]
DEV_TOKENS = REPO_ROOT / "config" / "dev-tokens.yaml"
SHANGHAI = ZoneInfo("Asia/Shanghai")
POLICY = ContactPolicy()  # the defaults the apps run with
CAP_CODES = frozenset({"cap_daily_channel", "cap_weekly_all", "cap_weekly_push", "cap_agent_30d"})

#: Segments product rules may require; the others only vary between the two apps of the
#: non-personalised comparison (so that the eligibility-relevant facts stay equal).
RULE_SEGMENTS = ("payroll", "mortgage", "credit_card", "wealth")
FREE_SEGMENTS = tuple(s for s in SEGMENTS if s not in RULE_SEGMENTS)
REGIONS = ("shanghai", "beijing", "chengdu")
PRODUCT_IDS = tuple(p.product_id for p in CATALOGUE)
EXTRA_IDS = ("PX-NEW-01", "PX-NEW-02")  # unknown to the model
RIGHT_TYPES = ("rate_boost", "coupon", "cashback")
TAGS = ("代发专享", "消费", "账单分期")
# Hypothesis leans on the first element of sampled_from (and on False, 0, empty): the lists below
# start with the values that let an offer through, so that many answers carry bundles to check.

#: Where a content item of kind "some_channels" has variants (at least one channel).
content_channels = st.frozensets(st.sampled_from(CHANNELS), min_size=1)
#: Where a product of kind "some_channels" is sold: any subset (none included).
channel_sets = st.frozensets(st.sampled_from(CHANNELS))


# --- stand-ins -------------------------------------------------------------------------------------


class Hubs:
    """product-hub, content-hub and rights-hub at once, answering whatever the example put there.

    Unlike the real hubs it also returns inactive products, unapproved content and rights without
    budget, so the tests show that the recommender never serves them.
    """

    def __init__(self) -> None:
        self.products: list[ProductWire] = []
        self.content: list[ContentWire] = []
        self.rights: list[RightWire] = []

    async def active_products(self) -> list[ProductWire]:
        return list(self.products)

    async def approved_content(self) -> list[ContentWire]:
        return list(self.content)

    async def affordable_rights(self) -> list[RightWire]:
        return list(self.rights)


class ManualHubCache(HubCache):
    """A hub cache refreshed only when the test says so (no background refresh mid-example)."""

    async def start(self) -> None:
        await self.refresh()


class Features(StaticFeatures):
    """``StaticFeatures`` whose values can be overridden per example (same event timestamps)."""

    def __init__(self) -> None:
        super().__init__()
        self.overrides: dict[str, Any] = {}

    def read(self, customer_ids: Sequence[str]) -> dict[str, dict[str, FeatureValue]]:
        rows = super().read(customer_ids)
        for row in rows.values():
            stamp = next(iter(row.values())).event_timestamp
            for name, value in self.overrides.items():
                row[name] = FeatureValue(value, stamp)
        return rows


@dataclass
class Clock:
    """The decision time of the apps' ``DecisionService`` (set before every request)."""

    at: datetime = NOW

    def __call__(self) -> datetime:
        return self.at


@dataclass
class Side:
    """One running app and the stand-ins only it reads."""

    client: TestClient
    cache: HubCache
    service: DecisionService
    profile: FakeProfile
    features: Features
    model_version: str | None


@dataclass
class Harness:
    hubs: Hubs
    clock: Clock
    with_model: Side
    without_model: Side

    def side(self, model: bool) -> Side:
        return self.with_model if model else self.without_model


# --- the apps, built once per module ---------------------------------------------------------------


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, data: TrainingData) -> ModelRegistry:
    registry = ModelRegistry(tmp_path_factory.mktemp("models"))
    model = LightFMHybrid(no_components=8, epochs=2, random_state=3, num_threads=1).fit(data)
    registry.approve(registry.register(model, data_window={"test": True}).version)
    return registry


@pytest.fixture(scope="module")
def harness(
    tmp_path_factory: pytest.TempPathFactory, registry: ModelRegistry, data: TrainingData
) -> Iterator[Harness]:
    hubs, clock = Hubs(), Clock()

    def build(name: str, registry_dir: Path) -> tuple[FastAPI, Side]:
        url = f"sqlite:///{tmp_path_factory.mktemp(name) / 'recommender.db'}"
        migrate(url)
        settings = RecommenderSettings(
            database_url=url,
            registry_dir=str(registry_dir),
            environment="test",
            auth_tokens_file=DEV_TOKENS,
            profile_cache_ttl_s=0,  # every decision reads the example's profile and features
            feature_cache_ttl_s=0,
        )
        cache = ManualHubCache(hubs, hubs, hubs, HubCacheConfig(ttl_s=30))
        profile, features = FakeProfile(), Features()
        app = create_app(
            settings,
            catalogue=data.products.to_list(),
            install_signal=False,
            hub_cache=cache,
            profile=profile,
            features=features,
        )
        service: DecisionService = app.state.decisions
        service.now = clock
        return app, Side(TestClient(app), cache, service, profile, features, None)

    app_a, with_model = build("with-model", registry.root)
    app_b, without_model = build("without-model", tmp_path_factory.mktemp("empty-registry"))
    with with_model.client, without_model.client:
        loaded = app_a.state.model_holder.current
        assert loaded is not None, "the approved LightFM model is served"
        assert app_b.state.model_holder.current is None
        with_model.model_version = loaded.manifest.version
        yield Harness(hubs, clock, with_model, without_model)


# --- strategies --------------------------------------------------------------------------------------


def _maybe(strategy: st.SearchStrategy[Any], p_none: int = 3) -> st.SearchStrategy[Any]:
    """``None`` about ``p_none`` times in ``p_none + 1`` (and first)."""
    return st.sampled_from(range(p_none + 1)).flatmap(lambda n: strategy if n == p_none else st.none())


@st.composite
def eligibility_rules(draw: st.DrawFn, product_ids: list[str]) -> EligibilityRules:
    """A few random conditions (each present half the time or less)."""
    min_aum = draw(_maybe(st.sampled_from([10_000, 0, 50_000, 500_000]), 1))
    max_aum = draw(_maybe(st.sampled_from([1_000_000, 5_000_000]), 2))
    min_age = draw(_maybe(st.sampled_from([18, 25, 40, 60]), 1))
    max_age = draw(_maybe(st.sampled_from([30, 55, 65, 80]), 2))
    if min_age is not None and max_age is not None and min_age > max_age:
        min_age, max_age = max_age, min_age
    holdings = st.sampled_from([*product_ids, *PRODUCT_TYPES])
    return EligibilityRules(
        min_aum=min_aum,
        max_aum=max_aum,
        min_age=min_age,
        max_age=max_age,
        segments=tuple(
            draw(_maybe(st.sets(st.sampled_from(RULE_SEGMENTS), min_size=1, max_size=2), 1)) or ()
        ),
        regions=tuple(draw(_maybe(st.sets(st.sampled_from(REGIONS), min_size=1, max_size=2), 2)) or ()),
        lifecycle_stages=tuple(
            draw(_maybe(st.sets(st.sampled_from(LIFECYCLE_STAGES), min_size=1, max_size=4), 2)) or ()
        ),
        required_holdings=tuple(draw(_maybe(st.sets(holdings, min_size=1, max_size=2), 3)) or ()),
        excluded_holdings=tuple(draw(_maybe(st.sets(holdings, min_size=1, max_size=2), 3)) or ()),
    )


def _window(draw: st.DrawFn, t0: datetime) -> tuple[datetime | None, datetime | None]:
    """A window (hours around the example's first request): current, past, future, or opening or
    closing between the example's requests; either end may be open."""
    start = draw(st.sampled_from([-24 * 30, 3, -2, 30, None]))
    end = draw(st.sampled_from([24 * 30, -1, 5, 40, None]))
    return (
        None if start is None else t0 + timedelta(hours=start),
        None if end is None else t0 + timedelta(hours=end),
    )


#: Kinds of products: plainly offerable (to most customers), or maybe not for one reason each.
PRODUCT_KINDS = (
    "plain",
    "plain",
    "plain",
    "rated",
    "rules",
    "some_channels",
    "inactive",
    "sale_window",
    "quota",
)


@st.composite
def products(draw: st.DrawFn, t0: datetime) -> list[ProductWire]:
    ids = sorted(
        draw(st.sets(st.sampled_from(PRODUCT_IDS), min_size=3, max_size=16))
        | draw(st.sets(st.sampled_from(EXTRA_IDS), max_size=1))
    )
    out = []
    for pid in ids:
        kind = draw(st.sampled_from(PRODUCT_KINDS))
        sale_start, sale_end = _window(draw, t0) if kind == "sale_window" else (None, None)
        out.append(
            ProductWire(
                product_id=pid,
                name=f"产品 {pid}",
                product_type=draw(st.sampled_from(PRODUCT_TYPES)),
                risk_rating=draw(st.sampled_from([1, 2, 3, 4, 5] if kind == "rated" else [None, None, 1, 2])),
                eligibility=draw(eligibility_rules(ids)) if kind == "rules" else EligibilityRules(),
                channels=sorted(draw(channel_sets) if kind == "some_channels" else CHANNELS),
                sale_start=sale_start,
                sale_end=sale_end,
                quota=draw(st.integers(0, 5)) if kind == "quota" else None,
                sold=draw(st.integers(0, 6)),
                value=draw(st.sampled_from([0.5, 1.0, 1.0, 2.5])),
                attributes={"tags": sorted(draw(st.sets(st.sampled_from(TAGS), max_size=2)))},
                status=draw(st.sampled_from(["inactive", "retired"])) if kind == "inactive" else "active",
            )
        )
    return out


def _audience(draw: st.DrawFn, customer: frozenset[str], vocabulary: tuple[str, ...]) -> list[str]:
    """An audience list that includes one of the customer's values half the time."""
    own: bool = draw(st.booleans())
    pool = sorted(customer) if customer and own else list(vocabulary)
    chosen: set[str] = draw(st.sets(st.sampled_from(pool), min_size=1, max_size=2))
    return sorted(chosen)


#: Kinds of rights: servable, or not for one reason each.
RIGHT_KINDS = ("open", "open", "exhausted", "paused", "expired", "future", "segments", "lifecycle")


@st.composite
def rights(draw: st.DrawFn, t0: datetime, segments: frozenset[str], lifecycle: str) -> list[RightWire]:
    out = []
    for n in range(draw(st.sampled_from([2, 0, 1, 3, 4]))):
        kind = draw(st.sampled_from(RIGHT_KINDS))
        start, end = {"expired": (-24 * 10, -1), "future": (6, 24 * 30)}.get(kind, (-24 * 10, 24 * 30))
        if kind == "open" and draw(st.booleans()):  # open now, closing or opening between requests
            start, end = draw(st.sampled_from([(-2, 4), (3, 24 * 30)]))
        out.append(
            RightWire(
                right_id=f"R-{n}",
                name=f"权益 {n}",
                right_type=draw(st.sampled_from(RIGHT_TYPES)),
                status="paused" if kind == "paused" else "active",
                segments=_audience(draw, segments, SEGMENTS) if kind == "segments" else [],
                lifecycle_stages=_audience(draw, frozenset({lifecycle}), LIFECYCLE_STAGES)
                if kind == "lifecycle"
                else [],
                valid_from=t0 + timedelta(hours=start),
                valid_until=t0 + timedelta(hours=end),
                remaining_count=0 if kind == "exhausted" else draw(st.sampled_from([3, 1])),
            )
        )
    return out


#: Kinds of content items: plainly servable, or not (for some channels, audiences or times) for one
#: reason each. A product often has several; the service must pick a servable one or none.
CONTENT_KINDS = (
    "plain",
    "plain",
    "unapproved",
    "out_of_window",
    "window_edge",
    "some_channels",
    "targeted",
    "no_variant",
)


@st.composite
def content(
    draw: st.DrawFn, t0: datetime, product_ids: list[str], right_ids: list[str], segments: frozenset[str]
) -> list[ContentWire]:
    out = []
    for pid in product_ids:
        for n in range(draw(st.sampled_from([1, 2, 0, 2, 3]))):
            kind = draw(st.sampled_from(CONTENT_KINDS))
            valid_from: datetime | None = None
            valid_until: datetime | None = None
            if kind == "out_of_window":
                start, end = draw(st.sampled_from([(3, None), (30, None), (-24 * 30, -1), (None, -1)]))
            elif kind == "window_edge":  # opens or closes between the example's requests
                start, end = draw(st.sampled_from([(-24 * 30, 5), (None, 2), (3, None), (-2, 40)]))
            else:
                start, end = None, None
            valid_from = None if start is None else t0 + timedelta(hours=start)
            valid_until = None if end is None else t0 + timedelta(hours=end)
            channels = draw(content_channels) if kind == "some_channels" else frozenset(CHANNELS)
            out.append(
                ContentWire(
                    content_id=f"CNT-{pid}-{n}",
                    version=draw(st.integers(1, 3)),
                    status=draw(st.sampled_from(["draft", "pending_review", "retired"]))
                    if kind == "unapproved"
                    else "approved",
                    product_id=pid,
                    right_id=draw(st.sampled_from([*right_ids, None, "R-GHOST"])),
                    segments=_audience(draw, segments, SEGMENTS) if kind == "targeted" else [],
                    variants={
                        c: None
                        if kind == "no_variant" and draw(st.booleans())
                        else {"title": f"{pid}#{n} ({c})"}
                        for c in sorted(channels)
                    },
                    valid_from=valid_from,
                    valid_until=valid_until,
                )
            )
    return out


@st.composite
def feature_values(draw: st.DrawFn) -> dict[str, Any]:
    """Overrides of some Feast values, incl. a recent moment (personalised paths use it)."""
    overrides: dict[str, Any] = {}
    if draw(st.booleans()):
        overrides["customer_activity:last_moment_type"] = draw(st.sampled_from(MOMENT_TYPES))
        overrides["customer_activity:last_moment_ts"] = int((NOW - timedelta(hours=2)).timestamp())
    if draw(st.booleans()):
        overrides["customer_profile:seg_wealth"] = 0
        overrides["customer_profile:seg_payroll"] = 1
        overrides["customer_profile:aum"] = float(draw(st.sampled_from([0, 80_000, 9_000_000])))
    return overrides


@dataclass(frozen=True)
class Request:
    channel: str
    after_minutes: int
    limit: int
    moment: str | None


@dataclass(frozen=True)
class Scenario:
    t0: datetime
    customer_id: str
    products: list[ProductWire]
    content: list[ContentWire]
    rights: list[RightWire]
    facts: CustomerFacts
    #: Segments of the same customer as the second app of the non-personalised comparison sees them.
    other_segments: frozenset[str]
    consents: Mapping[str, bool]
    personalised: bool
    profile_down: bool
    features: str  # fresh, stale or down
    other_features: str
    overrides: dict[str, Any]
    other_overrides: dict[str, Any]
    with_model: bool
    history: list[tuple[str, int]]  # (channel, minutes before t0)
    cooldowns: dict[str, int]  # product id -> cool-down end, hours after t0
    requests: list[Request]


WARM = tuple(f"C{n:09d}" for n in range(1, 60))  # in the bank the model was trained on
COLD = tuple(f"C9{n:08d}" for n in range(10))


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    # The first request on the next day or the one after (bank time), at an hour inside or outside
    # the quiet hours (21:00-08:00) of the outbound channels.
    midnight = NOW.astimezone(SHANGHAI).replace(hour=0, minute=0, second=0, microsecond=0)
    t0 = midnight + timedelta(
        days=draw(st.sampled_from([1, 2])),
        hours=draw(st.sampled_from([10, 14, 9, 20, 22, 3, 7, 12, 21])),
        minutes=draw(st.integers(0, 59)),
    )
    catalogue = draw(products(t0))
    product_ids = [p.product_id for p in catalogue]
    risk = draw(st.sampled_from([4, 5, 3, None, 1, 2, 3, 5]))
    expires_in_h = draw(
        st.sampled_from([24 * 200, 24 * 200, -24 * 30, 24 * 200, -1, 3])
    )  # expired, or expiring mid-way
    base_segments = draw(st.sets(st.sampled_from(RULE_SEGMENTS), max_size=3))
    facts = CustomerFacts(
        age=draw(st.sampled_from([45, 16, 22, 30, 38, 52, 61, 70, 85])),
        aum=draw(st.sampled_from([300_000, 0, 5_000, 60_000, 2_000_000, 8_000_000])),
        region=draw(st.sampled_from(REGIONS)),
        segments=frozenset(base_segments | draw(st.sets(st.sampled_from(FREE_SEGMENTS)))),
        lifecycle_stage=draw(st.sampled_from(LIFECYCLE_STAGES)),
        held_product_ids=frozenset(draw(st.sets(st.sampled_from(product_ids), max_size=2))),
        held_product_types=frozenset(draw(st.sets(st.sampled_from(PRODUCT_TYPES), max_size=2))),
        risk_level=risk,
        risk_expires_at=None if draw(st.integers(0, 7)) == 7 else t0 + timedelta(hours=expires_in_h),
    )
    right_list = draw(rights(t0, facts.segments, facts.lifecycle_stage))
    content_list = draw(content(t0, product_ids, [r.right_id for r in right_list], facts.segments))
    consents: dict[str, bool] = {
        c: answer
        for c in CHANNELS
        if (answer := draw(st.sampled_from([True, True, True, True, True, False, None]))) is not None
    }
    # Requests concentrate on a couple of channels so that caps are reached.
    request_channels = draw(st.lists(st.sampled_from(CHANNELS), min_size=1, max_size=2))
    requests = [
        Request(
            channel=draw(st.sampled_from(request_channels)),
            after_minutes=draw(st.sampled_from([0, 1, 30, 240, 600])),
            limit=draw(st.integers(1, 10)),
            moment=draw(_maybe(st.sampled_from(MOMENT_TYPES), 2)),
        )
        for _ in range(draw(st.integers(1, 6)))
    ]
    # Earlier contacts (minutes before the first request): some recent enough to fill a channel's
    # daily cap, some weeks busy enough to fill the weekly cap across channels.
    hour, day = 60, 24 * 60
    ago = [5, hour, 6 * hour, 23 * hour, 26 * hour, *(n * day for n in (2, 3, 4, 5, 6, 8, 29))]
    history: list[tuple[str, int]] = [
        (draw(st.sampled_from(request_channels + list(CHANNELS))), draw(st.sampled_from(ago)))
        for _ in range(draw(st.sampled_from([0, 2, 1, 6, 14, 20])))
    ]
    # Dismissed products: cool-down over, ending between the requests, or running throughout.
    cooldowns = {
        draw(st.sampled_from(product_ids)): draw(st.sampled_from([24 * 7, 2, -5]))
        for _ in range(draw(st.sampled_from([1, 0, 2, 3])))
    }
    return Scenario(
        t0=t0,
        customer_id=draw(st.sampled_from(WARM + COLD)),
        products=catalogue,
        content=content_list,
        rights=right_list,
        facts=facts,
        other_segments=frozenset(base_segments | draw(st.sets(st.sampled_from(FREE_SEGMENTS)))),
        consents=MappingProxyType(consents),
        personalised=draw(st.sampled_from([True, True, False])),
        profile_down=draw(st.integers(0, 19)) == 19,
        features=draw(st.sampled_from(["fresh", "fresh", "fresh", "stale", "down"])),
        other_features=draw(st.sampled_from(["fresh", "stale", "down"])),
        overrides=draw(feature_values()),
        other_overrides=draw(feature_values()),
        with_model=draw(st.sampled_from([True, True, False])),
        history=history,
        cooldowns=cooldowns,
        requests=requests,
    )


# --- running an example ------------------------------------------------------------------------------


@dataclass
class Expectation:
    """What one side of an example knows, to check its answers independently."""

    facts: CustomerFacts | None  # None: profile down
    consents: Mapping[str, bool]
    opted_out: bool
    features: str
    model_version: str | None
    cooldowns: dict[str, datetime]
    #: ``(channel, at)`` of every contact slot taken: the history plus every non-empty answer.
    contacts: list[tuple[str, datetime]] = field(default_factory=list)


def _prepare(
    side: Side, scenario: Scenario, segments: frozenset[str], features: str, overrides: dict[str, Any]
) -> Expectation:
    database = side.service.database
    cid = scenario.customer_id
    with database.session() as session:  # a clean history for the customer in this example
        for table in (ContactEvent, ContactLock, Cooldown):
            session.execute(delete(table).where(table.customer_id == cid))
    contacts = ContactService(database, POLICY)
    taken = []
    for n, (channel, minutes) in enumerate(sorted(scenario.history, key=lambda h: -h[1])):
        at = scenario.t0 - timedelta(minutes=minutes)
        if contacts.reserve(cid, channel, at, decision_id=f"pre-{n}").granted:
            taken.append((channel, at))
    cooldowns = {pid: scenario.t0 + timedelta(hours=h) for pid, h in scenario.cooldowns.items()}
    with database.session() as session:
        for pid, until in cooldowns.items():
            ContactRepository(session).start_cooldown(cid, pid, until, reason="dismissed", decision_id=None)
    # The history was rewritten behind the service's back: its contact ledger reads it afresh.
    side.service.ledger.forget(cid)
    facts = scenario.facts.model_copy(update={"segments": segments})
    side.profile.down = scenario.profile_down
    side.profile.people = {cid: ProfileView(facts, scenario.consents, scenario.personalised)}
    side.features.down = features == "down"
    side.features.stale = {cid} if features == "stale" else set()
    side.features.overrides = overrides
    report = asyncio.run(side.cache.refresh())
    assert not report.failed
    assert not side.cache.degraded_reasons
    return Expectation(
        facts=None if scenario.profile_down else facts,
        consents={} if scenario.profile_down else scenario.consents,
        opted_out=not scenario.profile_down and not scenario.personalised,
        features=features,
        model_version=side.model_version,
        cooldowns=cooldowns,
        contacts=taken,
    )


def _decide(side: Side, scenario: Scenario, request: Request) -> dict[str, Any]:
    body: dict[str, Any] = {
        "customer_id": scenario.customer_id,
        "channel": request.channel,
        "placement": "home_banner",
        "limit": request.limit,
    }
    if request.moment is not None:
        body["moment"] = {"type": request.moment}
    resp = side.client.post("/v1/decisions", json=body, headers=auth_headers("app-gateway"))
    assert resp.status_code == 200, resp.text
    answer: dict[str, Any] = resp.json()
    return answer


def _on_sale(product: ProductWire, at: datetime) -> bool:
    if product.status != "active":
        return False
    if product.sale_start is not None and at < product.sale_start:
        return False
    if product.sale_end is not None and at >= product.sale_end:
        return False
    return product.quota is None or product.sold < product.quota


def _in_window(start: datetime | None, end: datetime | None, at: datetime) -> bool:
    return (start is None or start <= at) and (end is None or at < end)


def _quiet(channel: str, at: datetime) -> bool:
    hour = at.astimezone(SHANGHAI).hour
    return channel in {"push", "sms", "remote_agent"} and (hour >= 21 or hour < 8)


def _full_caps(contacts: list[tuple[str, datetime]], channel: str, at: datetime) -> set[str]:
    """The caps of ``channel`` already full at ``at``, counted from the history kept here."""
    limits: dict[str, tuple[timedelta, int, set[str]]] = {
        "cap_daily_channel": (timedelta(days=1), POLICY.daily_per_channel, {channel}),
        "cap_weekly_all": (timedelta(days=7), POLICY.weekly_all_channels, set(CHANNELS)),
        "cap_weekly_push": (timedelta(days=7), POLICY.weekly_push, {"push"}),
        "cap_agent_30d": (timedelta(days=30), POLICY.agent_calls_30d, {"remote_agent"}),
    }
    full = set()
    for code, (window, limit, channels) in limits.items():
        if channel not in channels:
            continue
        if sum(1 for ch, when in contacts if ch in channels and when > at - window) >= limit:
            full.add(code)
    return full


def _check(
    answer: dict[str, Any], scenario: Scenario, request: Request, at: datetime, exp: Expectation
) -> None:
    """Every property of one answer, recomputed from the example's data."""
    channel, bundles = request.channel, answer["bundles"]
    # Mode and degraded reasons say exactly what was down.
    expected_degraded = ["profile_unavailable"] if exp.facts is None else []
    expected_degraded += {"fresh": [], "stale": ["features_stale"], "down": ["features_unavailable"]}[
        exp.features
    ]
    if exp.model_version is None:
        expected_degraded.append("model_unavailable")
    assert answer["degraded_reasons"] == expected_degraded
    if exp.opted_out:
        assert answer["mode"] == "non_personalised"
    elif expected_degraded:
        assert answer["mode"] == "fallback"
    else:
        assert answer["mode"] == "personalised"
    expected_version = exp.model_version if answer["mode"] == "personalised" else None
    assert answer["model_version"] == expected_version
    if exp.facts is None:  # profile down: no consent known, nothing offered
        assert bundles == []
    # Request-wide rules: quiet hours and caps, from the history kept here.
    quiet = _quiet(channel, at)
    full = _full_caps(exp.contacts, channel, at)
    assert ("quiet_hours" in answer["reason_codes"]) == quiet
    assert set(answer["reason_codes"]) & CAP_CODES == full
    assert ("contact_cap" in answer["reason_codes"]) == bool(full)
    if quiet or full:
        assert bundles == []
    assert len(bundles) <= request.limit
    types = [b["product"]["type"] for b in bundles]
    assert len(types) == len(set(types))
    products = {p.product_id: p for p in scenario.products}
    contents = {(c.content_id, c.version): c for c in scenario.content}
    rights = {r.right_id: r for r in scenario.rights}
    for bundle in bundles:
        facts = exp.facts
        assert facts is not None
        pid = bundle["product"]["id"]
        product = products[pid]
        assert _on_sale(product, at), pid
        assert bundle["product"]["type"] == product.product_type
        assert bundle["product"]["risk_rating"] == product.risk_rating
        assert check_suitability(product.risk_rating, facts, at) == [], pid
        assert check_eligibility(product.eligibility, facts) == [], pid
        assert pid not in facts.held_product_ids
        assert channel in product.channels
        assert exp.consents.get(channel) is True
        until = exp.cooldowns.get(pid)
        assert until is None or until <= at, "a dismissed product came back within its cool-down"
        # Content: approved, in window, for this channel and audience.
        shown = bundle["content"]
        assert shown is not None
        item = contents[(shown["id"], shown["version"])]
        assert item.status == "approved"
        assert item.product_id == pid
        assert shown["channel"] == channel
        assert item.variants.get(channel) is not None
        assert shown["fields"] == item.variants[channel]
        assert _in_window(item.valid_from, item.valid_until, at), "content served outside its window"
        if exp.opted_out:
            assert not item.segments, "targeted content for an opted-out customer"
        else:
            assert not item.segments or set(item.segments) & facts.segments
        # Right: active, in window, budget left, open to the customer.
        if bundle["right"] is not None:
            right = rights[bundle["right"]["id"]]
            assert bundle["right"]["type"] == right.right_type
            assert right.status == "active"
            assert right.remaining_count > 0
            assert right.valid_from <= at < right.valid_until
            if item.right_id is not None:
                assert right.right_id == item.right_id
            else:  # only a moment rule asks for a right by type (aum_drop: a rate boost)
                assert right.right_type == "rate_boost"
                assert not exp.opted_out
            if exp.opted_out:
                # Only rights open to everyone: no segment and no lifecycle limit.
                assert not right.segments
                assert not right.lifecycle_stages
            else:
                assert not right.segments or set(right.segments) & facts.segments
                assert not right.lifecycle_stages or facts.lifecycle_stage in right.lifecycle_stages
    if bundles:  # the answer took a contact slot: no cap was full before it (checked above)
        exp.contacts.append((channel, at))


def _decisions_held(side: Side, customer_id: str) -> int:
    with side.service.database.session() as session:
        return int(
            session.execute(
                select(func.count()).where(
                    ContactEvent.customer_id == customer_id, ContactEvent.kind == "decision"
                )
            ).scalar_one()
        )


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(scenario=scenarios())
def test_every_answer_keeps_every_rule(harness: Harness, scenario: Scenario) -> None:
    hubs, clock = harness.hubs, harness.clock
    hubs.products, hubs.content, hubs.rights = scenario.products, scenario.content, scenario.rights
    primary = harness.side(scenario.with_model)
    exp = _prepare(primary, scenario, scenario.facts.segments, scenario.features, scenario.overrides)
    # An opted-out customer is also asked of the other app: other segments, features and model.
    compare = exp.opted_out
    if compare:
        other = harness.side(not scenario.with_model)
        other_exp = _prepare(
            other, scenario, scenario.other_segments, scenario.other_features, scenario.other_overrides
        )
    at = scenario.t0
    for request in scenario.requests:
        at += timedelta(minutes=request.after_minutes)
        clock.at = at
        answer = _decide(primary, scenario, request)
        note(f"{request} at {at.isoformat()} → {answer['mode']} {answer['reason_codes']} {answer['bundles']}")
        _check(answer, scenario, request, at, exp)
        event(f"mode={answer['mode']}, bundles={'yes' if answer['bundles'] else 'no'}")
        event(f"rights served: {'yes' if any(b['right'] for b in answer['bundles']) else 'no'}")
        if any("cf_similar_customers" in b["reason_codes"] for b in answer["bundles"]):
            event("a bundle from the model's scores")
        if compare:
            again = _decide(other, scenario, request)
            _check(again, scenario, request, at, other_exp)
            assert again["mode"] == "non_personalised"
            assert again["bundles"] == answer["bundles"]  # ids, order, scores, content, explanations
            assert again["reason_codes"] == answer["reason_codes"]
            event(f"non-personalised comparison, bundles={'yes' if answer['bundles'] else 'no'}")
    # The durable contact history is the one checked above.
    assert _decisions_held(primary, scenario.customer_id) == len(exp.contacts)
    if compare:
        assert _decisions_held(other, scenario.customer_id) == len(other_exp.contacts)
