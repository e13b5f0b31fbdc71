"""content-hub's render against the real profile service, seeded from the synthetic bank.

Content is the sample content ``content-hub seed`` writes and approves through the workflow; customer
traits come from profile's eligibility-facts contract over content-hub's own HTTP client. The expected
salutations follow content-hub's README rules and are computed here from the generator's parquet files,
and the generator's ``customer_pii.parquet`` is the list of what must never reach rendered text.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from content_hub.cli import main as content_hub_cli
from content_hub.main import create_app as create_content_hub
from content_hub.profile import ProfileTraitsClient
from content_hub.settings import ContentHubSettings
from fastapi.testclient import TestClient
from profile_service.cli import main as profile_cli
from profile_service.main import create_app as create_profile
from profile_service.service.activity import NullPusher
from profile_service.settings import ProfileSettings
from qianmian_bankgen.catalogue import by_id
from qianmian_bankgen.generator import generate
from qianmian_core.masking import mask_card_number, mask_id_number, mask_mobile, mask_name
from qianmian_core.testing import auth_headers, dev_token

DEV_TOKENS = Path("config/dev-tokens.yaml")
DISCLOSURE = "理财非存款、产品有风险、投资须谨慎"
NEUTRAL = "尊敬的客户"
#: content-hub's README: salutation by the customer's most valuable segment, in this order.
SALUTATION_BY_SEGMENT = {
    "wealth": "尊敬的财富客户",
    "credit_card": "尊敬的信用卡客户",
    "payroll": "尊敬的代发客户",
    "mortgage": "尊敬的按揭客户",
    "social_security": "尊敬的社保卡客户",
}
#: Seeded content that targets every segment, so the salutation is the customer's own best segment.
UNTARGETED = "CNT-DEP-1Y-01"


@pytest.fixture(scope="module")
def bank(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bank")
    generate(customers=400, seed=11, as_of=datetime.now(UTC).date(), out=out)
    return out


@pytest.fixture(scope="module")
def databases(bank: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """SQLite URLs of profile and content-hub, seeded through their own CLIs."""
    var = tmp_path_factory.mktemp("var")
    profile_url = f"sqlite:///{var / 'profile.db'}"
    content_url = f"sqlite:///{var / 'content-hub.db'}"
    mp = pytest.MonkeyPatch()
    mp.setenv("PROFILE_DATABASE_URL", profile_url)
    mp.setenv("CONTENT_HUB_DATABASE_URL", content_url)
    assert profile_cli(["seed", "--data", str(bank)]) == 0
    assert content_hub_cli(["seed"]) == 0
    mp.undo()
    return profile_url, content_url


@pytest.fixture(scope="module")
def client(databases: tuple[str, str]) -> Iterator[TestClient]:
    profile_url, url = databases
    profile_app = create_profile(
        ProfileSettings(database_url=profile_url, environment="test", auth_tokens_file=DEV_TOKENS),
        pusher=NullPusher(),
    )
    profiles = ProfileTraitsClient(
        "http://profile.test", dev_token("content-hub"), transport=httpx.ASGITransport(app=profile_app)
    )
    app = create_content_hub(
        ContentHubSettings(database_url=url, environment="test", auth_tokens_file=DEV_TOKENS),
        profiles=profiles,
    )
    with TestClient(app) as test_client:
        yield test_client


def render(client: TestClient, content_id: str, customer_id: str, channel: str = "push") -> httpx.Response:
    return client.get(
        "/v1/content/render",
        params={"content_id": content_id, "channel": channel, "customer_id": customer_id},
        headers=auth_headers("recommender"),
    )


def expected_salutation(customer: pd.Series) -> str:
    segments = set(str(customer["segments"]).split(","))
    for segment, salutation in SALUTATION_BY_SEGMENT.items():
        if segment in segments:
            return salutation
    return "尊敬的新客户" if customer["lifecycle_stage"] == "new" else NEUTRAL


def customers_by_salutation(bank: Path, per_salutation: int = 3) -> list[tuple[str, str]]:
    """``(customer_id, expected salutation)`` for a few customers of each salutation the bank has."""
    customers = pd.read_parquet(bank / "customers.parquet")
    customers["expected"] = customers.apply(expected_salutation, axis=1)
    picked = customers.groupby("expected").head(per_salutation)
    return list(zip(picked["customer_id"], picked["expected"], strict=True))


def test_push_salutation_follows_the_customers_segment(client: TestClient, bank: Path) -> None:
    sample = customers_by_salutation(bank)
    seen = {salutation for _, salutation in sample}
    # The bank gives us the segments that matter most, a new customer and a neutral one.
    assert {*SALUTATION_BY_SEGMENT.values(), "尊敬的新客户", NEUTRAL} <= seen
    for customer_id, salutation in sample:
        response = render(client, UNTARGETED, customer_id)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["fields"]["body"].startswith(salutation + "，"), (customer_id, body["fields"])
        assert (body["personalised"], body["degraded"], body["degraded_reason"]) == (True, False, None)
        assert body["customer_id"] == customer_id


def test_rendered_text_carries_no_personal_data_of_the_customer(client: TestClient, bank: Path) -> None:
    pii = pd.read_parquet(bank / "customer_pii.parquet").set_index("customer_id")
    sample = customers_by_salutation(bank, per_salutation=2)
    for customer_id, _ in sample:
        row = pii.loc[customer_id]
        forbidden = {
            str(row["name"]),
            mask_name(str(row["name"])),
            str(row["mobile"]),
            mask_mobile(str(row["mobile"])),
            str(row["id_number"]),
            mask_id_number(str(row["id_number"])),
            str(row["card_number"]),
            mask_card_number(str(row["card_number"])),
        }
        for channel in ("push", "sms", "remote_agent", "mini_program"):
            response = render(client, "CNT-WM-R2-90", customer_id, channel)
            assert response.status_code == 200, response.text
            rendered = json.dumps(response.json(), ensure_ascii=False)
            leaked = sorted(value for value in forbidden if value in rendered)
            assert not leaked, (customer_id, channel, leaked)


def test_push_of_every_r2_plus_product_carries_the_risk_disclosure(client: TestClient, bank: Path) -> None:
    listing = client.get("/v1/content", params={"channel": "push"}, headers=auth_headers("recommender"))
    assert listing.status_code == 200, listing.text
    catalogue = by_id()
    risky = [
        item["content_id"]
        for item in listing.json()["items"]
        if (rating := catalogue[item["product_id"]].risk_rating) is not None and rating >= 2
    ]
    assert len(risky) >= 3  # WM-R2-90, WM-R3-365, WM-PAY-R2, FD-BOND-01 ...
    customer_id = customers_by_salutation(bank)[0][0]
    for content_id in risky:
        body: dict[str, Any] = render(client, content_id, customer_id).json()
        assert DISCLOSURE in body["fields"]["body"], content_id
        assert DISCLOSURE in body["text"], content_id


def test_unknown_customer_is_404_through_profile(client: TestClient) -> None:
    response = render(client, UNTARGETED, "C999999999")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "customer_not_found"


def test_profile_down_renders_neutral_and_says_so(databases: tuple[str, str], bank: Path) -> None:
    _, url = databases
    app = create_content_hub(
        ContentHubSettings(
            database_url=url,
            environment="test",
            auth_tokens_file=DEV_TOKENS,
            profile_url="http://127.0.0.1:9",  # discard port: nothing listens
        )
    )
    wealthy = next(c for c, salutation in customers_by_salutation(bank) if salutation == "尊敬的财富客户")
    with TestClient(app) as down:
        response = render(down, UNTARGETED, wealthy)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["fields"]["body"].startswith(NEUTRAL + "，")
    assert (body["personalised"], body["degraded"]) == (False, True)
    assert "profile" in body["degraded_reason"]
