"""Sample rights with budgets for the demo and local runs, authored and activated by different people."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from rights_hub.errors import RightNotFoundError
from rights_hub.schemas import RightCreate, TransitionRequest
from rights_hub.service.catalogue import CatalogueService

#: Maker and checker of the seed catalogue (console users of the dev token file).
SEED_AUTHOR: Final[str] = "console-alice"
SEED_ACTIVATOR: Final[str] = "console-bob"

#: (right_id, fields); money in fen. Windows are set relative to the first seeding.
SEED_RIGHTS: Final[tuple[tuple[str, dict[str, Any]], ...]] = (
    (
        "RT-LUCKIN-COFFEE",
        {
            "name": "瑞幸咖啡券 9.9元",
            "right_type": "partner_perk",
            "partner": "瑞幸咖啡",
            "description": "联名咖啡券，App 首页资源位与代发日常用",
            "unit_cost_fen": 990,
            "budget_count": 20_000,
            "budget_money_fen": 19_800_000,
            "per_customer_limit": 2,
            "redeem_within_days": 14,
            "segments": ["payroll", "long_tail", "credit_card"],
            "lifecycle_stages": ["new", "active"],
        },
    ),
    (
        "RT-DIDI-RIDE",
        {
            "name": "滴滴出行券 15元",
            "right_type": "partner_perk",
            "partner": "滴滴出行",
            "description": "出行立减券，适合信用卡活跃客户",
            "unit_cost_fen": 1500,
            "budget_count": 10_000,
            "budget_money_fen": 15_000_000,
            "per_customer_limit": 1,
            "redeem_within_days": 30,
            "segments": ["credit_card", "payroll"],
            "lifecycle_stages": ["active", "churn_risk"],
        },
    ),
    (
        "RT-WM-RATE-BOOST-20BP",
        {
            "name": "理财加息券 0.2%",
            "right_type": "rate_boost",
            "description": "购买指定理财产品年化收益加 0.2%，期限 90 天",
            "unit_cost_fen": 5_000,
            "budget_count": 2_000,
            "budget_money_fen": 10_000_000,
            "per_customer_limit": 1,
            "redeem_within_days": 30,
            "segments": ["wealth", "payroll"],
            "lifecycle_stages": ["active", "churn_risk", "dormant"],
            "attributes": {"rate_boost_bp": 20, "tenor_days": 90},
        },
    ),
    (
        "RT-TD-RATE-BOOST-15BP",
        {
            "name": "定期存款加息券 0.15%",
            "right_type": "rate_boost",
            "description": "到期续存或新存一年期定期加息 0.15%",
            "unit_cost_fen": 3_000,
            "budget_count": 3_000,
            "budget_money_fen": 9_000_000,
            "per_customer_limit": 1,
            "redeem_within_days": 30,
            "segments": [],
            "lifecycle_stages": ["active", "churn_risk", "churned"],
            "attributes": {"rate_boost_bp": 15, "tenor_days": 365},
        },
    ),
    (
        "RT-CC-ANNUAL-FEE-WAIVER",
        {
            "name": "信用卡年费减免",
            "right_type": "fee_waiver",
            "description": "免收次年信用卡年费",
            "unit_cost_fen": 20_000,
            "budget_count": 1_000,
            "budget_money_fen": 20_000_000,
            "per_customer_limit": 1,
            "redeem_within_days": 365,
            "segments": ["credit_card"],
            "lifecycle_stages": ["active", "churn_risk"],
        },
    ),
    (
        "RT-POINTS-DOUBLE",
        {
            "name": "积分翻倍（当月消费）",
            "right_type": "points_multiplier",
            "description": "当月信用卡消费积分翻倍",
            "unit_cost_fen": 800,
            "budget_count": 50_000,
            "budget_money_fen": 40_000_000,
            "per_customer_limit": 1,
            "redeem_within_days": 31,
            "segments": ["credit_card"],
            "lifecycle_stages": [],
            "attributes": {"multiplier": 2},
        },
    ),
    (
        "RT-FUND-FEE-10PCT",
        {
            "name": "基金申购费1折",
            "right_type": "fee_waiver",
            "description": "指定基金申购费率 1 折",
            "unit_cost_fen": 2_500,
            "budget_count": 5_000,
            "budget_money_fen": 12_500_000,
            "per_customer_limit": 3,
            "redeem_within_days": 60,
            "segments": ["wealth"],
            "lifecycle_stages": ["new", "active"],
            "attributes": {"fee_discount": 0.1},
        },
    ),
    (
        "RT-PAYROLL-CASHBACK-10",
        {
            "name": "代发客户消费返现 10元",
            "right_type": "cashback",
            "description": "代发工资到账后首笔消费满 50 返 10",
            "unit_cost_fen": 1_000,
            "budget_count": 30_000,
            "budget_money_fen": 30_000_000,
            "per_customer_limit": 1,
            "redeem_within_days": 30,
            "segments": ["payroll"],
            "lifecycle_stages": ["new", "active", "dormant"],
        },
    ),
    (
        "RT-MORTGAGE-COUPON-50",
        {
            "name": "按揭客户生活缴费券 50元",
            "right_type": "coupon",
            "description": "存量按揭客户周年礼，水电燃气缴费立减",
            "unit_cost_fen": 5_000,
            "budget_count": 2_000,
            "budget_money_fen": 10_000_000,
            "per_customer_limit": 1,
            "redeem_within_days": 60,
            "segments": ["mortgage"],
            "lifecycle_stages": [],
        },
    ),
    (
        "RT-SSC-WELCOME-COUPON",
        {
            "name": "社保卡激活礼 立减金 5元",
            "right_type": "coupon",
            "description": "社保卡首次激活并绑定手机银行",
            "unit_cost_fen": 500,
            "budget_count": 50_000,
            "budget_money_fen": 25_000_000,
            "per_customer_limit": 1,
            "redeem_within_days": 30,
            "segments": ["social_security", "long_tail"],
            "lifecycle_stages": ["potential", "new"],
        },
    ),
)


@dataclass(frozen=True, slots=True)
class SeedReport:
    """What seeding did."""

    created: int
    activated: int
    unchanged: int


def seed_rights(catalogue: CatalogueService, now: datetime) -> SeedReport:
    """Create each sample right that is missing (by SEED_AUTHOR) and activate drafts (by SEED_ACTIVATOR).

    Idempotent: a second run finds everything in place and changes nothing.
    """
    created = activated = unchanged = 0
    for right_id, fields in SEED_RIGHTS:
        try:
            status = catalogue.get(right_id).status
            is_new = False
        except RightNotFoundError:
            body = RightCreate.model_validate(
                {
                    "right_id": right_id,
                    "valid_from": now - timedelta(days=1),
                    "valid_until": now + timedelta(days=365),
                    **fields,
                }
            )
            status = catalogue.create(body, author=SEED_AUTHOR).status
            created, is_new = created + 1, True
        if status == "draft":
            catalogue.transition(
                right_id, TransitionRequest(to="active", comment="seed"), actor=SEED_ACTIVATOR
            )
            activated += 1
        elif not is_new:
            unchanged += 1
    return SeedReport(created=created, activated=activated, unchanged=unchanged)
