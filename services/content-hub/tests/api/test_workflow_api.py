"""The review workflow over HTTP: maker-checker, the recorded history, versions and the archive."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient

Headers = Callable[[str], dict[str, str]]


def test_create_starts_a_draft_by_the_caller(create_content: Callable[..., dict[str, Any]]) -> None:
    draft = create_content()
    assert (draft["content_id"], draft["version"], draft["status"]) == ("CNT-TEST-1", 1, "draft")
    assert draft["author"] == "console-alice"
    assert draft["approved_by"] is None


def test_generated_ids_and_duplicates(
    client: TestClient, headers: Headers, content_payload: Callable[..., dict[str, Any]], error_of: Any
) -> None:
    generated = client.post(
        "/v1/content", json=content_payload(content_id=None), headers=headers("console-alice")
    )
    assert generated.status_code == 201
    assert generated.json()["content_id"].startswith("CNT-")
    client.post("/v1/content", json=content_payload(), headers=headers("console-alice"))
    again = client.post("/v1/content", json=content_payload(), headers=headers("console-alice"))
    error_of(again, 409, "content_exists")


def test_author_cannot_approve_or_reject_own_content(
    client: TestClient, headers: Headers, create_content: Callable[..., dict[str, Any]], error_of: Any
) -> None:
    create_content("in_review")
    path = "/v1/content/CNT-TEST-1/versions/1/transitions"
    for target in ("approved", "rejected"):
        response = client.post(path, json={"to": target, "comment": "mine"}, headers=headers("console-alice"))
        error_of(response, 403, "maker_checker_violation")
    assert (
        client.get("/v1/content/CNT-TEST-1", headers=headers("console-bob")).json()["serving_version"] is None
    )


def test_every_transition_is_recorded_with_actor_time_and_comment(
    client: TestClient, headers: Headers, create_content: Callable[..., dict[str, Any]]
) -> None:
    approved = create_content("approved")
    assert approved["approved_by"] == "console-bob"
    history = client.get("/v1/content/CNT-TEST-1/history", headers=headers("recommender")).json()
    moves = [(t["from_status"], t["to_status"], t["actor"]) for t in history["transitions"]]
    assert moves == [
        (None, "draft", "console-alice"),
        ("draft", "in_review", "console-alice"),
        ("in_review", "approved", "console-bob"),
    ]
    assert all(t["at"] and t["version"] == 1 for t in history["transitions"])


def test_illegal_moves_and_reviewer_scope(
    client: TestClient, headers: Headers, create_content: Callable[..., dict[str, Any]], error_of: Any
) -> None:
    create_content()
    path = "/v1/content/CNT-TEST-1/versions/1/transitions"
    error_of(
        client.post(path, json={"to": "approved"}, headers=headers("console-bob")), 409, "illegal_transition"
    )
    error_of(
        client.post(path, json={"to": "retired"}, headers=headers("console-alice")), 409, "illegal_transition"
    )
    # The recommender may read content but never review it.
    error_of(
        client.post(path, json={"to": "in_review"}, headers=headers("recommender")), 403, "insufficient_scope"
    )
    error_of(
        client.post(path, json={"to": "published"}, headers=headers("console-alice")), 422, "validation_error"
    )


def test_rejection_needs_a_comment_and_rework_is_a_new_version(
    client: TestClient,
    headers: Headers,
    create_content: Callable[..., dict[str, Any]],
    move: Callable[..., dict[str, Any]],
    error_of: Any,
) -> None:
    create_content("in_review")
    path = "/v1/content/CNT-TEST-1/versions/1/transitions"
    error_of(
        client.post(path, json={"to": "rejected"}, headers=headers("console-bob")), 422, "comment_required"
    )
    move("CNT-TEST-1", 1, "rejected", comment="标题太平淡")
    # A rejected version is never edited in place …
    patch = client.patch(
        "/v1/content/CNT-TEST-1/versions/1", json={"title": "改"}, headers=headers("console-alice")
    )
    error_of(patch, 409, "not_editable")
    # … rework starts version 2 from it.
    v2 = client.post(
        "/v1/content/CNT-TEST-1/versions", json={"title": "改版"}, headers=headers("console-alice")
    )
    assert v2.status_code == 201
    assert (v2.json()["version"], v2.json()["status"], v2.json()["title"]) == (2, "draft", "改版")
    assert (
        v2.json()["variants"]
        == client.get("/v1/content/CNT-TEST-1/versions/1", headers=headers("console-bob")).json()["variants"]
    )
    # Only one open version at a time.
    again = client.post("/v1/content/CNT-TEST-1/versions", json={}, headers=headers("console-alice"))
    error_of(again, 409, "open_version_exists")


def test_only_the_author_edits_a_draft(
    client: TestClient, headers: Headers, create_content: Callable[..., dict[str, Any]], error_of: Any
) -> None:
    create_content()
    path = "/v1/content/CNT-TEST-1/versions/1"
    error_of(client.patch(path, json={"title": "x"}, headers=headers("console-bob")), 403, "not_author")
    ok = client.patch(path, json={"segments": ["payroll"]}, headers=headers("console-alice"))
    assert ok.status_code == 200
    assert ok.json()["segments"] == ["payroll"]
    bad = client.patch(path, json={"segments": ["martians"]}, headers=headers("console-alice"))
    error_of(bad, 422, "validation_error")


def test_editing_approved_content_keeps_the_approved_version_serving_until_the_new_one_is_approved(
    client: TestClient,
    headers: Headers,
    create_content: Callable[..., dict[str, Any]],
    move: Callable[..., dict[str, Any]],
    variants: Callable[..., dict[str, Any]],
) -> None:
    create_content("approved")
    new_push = {
        "title": "{product_name}焕新",
        "body": "{salutation}，期限{term_days}天。理财非存款、产品有风险、投资须谨慎",
    }
    v2 = client.post(
        "/v1/content/CNT-TEST-1/versions",
        json={"variants": variants(push=new_push)},
        headers=headers("console-bob"),  # anyone with content:write may start a version
    ).json()
    assert v2["author"] == "console-bob"

    def served_title() -> str:
        params = {"content_id": "CNT-TEST-1", "channel": "push"}
        body = client.get("/v1/content/render", params=params, headers=headers("recommender")).json()
        return str(body["fields"]["title"])

    assert served_title() == "稳健理财R2·90天上新"
    move("CNT-TEST-1", 2, "in_review", actor="console-bob")
    assert served_title() == "稳健理财R2·90天上新"
    move("CNT-TEST-1", 2, "approved", actor="console-alice")  # bob wrote v2, so alice reviews it
    assert served_title() == "稳健理财R2·90天焕新"

    item = client.get("/v1/content/CNT-TEST-1", headers=headers("recommender")).json()
    assert item["serving_version"] == 2
    assert [(v["version"], v["status"]) for v in item["versions"]] == [(1, "superseded"), (2, "approved")]
    # The archive: version 1 stays retrievable exactly as it was approved.
    v1 = client.get("/v1/content/CNT-TEST-1/versions/1", headers=headers("recommender")).json()
    assert v1["variants"]["push"]["title"] == "{product_name}上新"
    assert v1["approved_by"] == "console-bob"
    history = client.get("/v1/content/CNT-TEST-1/history", headers=headers("recommender")).json()
    assert history["transitions"][-1]["to_status"] == "superseded"
    assert history["transitions"][-1]["comment"] == "superseded by version 2"


def test_submission_is_blocked_by_findings_with_positions(
    client: TestClient,
    headers: Headers,
    create_content: Callable[..., dict[str, Any]],
    variants: Callable[..., dict[str, Any]],
    error_of: Any,
) -> None:
    bad_push = {"title": "稳 赚好产品", "body": "{salutation}，{mobile}专享。"}
    create_content(variants=variants(push=bad_push))
    response = client.post(
        "/v1/content/CNT-TEST-1/versions/1/transitions",
        json={"to": "in_review"},
        headers=headers("console-alice"),
    )
    error = error_of(response, 422, "compliance_findings")
    found = {
        (f["variant"], f["field"], f["rule"], f["matched"], f["start"], f["end"]) for f in error["details"]
    }
    assert ("push", "title", "forbidden_claim", "稳 赚", 0, 3) in found
    assert ("push", "body", "placeholder_forbidden", "{mobile}", 13, 21) in found
    assert ("push", "*", "risk_disclosure_missing", None, None, None) in found
    version = client.get("/v1/content/CNT-TEST-1/versions/1", headers=headers("console-alice")).json()
    assert version["status"] == "draft"


def test_unknown_content_and_versions_are_404(client: TestClient, headers: Headers, error_of: Any) -> None:
    error_of(client.get("/v1/content/NOPE", headers=headers("recommender")), 404, "content_not_found")
    error_of(client.get("/v1/content/NOPE/history", headers=headers("recommender")), 404, "content_not_found")
    error_of(
        client.get("/v1/content/NOPE/versions/1", headers=headers("recommender")), 404, "content_not_found"
    )


def test_missing_version_is_404(
    client: TestClient, headers: Headers, create_content: Callable[..., dict[str, Any]], error_of: Any
) -> None:
    create_content()
    error_of(
        client.get("/v1/content/CNT-TEST-1/versions/9", headers=headers("recommender")),
        404,
        "version_not_found",
    )
    error_of(
        client.get("/v1/content/CNT-TEST-1/versions/0", headers=headers("recommender")),
        422,
        "validation_error",
    )


def test_auth_is_required_and_scoped(
    client: TestClient, headers: Headers, content_payload: Callable[..., dict[str, Any]], error_of: Any
) -> None:
    error_of(client.get("/v1/content"), 401, "unauthorized")
    error_of(client.get("/v1/content", headers={"Authorization": "Bearer " + "x" * 40}), 401, "unauthorized")
    error_of(client.post("/v1/content", json=content_payload(), headers=headers("recommender")), 403)
    error_of(client.get("/v1/content", headers=headers("app-gateway")), 403, "insufficient_scope")


def test_invalid_bodies_answer_422_without_echoing_input(
    client: TestClient, headers: Headers, content_payload: Callable[..., dict[str, Any]], error_of: Any
) -> None:
    cases = [
        content_payload(product_id=None),  # neither product nor right
        content_payload(variants={}),
        content_payload(segments=["wealth", "wealth"]),
        content_payload(right_id="has spaces"),
        content_payload(valid_from="2030-02-01T00:00:00Z", valid_until="2030-01-01T00:00:00Z"),
        content_payload(valid_from="2030-02-01T00:00:00"),  # naive timestamps are refused
        content_payload(variants={"push": {"title": "t", "body": "b", "extra": 1}}),
        content_payload(
            variants={"app": {"title": "t", "subtitle": "s", "image_ref": "x", "deep_link": "y"}}
        ),
    ]
    for body in cases:
        error = error_of(client.post("/v1/content", json=body, headers=headers("console-alice")), 422)
        assert error["code"] == "validation_error"
        assert all(set(d) == {"loc", "msg", "type"} for d in error["details"])


def test_right_only_content_is_allowed(
    client: TestClient, headers: Headers, content_payload: Callable[..., dict[str, Any]]
) -> None:
    body = content_payload(
        product_id=None,
        right_id="RT-COFFEE-01",
        variants={"push": {"title": "咖啡券到账", "body": "{salutation}，您有一张咖啡券待领取。"}},
    )
    created = client.post("/v1/content", json=body, headers=headers("console-alice"))
    assert created.status_code == 201
    submitted = client.post(
        "/v1/content/CNT-TEST-1/versions/1/transitions",
        json={"to": "in_review"},
        headers=headers("console-alice"),
    )
    assert submitted.status_code == 200, submitted.text
