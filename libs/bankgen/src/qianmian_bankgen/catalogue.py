"""The seed catalogue: the products a regional Chinese retail bank sells, as typed data.

Product-hub seeds its tables from this module and the generator plants preferences over it, so the
two always agree on ids, types, risk ratings and eligibility rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Final

from qianmian_rules import PRODUCT_TYPES, EligibilityRules

#: Marketing channels, in the order the generator encodes them.
CHANNELS: Final[tuple[str, ...]] = ("app", "mini_program", "push", "sms", "remote_agent", "online_rm")

#: Value types allowed in ``CatalogueProduct.attributes`` (all JSON-serialisable).
AttributeValue = int | float | str | tuple[str, ...]

#: Product types that carry a risk rating when they are investment products.
INVESTMENT_TYPES: Final[frozenset[str]] = frozenset(
    {"structured_deposit", "wealth_management", "fund", "insurance"}
)


@dataclass(frozen=True)
class CatalogueProduct:
    """One product of the seed catalogue.

    ``value`` is the expected margin of one conversion in CNY; ``margin_rate`` the annual margin on
    the balance. ``risk_rating`` is R1..R5 as 1..5 for investment products and ``None`` otherwise.
    """

    product_id: str
    name: str
    name_en: str
    product_type: str
    risk_rating: int | None
    channels: tuple[str, ...]
    margin_rate: float
    value: float
    attributes: Mapping[str, AttributeValue] = field(hash=False)
    eligibility: EligibilityRules = field(default_factory=EligibilityRules)

    def __post_init__(self) -> None:
        # The catalogue is code; a typo must fail at import, not as a silent mismatch downstream.
        if self.product_type not in PRODUCT_TYPES:
            raise ValueError(f"{self.product_id}: unknown product type {self.product_type}")
        if self.risk_rating is not None and not 1 <= self.risk_rating <= 5:
            raise ValueError(f"{self.product_id}: risk rating must be 1..5")
        if self.risk_rating is not None and self.product_type not in INVESTMENT_TYPES:
            raise ValueError(f"{self.product_id}: only investment products carry a risk rating")
        if not self.channels or not set(self.channels) <= set(CHANNELS):
            raise ValueError(f"{self.product_id}: channels must be a non-empty subset of {CHANNELS}")

    @property
    def tags(self) -> tuple[str, ...]:
        """The marketing tags of the product (短期, 稳健, 养老 …)."""
        tags = self.attributes.get("tags", ())
        return tags if isinstance(tags, tuple) else ()


_ALL = CHANNELS
_DIGITAL = ("app", "mini_program", "push", "sms")
_ADVISED = ("app", "push", "remote_agent", "online_rm")
_APP_RM = ("app", "online_rm")

E = EligibilityRules

CATALOGUE: Final[tuple[CatalogueProduct, ...]] = (
    # ---- deposits (存款) -------------------------------------------------------------------
    CatalogueProduct(
        "DEP-3M-01", "月月盈3个月定期存款", "Monthly Gain 3-month time deposit", "deposit", None,
        _ALL, 0.012, 60.0,
        {"term_days": 90, "min_amount": 50, "rate": 0.0115, "tags": ("短期", "稳健", "定期")},
    ),
    CatalogueProduct(
        "DEP-6M-01", "半年享6个月定期存款", "Half-year 6-month time deposit", "deposit", None,
        _ALL, 0.012, 90.0,
        {"term_days": 180, "min_amount": 50, "rate": 0.0135, "tags": ("稳健", "定期")},
    ),
    CatalogueProduct(
        "DEP-1Y-01", "年年丰1年定期存款", "Yearly Harvest 1-year time deposit", "deposit", None,
        _ALL, 0.011, 140.0,
        {"term_days": 365, "min_amount": 50, "rate": 0.0145, "tags": ("稳健", "定期")},
    ),
    CatalogueProduct(
        "DEP-CD-3Y", "安心享3年期大额存单", "Peace of Mind 3-year large CD", "deposit", None,
        _ADVISED, 0.010, 900.0,
        {"term_days": 1095, "min_amount": 200000, "rate": 0.0175, "tags": ("稳健", "大额", "长期")},
        E(min_aum=200000),
    ),
    CatalogueProduct(
        "DEP-5Y-01", "五年期整存整取", "5-year lump-sum time deposit", "deposit", None,
        ("app", "sms", "remote_agent", "online_rm"), 0.009, 260.0,
        {"term_days": 1825, "min_amount": 50, "rate": 0.0155, "tags": ("稳健", "长期")},
    ),
    CatalogueProduct(
        "DEP-NEW-01", "新客专享3个月定期存款", "New-customer 3-month deposit", "deposit", None,
        _DIGITAL, 0.006, 45.0,
        {"term_days": 90, "min_amount": 1000, "rate": 0.0180, "tags": ("短期", "新客", "定期")},
        E(lifecycle_stages=("potential", "new")),
    ),
    CatalogueProduct(
        "DEP-NTC-7D", "7天通知存款", "7-day call deposit", "deposit", None,
        ("app", "mini_program", "online_rm"), 0.008, 30.0,
        {"term_days": 7, "min_amount": 50000, "rate": 0.0045, "tags": ("短期", "灵活")},
        E(min_aum=50000),
    ),
    CatalogueProduct(
        "DEP-PEN-5Y", "养老储蓄·5年期", "Retirement savings 5-year deposit", "deposit", None,
        ("app", "sms", "remote_agent", "online_rm"), 0.009, 300.0,
        {"term_days": 1825, "min_amount": 1000, "rate": 0.0170, "tags": ("养老", "稳健", "长期")},
        E(min_age=40),
    ),
    CatalogueProduct(
        "DEP-GD-01", "粤享存1年期定期存款", "Guangdong-only 1-year deposit", "deposit", None,
        _DIGITAL, 0.010, 120.0,
        {"term_days": 365, "min_amount": 10000, "rate": 0.0160, "tags": ("稳健", "地方专属")},
        E(regions=("GD",)),
    ),
    # ---- structured deposits (结构性存款) -------------------------------------------------------
    CatalogueProduct(
        "SD-1M-01", "智能存·1个月结构性存款", "Smart 1-month structured deposit", "structured_deposit", 1,
        _DIGITAL, 0.008, 50.0,
        {"term_days": 30, "min_amount": 10000, "expected_yield": 0.0180, "tags": ("短期", "稳健")},
    ),
    CatalogueProduct(
        "SD-3M-01", "汇利存·3个月结构性存款", "Huili 3-month structured deposit", "structured_deposit", 2,
        _ALL, 0.010, 140.0,
        {"term_days": 91, "min_amount": 10000, "expected_yield": 0.0230, "tags": ("短期", "稳健")},
        E(min_aum=10000),
    ),
    CatalogueProduct(
        "SD-6M-01", "汇利存·6个月结构性存款", "Huili 6-month structured deposit", "structured_deposit", 2,
        _ALL, 0.010, 260.0,
        {"term_days": 182, "min_amount": 10000, "expected_yield": 0.0250, "tags": ("稳健",)},
        E(min_aum=10000),
    ),
    CatalogueProduct(
        "SD-GOLD-3M", "金价挂钩·3个月结构性存款", "Gold-linked 3-month structured deposit",
        "structured_deposit", 3,
        _ADVISED, 0.012, 300.0,
        {"term_days": 92, "min_amount": 50000, "expected_yield": 0.0320, "tags": ("短期", "进取")},
        E(min_aum=50000),
    ),
    CatalogueProduct(
        "SD-PB-6M", "私行尊享·6个月结构性存款", "Private-banking 6-month structured deposit",
        "structured_deposit", 3,
        ("online_rm", "remote_agent"), 0.012, 6000.0,
        {"term_days": 182, "min_amount": 1000000, "expected_yield": 0.0350, "tags": ("私行", "大额")},
        E(min_aum=6000000),
    ),
    # ---- wealth management (理财) -----------------------------------------------------------------
    CatalogueProduct(
        "WM-R1-T0", "天天宝现金理财R1·T+0", "Daily cash wealth R1 T+0", "wealth_management", 1,
        _ALL, 0.004, 20.0,
        {"term_days": 1, "min_amount": 1, "expected_yield": 0.0160, "tags": ("灵活", "稳健", "短期")},
    ),
    CatalogueProduct(
        "WM-R2-30", "稳健理财R2·30天", "Steady wealth R2 30 days", "wealth_management", 2,
        _ALL, 0.006, 60.0,
        {"term_days": 30, "min_amount": 1000, "expected_yield": 0.0240, "tags": ("短期", "稳健")},
    ),
    CatalogueProduct(
        "WM-R2-90", "稳健理财R2·90天", "Steady wealth R2 90 days", "wealth_management", 2,
        _ALL, 0.007, 150.0,
        {"term_days": 90, "min_amount": 1000, "expected_yield": 0.0270, "tags": ("稳健",)},
    ),
    CatalogueProduct(
        "WM-R2-180", "稳健理财R2·180天", "Steady wealth R2 180 days", "wealth_management", 2,
        _ALL, 0.007, 260.0,
        {"term_days": 180, "min_amount": 10000, "expected_yield": 0.0290, "tags": ("稳健",)},
        E(min_aum=10000),
    ),
    CatalogueProduct(
        "WM-R3-365", "平衡理财R3·1年", "Balanced wealth R3 1 year", "wealth_management", 3,
        _ADVISED, 0.009, 520.0,
        {"term_days": 365, "min_amount": 10000, "expected_yield": 0.0380, "tags": ("平衡", "长期")},
        E(min_aum=30000),
    ),
    CatalogueProduct(
        "WM-PAY-R2", "代发专享理财R2·60天", "Payroll-exclusive wealth R2 60 days", "wealth_management", 2,
        _DIGITAL, 0.006, 90.0,
        {"term_days": 60, "min_amount": 1000, "expected_yield": 0.0280, "tags": ("代发专享", "稳健")},
        E(segments=("payroll",)),
    ),
    CatalogueProduct(
        "WM-R4-EQ", "权益增强理财R4·2年", "Equity-enhanced wealth R4 2 years", "wealth_management", 4,
        _ADVISED, 0.012, 900.0,
        {"term_days": 730, "min_amount": 50000, "expected_yield": 0.0550, "tags": ("进取", "长期")},
        E(min_aum=100000),
    ),
    CatalogueProduct(
        "WM-PB-R4", "私行尊享理财R4·1年", "Private-banking wealth R4 1 year", "wealth_management", 4,
        ("online_rm", "remote_agent"), 0.013, 8000.0,
        {"term_days": 365, "min_amount": 1000000, "expected_yield": 0.0500, "tags": ("私行", "大额")},
        E(min_aum=6000000),
    ),
    CatalogueProduct(
        "WM-PEN-R2", "养老理财R2·5年", "Retirement wealth R2 5 years", "wealth_management", 2,
        _ADVISED, 0.008, 480.0,
        {"term_days": 1825, "min_amount": 1, "expected_yield": 0.0400, "tags": ("养老", "稳健", "长期")},
        E(min_age=40),
    ),
    CatalogueProduct(
        "WM-NEW-R1", "新客专享理财R1·7天", "New-customer wealth R1 7 days", "wealth_management", 1,
        _DIGITAL, 0.003, 15.0,
        {"term_days": 7, "min_amount": 100, "expected_yield": 0.0300, "tags": ("新客", "短期")},
        E(lifecycle_stages=("potential", "new")),
    ),
    # ---- funds (基金) -----------------------------------------------------------------------------
    CatalogueProduct(
        "FD-MM-01", "货币基金·零钱宝", "Money-market fund", "fund", 1,
        _DIGITAL, 0.003, 10.0,
        {"min_amount": 1, "expected_yield": 0.0150, "tags": ("灵活", "稳健")},
    ),
    CatalogueProduct(
        "FD-BOND-01", "纯债基金·安盈债", "Pure bond fund", "fund", 2,
        _ALL, 0.006, 80.0,
        {"min_amount": 100, "expected_yield": 0.0300, "tags": ("稳健",)},
    ),
    CatalogueProduct(
        "FD-MIX-01", "偏债混合基金·稳进", "Bond-heavy hybrid fund", "fund", 3,
        _ADVISED, 0.009, 180.0,
        {"min_amount": 100, "tags": ("平衡",)},
    ),
    CatalogueProduct(
        "FD-IDX-300", "沪深300指数基金", "CSI 300 index fund", "fund", 4,
        _ALL, 0.008, 160.0,
        {"min_amount": 10, "tags": ("进取", "指数", "定投")},
    ),
    CatalogueProduct(
        "FD-EQ-TECH", "科技成长股票基金", "Tech growth equity fund", "fund", 5,
        _ADVISED, 0.014, 320.0,
        {"min_amount": 100, "tags": ("进取", "科技")},
    ),
    CatalogueProduct(
        "FD-QDII-01", "全球精选QDII基金", "Global select QDII fund", "fund", 5,
        _APP_RM, 0.015, 420.0,
        {"min_amount": 1000, "tags": ("进取", "全球")},
        E(min_aum=50000),
    ),
    CatalogueProduct(
        "FD-PEN-2045", "养老目标2045三年持有FOF", "Target-date 2045 pension FOF", "fund", 3,
        _ADVISED, 0.010, 260.0,
        {"term_days": 1095, "min_amount": 1, "tags": ("养老", "长期", "定投")},
        E(min_age=40),
    ),
    CatalogueProduct(
        "FD-DCA-500", "中证500指数定投", "CSI 500 index regular investment", "fund", 4,
        _DIGITAL, 0.008, 140.0,
        {"min_amount": 10, "tags": ("定投", "指数", "进取")},
    ),
    # ---- insurance (保险) -------------------------------------------------------------------------
    CatalogueProduct(
        "INS-ACC-01", "安行无忧意外险", "Accident insurance", "insurance", None,
        _DIGITAL, 0.250, 60.0,
        {"term_days": 365, "min_amount": 99, "tags": ("保障",)},
    ),
    CatalogueProduct(
        "INS-MED-01", "百万医疗险", "Million-yuan medical insurance", "insurance", None,
        _ALL, 0.200, 120.0,
        {"term_days": 365, "min_amount": 199, "tags": ("保障", "医疗")},
        E(max_age=65),
    ),
    CatalogueProduct(
        "INS-EDU-01", "少儿教育金保险", "Child education endowment", "insurance", None,
        _ADVISED, 0.150, 800.0,
        {"term_days": 5475, "min_amount": 5000, "tags": ("亲子", "教育", "长期")},
        E(min_age=25, max_age=50),
    ),
    CatalogueProduct(
        "INS-PEN-01", "个人养老年金保险", "Personal pension annuity", "insurance", 2,
        _ADVISED, 0.080, 1200.0,
        {"term_days": 3650, "min_amount": 10000, "tags": ("养老", "长期", "稳健")},
        E(min_age=40),
    ),
    CatalogueProduct(
        "INS-UL-01", "万能型终身寿险", "Universal life insurance", "insurance", 3,
        ("remote_agent", "online_rm"), 0.060, 1500.0,
        {"term_days": 7300, "min_amount": 50000, "tags": ("传承", "长期")},
        E(min_aum=300000),
    ),
    CatalogueProduct(
        "INS-ILP-01", "投资连结保险·进取账户", "Investment-linked insurance", "insurance", 4,
        ("remote_agent", "online_rm"), 0.050, 1800.0,
        {"term_days": 3650, "min_amount": 100000, "tags": ("进取", "长期")},
        E(min_aum=500000),
    ),
    # ---- credit cards (信用卡) ----------------------------------------------------------------------
    CatalogueProduct(
        "CC-YOUTH-01", "青春卡", "Youth credit card", "credit_card", None,
        _DIGITAL, 0.020, 220.0,
        {"annual_fee": 0, "credit_limit": 10000, "tags": ("青年", "消费")},
        E(min_age=18, max_age=35, excluded_holdings=("credit_card",)),
    ),
    CatalogueProduct(
        "CC-GOLD-01", "金卡", "Gold credit card", "credit_card", None,
        _ALL, 0.020, 300.0,
        {"annual_fee": 200, "credit_limit": 30000, "tags": ("消费",)},
        E(min_age=18, excluded_holdings=("credit_card",)),
    ),
    CatalogueProduct(
        "CC-PLAT-01", "白金卡", "Platinum credit card", "credit_card", None,
        _ADVISED, 0.025, 900.0,
        {"annual_fee": 2000, "credit_limit": 100000, "tags": ("高端", "旅行")},
        E(min_aum=200000, excluded_holdings=("credit_card",)),
    ),
    CatalogueProduct(
        "CC-TRAVEL-01", "畅游旅行信用卡", "Travel credit card", "credit_card", None,
        _DIGITAL, 0.022, 350.0,
        {"annual_fee": 300, "credit_limit": 50000, "tags": ("旅行", "消费")},
        E(min_age=22, max_age=55, excluded_holdings=("credit_card",)),
    ),
    CatalogueProduct(
        "CC-CAR-01", "车主信用卡", "Car owner credit card", "credit_card", None,
        _DIGITAL, 0.020, 280.0,
        {"annual_fee": 100, "credit_limit": 30000, "tags": ("车主", "消费")},
        E(min_age=22, excluded_holdings=("credit_card",)),
    ),
    CatalogueProduct(
        "CC-GBA-01", "湾区联名信用卡", "Greater Bay Area co-branded card", "credit_card", None,
        _DIGITAL, 0.020, 260.0,
        {"annual_fee": 0, "credit_limit": 20000, "tags": ("地方专属", "消费")},
        E(regions=("GD",), excluded_holdings=("credit_card",)),
    ),
    # ---- consumer loans (消费贷) --------------------------------------------------------------------
    CatalogueProduct(
        "CL-PAY-01", "薪易贷", "Payroll quick loan", "consumer_loan", None,
        _ALL, 0.045, 700.0,
        {"term_days": 365, "min_amount": 1000, "rate": 0.0360, "tags": ("代发专享", "消费")},
        E(segments=("payroll",), min_age=22, max_age=60),
    ),
    CatalogueProduct(
        "CL-CAR-01", "安心车贷", "Car loan", "consumer_loan", None,
        _ADVISED, 0.035, 1500.0,
        {"term_days": 1095, "min_amount": 30000, "rate": 0.0420, "tags": ("车主",)},
        E(min_age=22, max_age=60),
    ),
    CatalogueProduct(
        "CL-EDU-01", "教育分期", "Education instalment loan", "consumer_loan", None,
        _DIGITAL, 0.040, 400.0,
        {"term_days": 365, "min_amount": 2000, "rate": 0.0450, "tags": ("亲子", "教育")},
        E(min_age=25, max_age=55),
    ),
    CatalogueProduct(
        "CL-BILL-01", "账单分期", "Card bill instalment", "consumer_loan", None,
        _DIGITAL, 0.060, 150.0,
        {"term_days": 360, "min_amount": 500, "rate": 0.0600, "tags": ("消费",)},
        E(required_holdings=("credit_card",)),
    ),
    CatalogueProduct(
        "CL-RENO-01", "安居装修贷", "Home renovation loan", "consumer_loan", None,
        _ADVISED, 0.040, 1200.0,
        {"term_days": 1825, "min_amount": 50000, "rate": 0.0380, "tags": ("安居",)},
        E(segments=("mortgage",)),
    ),
    # ---- mortgage services (按揭服务) --------------------------------------------------------------
    CatalogueProduct(
        "MS-LOAN-01", "安居贷·个人住房按揭", "Residential mortgage", "mortgage_service", None,
        ("app", "online_rm"), 0.008, 0.0,
        {"term_days": 10950, "rate": 0.0310, "tags": ("安居", "长期")},
        # Held by the mortgage segment; origination happens in branches, never as an offer.
        E(segments=("mortgage",), excluded_holdings=("MS-LOAN-01",)),
    ),
    CatalogueProduct(
        "MS-PREPAY-01", "按揭提前还款预约", "Mortgage prepayment booking", "mortgage_service", None,
        ("app", "online_rm"), 0.000, 20.0,
        {"tags": ("安居", "服务")},
        E(segments=("mortgage",)),
    ),
    CatalogueProduct(
        "MS-RATE-01", "存量房贷利率调整", "Mortgage rate reset service", "mortgage_service", None,
        ("app", "sms", "remote_agent"), 0.000, 30.0,
        {"tags": ("安居", "服务")},
        E(segments=("mortgage",)),
    ),
    CatalogueProduct(
        "MS-GUARD-01", "房贷还款保障计划", "Mortgage repayment protection", "mortgage_service", None,
        _ADVISED, 0.120, 250.0,
        {"term_days": 365, "tags": ("安居", "保障")},
        E(segments=("mortgage",), max_age=60),
    ),
    # ---- payroll services (代发服务) ---------------------------------------------------------------
    CatalogueProduct(
        "PAY-CARD-01", "薪享通·工资卡", "Payroll card", "payroll_service", None,
        ("app", "online_rm"), 0.002, 0.0,
        {"tags": ("代发专享",)},
        # Issued through the employer's payroll agreement, so it is held but never offered.
        E(segments=("payroll",), excluded_holdings=("PAY-CARD-01",)),
    ),
    CatalogueProduct(
        "PAY-SWEEP-01", "薪资自动转存", "Salary auto-sweep to savings", "payroll_service", None,
        _DIGITAL, 0.003, 40.0,
        {"tags": ("代发专享", "稳健", "灵活")},
        E(segments=("payroll",), required_holdings=("PAY-CARD-01",)),
    ),
    CatalogueProduct(
        "PAY-ANNU-01", "企业年金个人账户", "Enterprise annuity account", "payroll_service", None,
        ("app", "online_rm", "remote_agent"), 0.004, 150.0,
        {"tags": ("代发专享", "养老")},
        E(segments=("payroll",), min_age=25),
    ),
    CatalogueProduct(
        "PAY-SSC-01", "社保卡金融功能激活", "Social-security card banking activation", "payroll_service",
        None,
        ("app", "sms", "mini_program"), 0.001, 15.0,
        {"tags": ("社保", "服务")},
        E(segments=("social_security",), excluded_holdings=("PAY-SSC-01",)),
    ),
)


@cache
def by_id() -> Mapping[str, CatalogueProduct]:
    """Catalogue products keyed by product id."""
    return {product.product_id: product for product in CATALOGUE}
