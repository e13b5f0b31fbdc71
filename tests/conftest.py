"""The embedded stack the cross-service tests share: a generated bank, Feast, a model, four services.

``seeded_stack(customers, seed)`` generates a bank as of today, applies and materialises a copy of
the Feast repository (SQLite online store), trains the LightFM hybrid and approves it, migrates and
seeds profile, product-hub, content-hub and rights-hub on SQLite, migrates the recommender's
database, and builds the four apps plus the recommender's hub cache over in-process transports.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from content_hub.cli import main as content_hub_cli
from content_hub.main import create_app as create_content_hub
from content_hub.settings import ContentHubSettings
from fastapi import FastAPI
from product_hub.cli import main as product_hub_cli
from product_hub.main import create_app as create_product_hub
from product_hub.settings import ProductHubSettings
from profile_service.cli import main as profile_cli
from profile_service.main import create_app as create_profile
from profile_service.service.activity import NullPusher
from profile_service.settings import ProfileSettings
from qianmian_bankgen.generator import generate
from qianmian_core.testing import dev_token
from qianmian_features import FeastEnvironment, FeatureSettings, apply, materialize, open_store
from recommender.cli import main as recommender_cli
from recommender.database import migrate as migrate_recommender
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

REPO_ROOT = Path(__file__).resolve().parents[1]
DEV_TOKENS = Path("config/dev-tokens.yaml")
COMMON: dict[str, Any] = {"environment": "test", "auth_tokens_file": DEV_TOKENS}


@dataclass
class Stack:
    bank: Path
    var: Path
    store: Any  # feast.FeatureStore, applied and materialised
    urls: dict[str, str]  # profile, product, content, rights, rec
    profile_app: FastAPI
    product_app: FastAPI
    content_app: FastAPI
    rights_app: FastAPI
    token: str  # the recommender's dev token for the other services

    @property
    def registry_dir(self) -> Path:
        return self.var / "models"

    @staticmethod
    def transport(app: FastAPI) -> httpx.ASGITransport:
        return httpx.ASGITransport(app=app)

    def hub_cache(self) -> HubCache:
        t = self.transport
        return HubCache(
            ProductHubClient("http://product-hub.test", self.token, transport=t(self.product_app)),
            ContentHubClient("http://content-hub.test", self.token, transport=t(self.content_app)),
            RightsHubClient("http://rights-hub.test", self.token, transport=t(self.rights_app)),
            HubCacheConfig(ttl_s=30),
        )


@pytest.fixture(scope="module")
def seeded_stack(tmp_path_factory: pytest.TempPathFactory) -> Callable[[int, int], Stack]:
    def build(customers: int, seed: int) -> Stack:
        bank = tmp_path_factory.mktemp("bank")
        generate(customers=customers, seed=seed, as_of=datetime.now(UTC).date(), out=bank)
        var = tmp_path_factory.mktemp("var")
        repo = var / "feature_repo"
        shutil.copytree(
            REPO_ROOT / "feature_repo", repo, ignore=shutil.ignore_patterns("data", "__pycache__")
        )
        store = open_store(
            FeatureSettings(feast_env=FeastEnvironment.LOCAL, feature_repo=repo, data_dir=str(bank))
        )
        apply(store)
        materialize(store, end=datetime.now(UTC))
        urls = {
            name: f"sqlite:///{var / f'{name}.db'}"
            for name in ("profile", "product", "content", "rights", "rec")
        }
        mp = pytest.MonkeyPatch()
        mp.setenv("PROFILE_DATABASE_URL", urls["profile"])
        mp.setenv("PRODUCT_HUB_DATABASE_URL", urls["product"])
        mp.setenv("CONTENT_HUB_DATABASE_URL", urls["content"])
        mp.setenv("RIGHTS_HUB_DATABASE_URL", urls["rights"])
        mp.setenv("RECOMMENDER_REGISTRY_DIR", str(var / "models"))
        mp.setenv("RECOMMENDER_LOG_LEVEL", "WARNING")
        try:
            assert recommender_cli(["train", "--data", str(bank), "--model", "lightfm", "--approve"]) == 0
            assert profile_cli(["seed", "--data", str(bank)]) == 0
            assert product_hub_cli(["migrate"]) == 0
            assert product_hub_cli(["seed"]) == 0
            assert content_hub_cli(["seed"]) == 0
            assert rights_hub_cli(["seed"]) == 0
        finally:
            mp.undo()
        migrate_recommender(urls["rec"])
        return Stack(
            bank=bank,
            var=var,
            store=store,
            urls=urls,
            profile_app=create_profile(
                ProfileSettings(database_url=urls["profile"], **COMMON), pusher=NullPusher()
            ),
            product_app=create_product_hub(ProductHubSettings(database_url=urls["product"], **COMMON)),
            content_app=create_content_hub(ContentHubSettings(database_url=urls["content"], **COMMON)),
            rights_app=create_rights_hub(RightsHubSettings(database_url=urls["rights"], **COMMON)),
            token=dev_token("recommender"),
        )

    return build
