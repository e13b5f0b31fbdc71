"""Fixtures: a freshly migrated SQLite database per test, the app, dev tokens, an in-memory profile double."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from content_hub.database import migrate
from content_hub.errors import CustomerNotFoundError
from content_hub.main import create_app
from content_hub.profile import CustomerTraits, ProfileUnavailableError
from content_hub.settings import ContentHubSettings
from fastapi.testclient import TestClient
from qianmian_core.testing import assert_error, auth_headers, copy_of_sqlite, migrated_sqlite_template

REPO_ROOT = Path(__file__).resolve().parents[3]
DEV_TOKENS = REPO_ROOT / "config" / "dev-tokens.yaml"
DISCLOSURE = "理财非存款、产品有风险、投资须谨慎"


class InMemoryProfiles:
    """Test double of the profile service at the boundary: traits from a dict, or a simulated outage."""

    def __init__(self) -> None:
        self.traits: dict[str, CustomerTraits] = {
            "C-WEALTH": CustomerTraits(frozenset({"wealth", "payroll"}), "active"),
            "C-CARD": CustomerTraits(frozenset({"credit_card"}), "active"),
            "C-NEW": CustomerTraits(frozenset(), "new"),
        }
        self.unavailable = False

    async def traits_for(self, customer_id: str) -> CustomerTraits:
        if self.unavailable:
            raise ProfileUnavailableError("the profile service is unreachable")
        try:
            return self.traits[customer_id]
        except KeyError:
            raise CustomerNotFoundError(f"customer {customer_id} not found") from None


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One SQLite file migrated to head; each test gets a copy (much faster than migrating each time)."""
    return migrated_sqlite_template(tmp_path_factory.mktemp("template"), "content-hub.db", migrate)


@pytest.fixture
def database_url(tmp_path: Path, migrated_template: Path) -> str:
    return copy_of_sqlite(migrated_template, tmp_path)


@pytest.fixture
def settings(database_url: str) -> ContentHubSettings:
    return ContentHubSettings(database_url=database_url, environment="test", auth_tokens_file=DEV_TOKENS)


@pytest.fixture
def profiles() -> InMemoryProfiles:
    return InMemoryProfiles()


@pytest.fixture
def client(settings: ContentHubSettings, profiles: InMemoryProfiles) -> Iterator[TestClient]:
    app = create_app(settings, profiles=profiles)
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture(scope="session")
def headers() -> Callable[[str], dict[str, str]]:
    """``headers("console-alice")``: the Authorization header of a dev client."""
    return lambda client_name: auth_headers(client_name, str(DEV_TOKENS))


def wm_variants(**overrides: Any) -> dict[str, Any]:
    """Compliant variants for every channel of content about WM-R2-90 (an R2 wealth product)."""
    variants: dict[str, Any] = {
        "app": {
            "title": "{product_name}",
            "subtitle": f"业绩比较基准{{rate}}｜{DISCLOSURE}",
            "image_ref": "asset://banners/wm-r2-90.png",
            "deep_link": "qianmian://products/WM-R2-90",
        },
        "mini_program": {
            "title": "{product_name}",
            "description": f"{{segment_name}}客户专享，期限{{term_days}}天。{DISCLOSURE}",
            "image_ref": "asset://cards/wm-r2-90.png",
            "page_path": "pages/product/detail?id=WM-R2-90",
        },
        "push": {
            "title": "{product_name}上新",
            "body": f"{{salutation}}，业绩比较基准{{rate}}。{DISCLOSURE}",
        },
        "sms": {"text": f"{{salutation}}，{{product_name}}业绩比较基准{{rate}}。{DISCLOSURE}"},
        "remote_agent": {
            "opening": "您好，{salutation}，我是千面银行远程银行客户经理。",
            "value_proposition": "{product_name}期限{term_days}天，业绩比较基准{rate}。",
            "objection_answers": [
                {"objection": "会亏钱吗？", "answer": "本产品为非保本浮动收益产品，净值会有波动。"},
                {"objection": "没时间。", "answer": "稍后把说明发到您的手机银行。"},
            ],
            "risk_statement": f"{DISCLOSURE}。本产品风险等级R2。",
            "closing": "感谢接听，再见。",
        },
    }
    variants.update(overrides)
    return variants


@pytest.fixture
def content_payload() -> Callable[..., dict[str, Any]]:
    """A valid create body; keyword arguments override fields."""

    def build(**overrides: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "content_id": "CNT-TEST-1",
            "title": "稳健理财90天 全渠道",
            "product_id": "WM-R2-90",
            "segments": ["wealth"],
            "variants": wm_variants(),
        }
        body.update(overrides)
        return body

    return build


@pytest.fixture(scope="session")
def error_of() -> Callable[..., dict[str, Any]]:
    return assert_error


@pytest.fixture
def create_content(
    client: TestClient,
    headers: Callable[[str], dict[str, str]],
    content_payload: Callable[..., dict[str, Any]],
) -> Callable[..., dict[str, Any]]:
    """Create content as console-alice and move version 1 to ``status`` (reviewed by console-bob)."""

    def create(status: str = "draft", **overrides: Any) -> dict[str, Any]:
        response = client.post(
            "/v1/content", json=content_payload(**overrides), headers=headers("console-alice")
        )
        assert response.status_code == 201, response.text
        version: dict[str, Any] = response.json()
        steps = {
            "draft": [],
            "in_review": ["in_review"],
            "approved": ["in_review", "approved"],
            "rejected": ["in_review", "rejected"],
            "retired": ["in_review", "approved", "retired"],
        }[status]
        for target in steps:
            version = transition(client, headers, version["content_id"], version["version"], target)
        return version

    return create


def transition(
    client: TestClient,
    headers: Callable[[str], dict[str, str]],
    content_id: str,
    version: int,
    target: str,
    actor: str | None = None,
    comment: str | None = "ok",
) -> dict[str, Any]:
    """Move a version; reviews by console-bob, the rest by console-alice unless ``actor`` is given."""
    actor = actor or ("console-bob" if target in {"approved", "rejected"} else "console-alice")
    response = client.post(
        f"/v1/content/{content_id}/versions/{version}/transitions",
        json={"to": target, "comment": comment},
        headers=headers(actor),
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.fixture
def move(client: TestClient, headers: Callable[[str], dict[str, str]]) -> Callable[..., dict[str, Any]]:
    """``move(content_id, version, target, actor=None, comment="ok")``: a successful transition."""
    return lambda content_id, version, target, actor=None, comment="ok": transition(
        client, headers, content_id, version, target, actor, comment
    )


@pytest.fixture(scope="session")
def variants() -> Callable[..., dict[str, Any]]:
    """``variants(push={...})``: the compliant WM-R2-90 variants with some replaced."""
    return wm_variants
