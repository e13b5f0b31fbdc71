"""The recommender's hub cache against the real product-hub, content-hub and rights-hub apps.

The hubs run in-process (httpx.ASGITransport) on seeded SQLite databases; a switchable transport
stands for a hub going down. Time is a fake monotonic clock, so staleness needs no sleeping.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from content_hub.cli import main as content_hub_cli
from content_hub.main import create_app as create_content_hub
from content_hub.settings import ContentHubSettings
from product_hub.cli import main as product_hub_cli
from product_hub.main import create_app as create_product_hub
from product_hub.settings import ProductHubSettings
from qianmian_core.testing import auth_headers, dev_token
from recommender.service.hub_cache import (
    ContentHubClient,
    HubCache,
    HubCacheConfig,
    ProductHubClient,
    RightsHubClient,
)
from rights_hub.cli import main as rights_hub_cli
from rights_hub.main import create_app as create_rights_hub
from rights_hub.settings import RightsHubSettings

DEV_TOKENS = Path("config/dev-tokens.yaml")
pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Switchable(httpx.AsyncBaseTransport):
    """An ASGI transport that can be switched off, as if the hub went down."""

    def __init__(self, app: object) -> None:
        self.inner = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        self.down = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        return await self.inner.handle_async_request(request)


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@dataclass
class Hubs:
    products: Switchable
    content: Switchable
    rights: Switchable
    content_app: object


@pytest.fixture(scope="module")
def urls(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    var = tmp_path_factory.mktemp("hubs")
    urls = {
        "product": f"sqlite:///{var / 'product-hub.db'}",
        "content": f"sqlite:///{var / 'content-hub.db'}",
        "rights": f"sqlite:///{var / 'rights-hub.db'}",
    }
    mp = pytest.MonkeyPatch()
    mp.setenv("PRODUCT_HUB_DATABASE_URL", urls["product"])
    mp.setenv("CONTENT_HUB_DATABASE_URL", urls["content"])
    mp.setenv("RIGHTS_HUB_DATABASE_URL", urls["rights"])
    try:
        assert product_hub_cli(["migrate"]) == 0
        assert product_hub_cli(["seed"]) == 0
        assert content_hub_cli(["seed"]) == 0
        assert rights_hub_cli(["seed"]) == 0
    finally:
        mp.undo()
    return urls


@pytest.fixture
def hubs(urls: dict[str, str]) -> Iterator[Hubs]:
    common = {"environment": "test", "auth_tokens_file": DEV_TOKENS}
    content_app = create_content_hub(ContentHubSettings(database_url=urls["content"], **common))
    return Hubs(
        products=Switchable(create_product_hub(ProductHubSettings(database_url=urls["product"], **common))),
        content=Switchable(content_app),
        rights=Switchable(create_rights_hub(RightsHubSettings(database_url=urls["rights"], **common))),
        content_app=content_app,
    )


@dataclass
class Rig:
    cache: HubCache
    clock: FakeClock
    hubs: Hubs


@pytest.fixture
async def rig(hubs: Hubs) -> AsyncIterator[Rig]:
    token = dev_token("recommender")
    clients = (
        ProductHubClient("http://product-hub.test", token, transport=hubs.products),
        ContentHubClient("http://content-hub.test", token, transport=hubs.content),
        RightsHubClient("http://rights-hub.test", token, transport=hubs.rights),
    )
    clock = FakeClock()
    cache = HubCache(*clients, HubCacheConfig(ttl_s=15, max_staleness_s=30), clock=clock)
    yield Rig(cache, clock, hubs)
    await cache.stop()
    for client in clients:
        await client.aclose()


async def test_first_refresh_loads_all_three_hubs(rig: Rig) -> None:
    report = await rig.cache.refresh()
    assert report.refreshed == ("product-hub", "content-hub", "rights-hub"), report.failed
    assert rig.cache.degraded_reasons == ()
    catalogue = rig.cache.catalogue
    assert len(catalogue) >= 10
    assert all(p.channels for p in catalogue.values())
    deposit = catalogue["DEP-1Y-01"]
    assert deposit.product_type == "deposit"
    assert deposit.risk_rating is None
    # every content entry indexes an approved variant of a product in a channel it has
    app_content = rig.cache.content_for("DEP-1Y-01", "app")
    assert [e.content_id for e in app_content] == ["CNT-DEP-1Y-01"]
    assert app_content[0].variant["title"]
    rights = rig.cache.affordable_rights(segments=frozenset({"wealth", "payroll"}), lifecycle_stage="active")
    assert rights
    assert all(r.remaining_count > 0 for r in rights)


async def test_retired_content_disappears_within_one_refresh(rig: Rig) -> None:
    await rig.cache.refresh()
    assert rig.cache.content_for("INS-MED-01", "app")
    candidate = rig.cache.candidate_product(rig.cache.catalogue["INS-MED-01"], "app")
    assert candidate.content_approved
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=rig.hubs.content_app),  # type: ignore[arg-type]
        base_url="http://content-hub.test",
    ) as console:
        item = (await console.get("/v1/content/CNT-INS-MED-01", headers=auth_headers("console-alice"))).json()
        resp = await console.post(
            f"/v1/content/CNT-INS-MED-01/versions/{item['serving_version']}/transitions",
            json={"to": "retired", "comment": "withdrawn"},
            headers=auth_headers("console-alice"),
        )
        assert resp.status_code == 200, resp.text
    rig.clock.t += 15  # one TTL later: the next refresh
    await rig.cache.refresh()
    assert rig.cache.content_for("INS-MED-01", "app") == ()
    assert not rig.cache.candidate_product(rig.cache.catalogue["INS-MED-01"], "app").content_approved
    assert rig.cache.content_for("DEP-1Y-01", "app")  # the rest of the index is untouched


async def test_a_hub_going_down_keeps_the_last_snapshot_then_degrades(rig: Rig) -> None:
    await rig.cache.refresh()
    products_before = dict(rig.cache.catalogue)
    for transport in (rig.hubs.products, rig.hubs.content, rig.hubs.rights):
        transport.down = True

    rig.clock.t += 15
    report = await rig.cache.refresh()
    assert report.refreshed == ()
    assert set(report.failed) == {"product-hub", "content-hub", "rights-hub"}
    # within the staleness bound: the last snapshots keep serving, nothing is degraded yet
    assert rig.cache.degraded_reasons == ()
    assert rig.cache.content_for("DEP-1Y-01", "app")
    assert rig.cache.affordable_rights(segments=frozenset({"wealth"}), lifecycle_stage="active")

    rig.clock.t += 16  # 31 s since the last good fetch: beyond the 30 s bound
    await rig.cache.refresh()
    assert rig.cache.degraded_reasons == (
        "product_catalogue_stale",
        "content_index_unavailable",
        "rights_unavailable",
    )
    assert rig.cache.content_for("DEP-1Y-01", "app") == ()
    assert rig.cache.affordable_rights(segments=frozenset({"wealth"}), lifecycle_stage="active") == ()
    assert dict(rig.cache.catalogue) == products_before  # the last good catalogue, flagged degraded
    assert rig.cache.status()["content-hub"]["last_error"] == "DependencyUnavailableError"

    for transport in (rig.hubs.products, rig.hubs.content, rig.hubs.rights):
        transport.down = False
    await rig.cache.refresh()
    assert rig.cache.degraded_reasons == ()
    assert rig.cache.content_for("DEP-1Y-01", "app")


async def test_only_one_hub_down_degrades_only_that_hub(rig: Rig) -> None:
    await rig.cache.refresh()
    rig.hubs.rights.down = True
    rig.clock.t += 31
    await rig.cache.refresh()
    assert rig.cache.degraded_reasons == ("rights_unavailable",)
    assert rig.cache.content_for("DEP-1Y-01", "app")


async def test_background_task_refreshes_and_swaps(hubs: Hubs) -> None:
    token = dev_token("recommender")
    clients = (
        ProductHubClient("http://product-hub.test", token, transport=hubs.products),
        ContentHubClient("http://content-hub.test", token, transport=hubs.content),
        RightsHubClient("http://rights-hub.test", token, transport=hubs.rights),
    )
    cache = HubCache(*clients, HubCacheConfig(ttl_s=0.05, max_staleness_s=0.5))
    hubs.content.down = True
    await cache.start()
    try:
        assert "content_index_unavailable" in cache.degraded_reasons
        hubs.content.down = False
        for _ in range(100):
            await asyncio.sleep(0.02)
            if not cache.degraded_reasons:
                break
        assert cache.degraded_reasons == ()
        assert cache.content_for("DEP-1Y-01", "app")
    finally:
        await cache.stop()
        for client in clients:
            await client.aclose()


def test_ttl_and_staleness_are_bounded_by_30_seconds() -> None:
    with pytest.raises(ValueError, match="less than or equal to 30"):
        HubCacheConfig(ttl_s=31)
    with pytest.raises(ValueError, match="less than or equal to 30"):
        HubCacheConfig(max_staleness_s=45)
    with pytest.raises(ValueError, match="at least ttl_s"):
        HubCacheConfig(ttl_s=20, max_staleness_s=10)
