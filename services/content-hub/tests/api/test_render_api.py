"""Rendering per channel, only approved and in-window content, and the degraded path."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

Headers = Callable[[str], dict[str, str]]
DISCLOSURE = "理财非存款、产品有风险、投资须谨慎"


def render(client: TestClient, headers: Headers, **params: Any) -> Any:
    return client.get(
        "/v1/content/render", params={"content_id": "CNT-TEST-1", **params}, headers=headers("recommender")
    )


def test_push_is_filled_for_the_customer(
    client: TestClient, headers: Headers, create_content: Callable[..., dict[str, Any]]
) -> None:
    create_content("approved")
    body = render(client, headers, channel="push", customer_id="C-WEALTH").json()
    assert body["fields"] == {
        "title": "稳健理财R2·90天上新",
        "body": f"尊敬的财富客户，业绩比较基准2.70%。{DISCLOSURE}",
    }
    assert body["text"] == f"稳健理财R2·90天上新\n尊敬的财富客户，业绩比较基准2.70%。{DISCLOSURE}"
    assert (body["personalised"], body["degraded"], body["version"]) == (True, False, 1)
    assert len(body["fields"]["title"]) <= 20
    assert len(body["fields"]["body"]) <= 60


@pytest.mark.parametrize(
    ("customer_id", "salutation"),
    [("C-CARD", "尊敬的信用卡客户"), ("C-NEW", "尊敬的新客户"), (None, "尊敬的客户")],
)
def test_salutation_comes_from_segment_and_stage_only(
    client: TestClient,
    headers: Headers,
    create_content: Callable[..., dict[str, Any]],
    customer_id: str | None,
    salutation: str,
) -> None:
    create_content("approved")
    params = {"channel": "push"} | ({"customer_id": customer_id} if customer_id else {})
    body = render(client, headers, **params).json()
    assert body["fields"]["body"].startswith(salutation + "，")
    assert body["personalised"] is (customer_id is not None)


def test_agent_script_contains_the_mandatory_risk_statement(
    client: TestClient, headers: Headers, create_content: Callable[..., dict[str, Any]]
) -> None:
    create_content("approved")
    body = render(client, headers, channel="remote_agent", customer_id="C-WEALTH").json()
    assert DISCLOSURE in body["fields"]["risk_statement"]
    assert f"【风险提示（必读）】{DISCLOSURE}" in body["text"]
    assert body["text"].startswith("【开场白】您好，尊敬的财富客户")
    assert "期限90天，业绩比较基准2.70%" in body["text"]
    assert len(body["fields"]["objection_answers"]) == 2


def test_sms_carries_signature_and_opt_out_within_70(
    client: TestClient, headers: Headers, create_content: Callable[..., dict[str, Any]]
) -> None:
    create_content("approved")
    text = render(client, headers, channel="sms", customer_id="C-WEALTH").json()["text"]
    assert text.startswith("【千面银行】尊敬的财富客户，稳健理财R2·90天")
    assert text.endswith("。拒收请回复R")
    assert len(text) <= 70


def test_banner_and_card_keep_links_unfilled(
    client: TestClient, headers: Headers, create_content: Callable[..., dict[str, Any]]
) -> None:
    create_content("approved")
    app = render(client, headers, channel="app").json()["fields"]
    assert app["deep_link"] == "qianmian://products/WM-R2-90"
    assert app["subtitle"] == f"业绩比较基准2.70%｜{DISCLOSURE}"
    card = render(client, headers, channel="mini_program", customer_id="C-WEALTH").json()["fields"]
    assert card["description"].startswith("财富客户专享，期限90天")


@pytest.mark.parametrize("status", ["draft", "in_review", "rejected", "retired"])
def test_only_approved_content_renders(
    client: TestClient,
    headers: Headers,
    create_content: Callable[..., dict[str, Any]],
    error_of: Any,
    status: str,
) -> None:
    create_content(status)
    error_of(render(client, headers, channel="push"), 409, "content_not_approved")


def test_retired_content_stops_rendering_and_leaves_search(
    client: TestClient,
    headers: Headers,
    create_content: Callable[..., dict[str, Any]],
    move: Callable[..., dict[str, Any]],
    error_of: Any,
) -> None:
    create_content("approved")
    assert render(client, headers, channel="push").status_code == 200
    move("CNT-TEST-1", 1, "retired")
    error_of(render(client, headers, channel="push"), 409, "content_not_approved")
    assert client.get("/v1/content", headers=headers("recommender")).json()["total"] == 0


def test_validity_window_is_respected(
    client: TestClient, headers: Headers, create_content: Callable[..., dict[str, Any]], error_of: Any
) -> None:
    create_content(
        "approved", valid_from="2030-01-01T00:00:00+08:00", valid_until="2030-02-01T00:00:00+08:00"
    )
    inside, before, after = "2030-01-15T12:00:00Z", "2029-12-31T15:59:59Z", "2030-01-31T16:00:00Z"
    assert render(client, headers, channel="push", at=inside).status_code == 200
    assert (
        render(client, headers, channel="push", at="2029-12-31T16:00:00Z").status_code == 200
    )  # inclusive start
    error = error_of(render(client, headers, channel="push", at=before), 409, "content_out_of_window")
    assert error["details"]["valid_from"].startswith("2029-12-31T16:00:00")
    error_of(render(client, headers, channel="push", at=after), 409, "content_out_of_window")  # exclusive end
    # Now (after 2030-02-01 the content would be expired; before 2030 it is not valid yet) it is not served.
    error_of(render(client, headers, channel="push"), 409, "content_out_of_window")


def test_profile_down_renders_neutral_and_says_so(
    client: TestClient, headers: Headers, create_content: Callable[..., dict[str, Any]], profiles: Any
) -> None:
    create_content("approved")
    profiles.unavailable = True
    response = render(client, headers, channel="push", customer_id="C-WEALTH")
    assert response.status_code == 200
    body = response.json()
    assert body["fields"]["body"].startswith("尊敬的客户，")
    assert (body["degraded"], body["personalised"]) == (True, False)
    assert "profile" in body["degraded_reason"]


def test_unknown_things_are_404(
    client: TestClient,
    headers: Headers,
    create_content: Callable[..., dict[str, Any]],
    variants: Callable[..., dict[str, Any]],
    error_of: Any,
) -> None:
    error_of(render(client, headers, channel="push"), 404, "content_not_found")
    all_variants = variants()
    create_content("approved", variants={"push": all_variants["push"]})
    error_of(render(client, headers, channel="sms"), 404, "variant_not_found")
    error_of(render(client, headers, channel="push", customer_id="C-NOBODY"), 404, "customer_not_found")
    error_of(render(client, headers, channel="fax"), 422, "validation_error")
    error_of(render(client, headers, channel="push", customer_id="../etc"), 422, "validation_error")
    error_of(render(client, headers, channel="push", at="2030-01-01T00:00:00"), 422, "validation_error")


def test_render_needs_content_read(client: TestClient, headers: Headers, error_of: Any) -> None:
    params = {"content_id": "CNT-TEST-1", "channel": "push"}
    error_of(client.get("/v1/content/render", params=params), 401)
    error_of(client.get("/v1/content/render", params=params, headers=headers("app-gateway")), 403)


def test_search_for_the_recommender(
    client: TestClient,
    headers: Headers,
    create_content: Callable[..., dict[str, Any]],
    variants: Callable[..., dict[str, Any]],
    error_of: Any,
) -> None:
    all_variants = variants()
    create_content("approved")
    create_content(
        "approved",
        content_id="CNT-TEST-2",
        segments=[],
        right_id="RT-COFFEE-01",
        variants={"push": all_variants["push"]},
    )
    create_content("draft", content_id="CNT-TEST-3")
    create_content(
        "approved",
        content_id="CNT-TEST-4",
        valid_from="2001-01-01T00:00:00Z",
        valid_until="2001-02-01T00:00:00Z",
    )

    def ids(**params: Any) -> list[str]:
        response = client.get("/v1/content", params=params, headers=headers("recommender"))
        assert response.status_code == 200, response.text
        return [item["content_id"] for item in response.json()["items"]]

    assert ids() == ["CNT-TEST-1", "CNT-TEST-2"]
    assert ids(product_id="WM-R2-90") == ["CNT-TEST-1", "CNT-TEST-2"]
    assert ids(product_id="DEP-3M-01") == []
    assert ids(right_id="RT-COFFEE-01") == ["CNT-TEST-2"]
    assert ids(channel="sms") == ["CNT-TEST-1"]
    assert ids(segment="credit_card") == ["CNT-TEST-2"]  # content for every segment matches
    assert ids(segment="wealth") == ["CNT-TEST-1", "CNT-TEST-2"]
    assert ids(status="draft") == ["CNT-TEST-3"]
    assert ids(include_out_of_window=True) == ["CNT-TEST-1", "CNT-TEST-2", "CNT-TEST-4"]
    assert ids(at="2001-01-15T00:00:00Z") == ["CNT-TEST-1", "CNT-TEST-2", "CNT-TEST-4"]
    assert ids(limit=1, offset=1) == ["CNT-TEST-2"]
    error_of(client.get("/v1/content", params={"segment": "vip"}, headers=headers("recommender")), 422)
    error_of(client.get("/v1/content", params={"status": "live"}, headers=headers("recommender")), 422)


def test_screen_endpoint_reports_without_storing(client: TestClient, headers: Headers, error_of: Any) -> None:
    response = client.post(
        "/v1/content/screen",
        json={"text": "本产品稳赚不赔，{id_number}", "product_id": "WM-R3-365"},
        headers=headers("console-alice"),
    )
    assert response.status_code == 200
    body = response.json()
    assert body["passed"] is False
    assert [(f["rule"], f["matched"], f["start"], f["end"]) for f in body["findings"]] == [
        ("forbidden_claim", "稳赚不赔", 3, 7),
        ("placeholder_forbidden", "{id_number}", 8, 19),
        ("risk_disclosure_missing", None, None, None),
    ]
    clean = client.post(
        "/v1/content/screen",
        json={"text": "{salutation}，欢迎使用手机银行。"},
        headers=headers("console-alice"),
    )
    assert clean.json() == {"passed": True, "findings": []}
    error_of(client.post("/v1/content/screen", json={}, headers=headers("console-alice")), 422)
    error_of(client.post("/v1/content/screen", json={"text": "x"}, headers=headers("recommender")), 403)
