"""Reason codes → a short customer-readable explanation in Chinese and English (pure, no I/O).

The explanation names why the offer is timely, never a private fact in detail: no amounts, dates
or model internals. The most specific reason wins: a moment rule, then the ranker's next-product
estimate, then the model's similarity, then popularity (segment, then overall). Non-personalised
offers always use the popularity text, so the explanation cannot reveal anything about the customer
either.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final


@dataclass(frozen=True, slots=True)
class Explanation:
    """The reason code used and its text in both languages."""

    code: str
    zh: str
    en: str

    def as_json(self) -> dict[str, str]:
        return {"code": self.code, "zh": self.zh, "en": self.en}


#: Reason code → (Chinese, English). Every moment rule's code of ``candidates.MOMENT_RULES`` is here.
TEXTS: Final[Mapping[str, tuple[str, str]]] = MappingProxyType(
    {
        "moment_deposit_renewal": (
            "因为您近期有定期存款到期，为您推荐续存方案。",
            "Because a time deposit of yours matures soon, here is a way to renew it.",
        ),
        "moment_maturity_wealth": (
            "因为您近期有资金到期，为您推荐可衔接的理财产品。",
            "Because some of your funds mature soon, here is a product to follow on with.",
        ),
        "moment_salary_payroll_bundle": (
            "因为您的工资已到账，为您推荐代发客户专享服务。",
            "Because your salary has arrived, here is a service made for payroll customers.",
        ),
        "moment_salary_deposit": (
            "因为您的工资已到账，为您推荐稳健的存款方式。",
            "Because your salary has arrived, here is a steady way to save part of it.",
        ),
        "moment_salary_fund": (
            "因为您的工资已到账，为您推荐适合定期投入的基金。",
            "Because your salary has arrived, here is a fund suited to regular investing.",
        ),
        "moment_inbound_wealth": (
            "因为您近期有一笔资金转入，为您推荐合适的理财产品。",
            "Because you recently received a transfer, here is a product to put it to work.",
        ),
        "moment_card_bill_instalment": (
            "因为您的信用卡账单已出，为您推荐灵活的分期方案。",
            "Because your card statement is out, here is a flexible way to spread the payment.",
        ),
        "moment_aum_retention": (
            "感谢您一直以来的信任，为您推荐加息存款方案。",
            "Thank you for banking with us: here is a deposit with a rate boost.",
        ),
        "moment_birthday_insurance": (
            "祝您生日快乐！为您推荐一份贴心保障。",
            "Happy birthday! Here is some cover to look after you.",
        ),
        "ranker_next_product": (
            "持有与您相似产品的客户，下一步常会选择这款产品。",
            "Customers with products like yours often add this one next.",
        ),
        "cf_similar_customers": (
            "与您情况相似的客户也选择了这款产品。",
            "Customers like you also chose this product.",
        ),
        "popularity_segment": (
            "这是与您同类客户中的热门产品。",
            "This is popular with customers like you.",
        ),
        "popularity_global": (
            "这是我行客户近期的热门选择。",
            "This is a popular choice among our customers.",
        ),
    }
)

#: Source prefix → the code that explains a candidate found only by that source.
SOURCE_CODES: Final[Mapping[str, str]] = MappingProxyType(
    {"cf": "cf_similar_customers", "popularity:segment": "popularity_segment"}
)
FALLBACK_CODE: Final[str] = "popularity_global"


def explain_code(code: str) -> Explanation:
    """The explanation of one reason code; an unknown code gets the neutral popularity text."""
    zh, en = TEXTS.get(code, TEXTS[FALLBACK_CODE])
    return Explanation(code if code in TEXTS else FALLBACK_CODE, zh, en)


def _code_of_source(source: str) -> str | None:
    if source.startswith("cf:"):
        return SOURCE_CODES["cf"]
    return SOURCE_CODES.get(source)


def explain(
    reason_codes: Iterable[str], sources: Iterable[str] = (), *, personalised: bool = True
) -> Explanation:
    """The most specific explanation of a candidate from its reason codes and sources.

    Order: the first moment reason code, then the ranker, then CF, then segment popularity, then
    overall popularity.
    ``personalised=False`` always gives the overall-popularity text.
    """
    if not personalised:
        return explain_code(FALLBACK_CODE)
    codes = list(reason_codes)
    moment = next((c for c in codes if c.startswith("moment_") and c in TEXTS), None)
    if moment is not None:
        return explain_code(moment)
    derived = [c for c in (_code_of_source(s) for s in sources) if c is not None] + codes
    for preferred in ("ranker_next_product", "cf_similar_customers", "popularity_segment"):
        if preferred in derived:
            return explain_code(preferred)
    return explain_code(FALLBACK_CODE)
