"""Customer value: CLV as the discounted expected margin times retention probability.

    CLV = sum_{t=1..H} m * r**t / (1 + d)**t

    m = DEPOSIT_SPREAD * deposits + WEALTH_FEE * max(aum - deposits, 0) + LOAN_SPREAD * loans
    r = RETENTION_BY_STAGE[lifecycle_stage]      (probability the customer is still with us after a year)
    d = DISCOUNT_RATE, H = HORIZON_YEARS

The constants are documented in services/profile/README.md; change them there and here together.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

DEPOSIT_SPREAD: Final = 0.015  # net interest margin earned on deposits, per year
WEALTH_FEE: Final = 0.006  # fee income on non-deposit AUM (wealth, funds, insurance), per year
LOAN_SPREAD: Final = 0.02  # net interest margin on loans after expected credit loss, per year
DISCOUNT_RATE: Final = 0.08  # the bank's cost of capital
HORIZON_YEARS: Final = 5

RETENTION_BY_STAGE: Final[dict[str, float]] = {
    "potential": 0.50,
    "new": 0.75,
    "active": 0.90,
    "dormant": 0.60,
    "churn_risk": 0.50,
    "churned": 0.20,
}


@dataclass(frozen=True, slots=True)
class CustomerValue:
    """CLV and the components it was computed from."""

    annual_margin: float
    retention_probability: float
    discount_rate: float
    horizon_years: int
    clv: float


def annual_margin(aum: float, deposits: float, loans: float) -> float:
    """Expected margin per year, CNY."""
    return DEPOSIT_SPREAD * deposits + WEALTH_FEE * max(aum - deposits, 0.0) + LOAN_SPREAD * loans


def customer_value(aum: float, deposits: float, loans: float, lifecycle_stage: str) -> CustomerValue:
    """The CLV of a customer with these balances in this lifecycle stage."""
    m = annual_margin(aum, deposits, loans)
    r = RETENTION_BY_STAGE[lifecycle_stage]
    clv = sum(m * r**t / (1.0 + DISCOUNT_RATE) ** t for t in range(1, HORIZON_YEARS + 1))
    return CustomerValue(
        annual_margin=round(m, 2),
        retention_probability=r,
        discount_rate=DISCOUNT_RATE,
        horizon_years=HORIZON_YEARS,
        clv=round(clv, 2),
    )
