"""Compliance screening: every forbidden claim in every disguise, disclosures, placeholders, lengths."""

from __future__ import annotations

import unicodedata
from typing import Any

import pytest
from content_hub.service import CatalogueDirectory, Screener, ScreeningRules, normalise
from content_hub.settings import DEFAULT_CLAIM_EXCEPTIONS, DEFAULT_FORBIDDEN_CLAIMS, DEFAULT_RISK_DISCLOSURES
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

DISCLOSURE = DEFAULT_RISK_DISCLOSURES[0]
SCREENER = Screener(
    ScreeningRules(
        forbidden_claims=DEFAULT_FORBIDDEN_CLAIMS,
        claim_exceptions=DEFAULT_CLAIM_EXCEPTIONS,
        risk_disclosures=DEFAULT_RISK_DISCLOSURES,
    ),
    CatalogueDirectory(),
)
REQUIRED_CLAIMS = ("保本", "保收益", "稳赚", "无风险", "零风险", "最高收益", "收益率最高", "100%安全")

#: Characters people put between the characters of a claim to slip it past a filter.
SEPARATORS = [
    " ",
    "\u3000",
    "\u200b",
    "\u200d",
    "\ufeff",
    "\t",
    "·",
    "-",
    "_",
    "*",
    "、",
    "，",
    "~",
    "|",
    "\u00a0",
]
#: Safe filler: every character of the clean texts below minus any character used by a claim.
CLAIM_CHARS = set("".join(normalise(c).text for c in DEFAULT_FORBIDDEN_CLAIMS))
FILLER = sorted(set("欢迎使用手机银行定期存款利率期限天客户专享点击了解详情月年积分礼遇活动") - CLAIM_CHARS)


def claims(text: str) -> list[tuple[str, int, int]]:
    return [
        (f.matched or "", f.start or 0, f.end or 0) for f in SCREENER.forbidden_claims(text, "push", "body")
    ]


def full_width(char: str) -> str:
    """The full-width form of a printable ASCII character (what NFKC folds back)."""
    if char == " ":
        return "\u3000"
    return chr(ord(char) + 0xFEE0) if "!" <= char <= "~" else char


@pytest.mark.parametrize("claim", REQUIRED_CLAIMS)
def test_each_required_claim_is_caught_plain_spaced_and_full_width(claim: str) -> None:
    spaced = " ".join(claim)
    wide = "".join(full_width(c) for c in claim)
    zero_width = "\u200b".join(claim)
    for variant in (claim, spaced, wide, zero_width, f" {wide} "):
        found = claims(f"本产品{variant}，欢迎了解")
        assert found, variant
        matched, start, end = found[0]
        assert start == 3 + len(variant) - len(variant.lstrip())
        assert matched == variant.strip()
        assert end == start + len(matched)


@given(
    claim=st.sampled_from(DEFAULT_FORBIDDEN_CLAIMS),
    prefix=st.text(alphabet=FILLER, max_size=12),
    suffix=st.text(alphabet=FILLER, max_size=12),
    data=st.data(),
)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_disguised_claims_are_caught_at_their_original_position(
    claim: str, prefix: str, suffix: str, data: Any
) -> None:
    disguised = ""
    for i, char in enumerate(claim):
        if data.draw(st.booleans(), label=f"wide{i}"):
            char = full_width(char)
        if data.draw(st.booleans(), label=f"upper{i}"):
            char = char.upper()
        disguised += char
        if i < len(claim) - 1:
            disguised += "".join(
                data.draw(st.lists(st.sampled_from(SEPARATORS), max_size=3), label=f"sep{i}")
            )
    text = prefix + disguised + suffix
    found = claims(text)
    assert len(found) == 1, (text, found)
    matched, start, end = found[0]
    # The position points at the claim as written, separators between its characters included.
    assert (start, end) == (len(prefix), len(prefix) + len(disguised))
    assert matched == text[start:end]
    assert normalise(matched).text == normalise(claim).text


@given(st.text(alphabet=[*FILLER, *SEPARATORS, "1", "0", "%", "A"], max_size=60))
@settings(max_examples=200, deadline=None)
def test_clean_text_passes(text: str) -> None:
    assert claims(text) == []


@pytest.mark.parametrize(
    "text",
    [
        "本产品为非保本浮动收益型产品",
        "本行不承诺保本和最低收益",
        "不保证收益，请谨慎",
        DISCLOSURE,
        "安行无忧意外险",
    ],
)
def test_mandatory_wording_that_denies_a_claim_is_not_a_finding(text: str) -> None:
    assert claims(text) == []


def test_a_negated_claim_next_to_a_real_one_is_still_caught() -> None:
    assert claims("非保本，但稳赚") == [("稳赚", 5, 7)]


def test_overlapping_claims_report_the_longest_once() -> None:
    assert claims("稳赚不赔") == [("稳赚不赔", 0, 4)]
    assert claims("稳赚，零风险") == [("稳赚", 0, 2), ("零风险", 3, 6)]


def test_the_claim_list_is_configurable() -> None:
    custom = Screener(ScreeningRules(forbidden_claims=("躺赢",)), CatalogueDirectory())
    assert custom.forbidden_claims("躺 赢", "sms", "text")[0].matched == "躺 赢"
    assert custom.forbidden_claims("稳赚", "sms", "text") == []


def test_normalisation_keeps_source_positions() -> None:
    norm = normalise("Ａ 稳\u200b赚％")
    assert norm.text == "a稳赚"
    assert norm.span(1, 3) == (2, 5)
    assert unicodedata.normalize("NFKC", "１００％") == "100%"


def screen(product_id: str | None, variants: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(f.variant, f.field, f.rule) for f in SCREENER.screen(product_id=product_id, variants=variants)]


AGENT = {
    "opening": "您好",
    "value_proposition": "介绍",
    "objection_answers": [],
    "risk_statement": "请理性选择",
    "closing": "再见",
}


@pytest.mark.parametrize(
    "product_id", ["WM-R2-90", "WM-R3-365", "WM-R4-EQ", "FD-EQ-TECH", "SD-3M-01", "NOT-IN-CATALOGUE"]
)
def test_r2_and_above_need_the_disclosure_in_every_variant(product_id: str) -> None:
    findings = screen(product_id, {"push": {"title": "新品", "body": "欢迎了解"}, "remote_agent": AGENT})
    assert ("push", "*", "risk_disclosure_missing") in findings
    assert ("remote_agent", "risk_statement", "risk_disclosure_missing") in findings
    with_disclosure = {
        "push": {"title": "新品", "body": f"欢迎了解。{DISCLOSURE}"},
        "remote_agent": {**AGENT, "risk_statement": DISCLOSURE.replace("、", "，")},
    }
    assert screen(product_id, with_disclosure) == []


def test_disclosure_elsewhere_in_the_script_does_not_count() -> None:
    agent = {**AGENT, "opening": DISCLOSURE}
    assert ("remote_agent", "risk_statement", "risk_disclosure_missing") in screen(
        "WM-R2-90", {"remote_agent": agent}
    )


@pytest.mark.parametrize("product_id", ["WM-R1-T0", "SD-1M-01", "DEP-3M-01", "CC-GOLD-01", None])
def test_r1_and_unrated_products_need_no_disclosure(product_id: str | None) -> None:
    assert screen(product_id, {"push": {"title": "新品", "body": "欢迎了解"}}) == []


@pytest.mark.parametrize(
    ("template", "rule", "matched"),
    [
        ("{name}您好", "placeholder_forbidden", "{name}"),
        ("尾号{mobile}", "placeholder_forbidden", "{mobile}"),
        ("证件{id_number}", "placeholder_forbidden", "{id_number}"),
        ("{nickname}您好", "placeholder_unknown", "{nickname}"),
        ("{ salutation }", "placeholder_malformed", "{ salutation }"),
        ("{salutation", "placeholder_malformed", "{"),
        ("｛salutation｝", "placeholder_malformed", "｛"),
    ],
)
def test_placeholder_findings(template: str, rule: str, matched: str) -> None:
    findings = SCREENER.screen(product_id="DEP-3M-01", variants={"push": {"title": "t", "body": template}})
    assert (findings[0].rule, findings[0].matched) == (rule, matched)
    assert template[findings[0].start or 0 : findings[0].end] == matched


def test_product_placeholders_need_a_product_that_has_the_fact() -> None:
    rights_only = SCREENER.screen(
        product_id=None, variants={"push": {"title": "t", "body": "{product_name}"}}
    )
    assert [f.rule for f in rights_only] == ["placeholder_unfillable"]
    no_rate = SCREENER.screen(product_id="CC-GOLD-01", variants={"push": {"title": "t", "body": "{rate}"}})
    assert [f.rule for f in no_rate] == ["placeholder_unfillable"]
    ok = SCREENER.screen(
        product_id="DEP-3M-01", variants={"push": {"title": "t", "body": "{rate}{term_days}"}}
    )
    assert ok == []


def test_lengths_are_checked_with_the_longest_values() -> None:
    # 20 characters as written, but {salutation} can be 8 characters long: 27 once filled.
    body = "{salutation}" + "好" * 55
    findings = SCREENER.screen(product_id="DEP-3M-01", variants={"push": {"title": "t" * 21, "body": body}})
    assert [(f.field, f.rule, f.start, f.end) for f in findings] == [
        ("title", "length_exceeded", 20, 21),
        ("body", "length_exceeded", 60, 63),
    ]
    sms = SCREENER.screen(product_id="DEP-3M-01", variants={"sms": {"text": "好" * 58}})
    assert [(f.rule, f.end) for f in sms] == [("length_exceeded", 71)]  # signature + 。 + opt-out count
    assert SCREENER.screen(product_id="DEP-3M-01", variants={"sms": {"text": "好" * 56 + "。"}}) == []
