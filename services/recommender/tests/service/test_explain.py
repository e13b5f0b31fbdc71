"""Explanations: every moment rule has text in both languages; the most specific reason wins."""

from __future__ import annotations

import pytest
from recommender.service.candidates import MOMENT_RULES
from recommender.service.explain import TEXTS, explain, explain_code


def test_every_moment_reason_code_has_chinese_and_english_text() -> None:
    for rule in MOMENT_RULES:
        zh, en = TEXTS[rule.reason_code]
        assert zh
        assert en
        assert zh != en


def test_deposit_maturing_reads_as_the_issue_says() -> None:
    text = explain(["moment_deposit_renewal"], ["moment:deposit_maturing", "cf:als"])
    assert text.code == "moment_deposit_renewal"
    assert text.zh.startswith("因为您近期有定期存款到期")
    assert text.en.startswith("Because a time deposit of yours matures soon")
    assert text.as_json() == {"code": text.code, "zh": text.zh, "en": text.en}


@pytest.mark.parametrize(
    ("codes", "sources", "expected"),
    [
        (["cf_similar_customers"], ["cf:als", "popularity:segment"], "cf_similar_customers"),
        ([], ["cf:lightfm"], "cf_similar_customers"),
        ([], ["popularity:segment"], "popularity_segment"),
        ([], ["popularity:global"], "popularity_global"),
        (["some_future_code"], [], "popularity_global"),
        (["cf_similar_customers", "moment_birthday_insurance"], ["cf:als"], "moment_birthday_insurance"),
    ],
)
def test_most_specific_reason_wins(codes: list[str], sources: list[str], expected: str) -> None:
    assert explain(codes, sources).code == expected


def test_non_personalised_never_explains_with_customer_facts() -> None:
    text = explain(["moment_deposit_renewal"], ["moment:deposit_maturing", "cf:als"], personalised=False)
    assert text.code == "popularity_global"
    assert "您近期" not in text.zh


def test_unknown_code_is_neutral() -> None:
    assert explain_code("nope").code == "popularity_global"
