"""Sample content for catalogue products, written by console-alice and approved by console-bob through
the real workflow (screening included), so the demo shows content exactly as production would hold it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from qianmian_bankgen.catalogue import CatalogueProduct, by_id

from content_hub.errors import ContentNotFoundError
from content_hub.schemas import ContentCreate, TransitionRequest
from content_hub.service.content import ContentService

SEED_AUTHOR: Final = "console-alice"
SEED_APPROVER: Final = "console-bob"
DISCLOSURE: Final = "理财非存款、产品有风险、投资须谨慎"

#: Product id -> the segments its content targets (empty: every segment).
SEED_PRODUCTS: Final[dict[str, tuple[str, ...]]] = {
    "DEP-3M-01": (),
    "DEP-1Y-01": (),
    "DEP-CD-3Y": ("wealth",),
    "SD-3M-01": ("wealth", "payroll"),
    "WM-R1-T0": (),
    "WM-R2-90": ("wealth",),
    "WM-R3-365": ("wealth",),
    "WM-PAY-R2": ("payroll",),
    "FD-BOND-01": ("wealth",),
    "INS-MED-01": (),
    "CC-GOLD-01": ("credit_card",),
    "CL-PAY-01": ("payroll",),
}


@dataclass(frozen=True, slots=True)
class SeedReport:
    """What a seed run did."""

    created: int
    approved: int
    unchanged: int


def seed_content(service: ContentService) -> SeedReport:
    """Create, submit and approve sample content for every product in ``SEED_PRODUCTS``.

    Idempotent: items already approved are left alone, and an item left half-way by an interrupted
    run is carried on from its current status. Retired or rejected items stay as they are.
    """
    created = approved = unchanged = 0
    for product_id, segments in SEED_PRODUCTS.items():
        content_id = f"CNT-{product_id}"
        try:
            item = service.get(content_id)
            version = item.latest_version
            status = item.versions[-1].status
        except ContentNotFoundError:
            body = ContentCreate.model_validate(sample_content(by_id()[product_id], segments))
            version, status = service.create(body, author=SEED_AUTHOR).version, "draft"
            created += 1
        if status == "draft":
            service.transition(
                content_id, version, TransitionRequest(to="in_review", comment="seed"), actor=SEED_AUTHOR
            )
            status = "in_review"
        if status == "in_review":
            service.transition(
                content_id, version, TransitionRequest(to="approved", comment="seed"), actor=SEED_APPROVER
            )
            approved += 1
        else:
            unchanged += 1
    return SeedReport(created=created, approved=approved, unchanged=unchanged)


def sample_content(product: CatalogueProduct, segments: tuple[str, ...]) -> dict[str, Any]:
    """Compliant variants for every channel, worded for the product's type."""
    attrs = product.attributes
    investment = product.risk_rating is not None
    has_rate = "rate" in attrs or "expected_yield" in attrs
    term = "，期限{term_days}天" if "term_days" in attrs else ""
    if investment and has_rate and product.product_type != "fund":
        facts = "业绩比较基准{rate}" + term
    elif product.product_type == "deposit":
        facts = "年利率{rate}" + term
    elif product.product_type == "consumer_loan":
        facts = "年化利率{rate}起，随借随还"
    else:
        facts = "{segment_name}客户专享礼遇"
    disclosure = DISCLOSURE if investment else ""
    tail = f"。{disclosure}" if disclosure else "，点击了解。"
    if investment:
        risk_statement = (
            f"{DISCLOSURE}。本产品风险等级为R{product.risk_rating}，为非保本浮动收益产品，"
            "请确认与您的风险承受能力相匹配，过往业绩不代表未来表现。"
        )
        worry = ("会不会亏本？", "本产品为非保本产品，净值会有波动，请根据您的风险承受能力谨慎选择。")
    else:
        risk_statement = "请您根据自身需求理性选择，具体以产品说明书和合同条款为准。"
        worry = ("有什么需要注意的？", "办理前请仔细阅读产品条款，如有疑问可随时咨询我们。")
    return {
        "content_id": f"CNT-{product.product_id}",
        "title": f"{product.name} 全渠道内容",
        "product_id": product.product_id,
        "segments": list(segments),
        "variants": {
            "app": {
                "title": "{product_name}",
                "subtitle": f"{facts}｜{disclosure or '立即了解'}",
                "image_ref": f"asset://banners/{product.product_id.lower()}.png",
                "deep_link": f"qianmian://products/{product.product_id}",
            },
            "mini_program": {
                "title": "{product_name}",
                "description": f"{facts}{tail}",
                "image_ref": f"asset://cards/{product.product_id.lower()}.png",
                "page_path": f"pages/product/detail?id={product.product_id}",
            },
            "push": {"title": "{product_name}", "body": "{salutation}，{product_name}" + facts + tail},
            "sms": {"text": "{salutation}，{product_name}" + facts + tail},
            "remote_agent": {
                "opening": (
                    "您好，{salutation}！我是千面银行远程银行的客户经理，今天来电向您介绍{product_name}。"
                ),
                "value_proposition": "{product_name}" + facts + "，可在手机银行随时查看和办理。",
                "objection_answers": [
                    {"objection": worry[0], "answer": worry[1]},
                    {
                        "objection": "现在没时间。",
                        "answer": "理解您，稍后我把产品说明发到您的手机银行消息中心，方便时查看。",
                    },
                ],
                "risk_statement": risk_statement,
                "closing": "感谢您的接听，祝您生活愉快，再见！",
            },
        },
    }
