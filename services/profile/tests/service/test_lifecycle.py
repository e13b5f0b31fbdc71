"""Lifecycle and tag rules, table-driven (the README documents the same table)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from profile_service.service.lifecycle import (
    CustomerState,
    Moment,
    last_activity,
    lifecycle_stage,
    tags,
    tenure_months,
)

AS_OF = datetime(2025, 6, 15, 12, tzinfo=UTC)


def _state(**overrides: object) -> CustomerState:
    base: dict[str, object] = {
        "holdings_count": 2,
        "tenure_months": 24,
        "aum": 50_000.0,
        "aum_90d_ago": None,
        "last_active_at": AS_OF - timedelta(days=2),
        "birth_month": 1,
    }
    base.update(overrides)
    return CustomerState(**base)  # type: ignore[arg-type]


def _days(n: float) -> datetime:
    return AS_OF - timedelta(days=n)


@pytest.mark.parametrize(
    ("state", "moments", "stage"),
    [
        (_state(holdings_count=0), [], "potential"),
        (_state(holdings_count=0, tenure_months=1), [], "potential"),
        (_state(tenure_months=2), [], "new"),
        (_state(tenure_months=2, last_active_at=None, aum=10), [], "new"),
        (_state(last_active_at=_days(200), aum=500), [], "churned"),
        (_state(last_active_at=None, aum=0), [], "churned"),
        (_state(last_active_at=_days(200), aum=5_000), [], "dormant"),  # too much money to be churned
        (_state(last_active_at=_days(95)), [], "dormant"),
        (_state(last_active_at=_days(89)), [], "active"),
        (_state(aum=60_000), [Moment("aum_drop", _days(3), 40_000)], "churn_risk"),  # 40%
        (_state(aum=80_000), [Moment("aum_drop", _days(3), 20_000)], "active"),  # 20%
        (_state(aum=10_000), [Moment("aum_drop", _days(40), 90_000)], "active"),  # outside 30 days
        (_state(aum=60_000, aum_90d_ago=100_000), [], "churn_risk"),
        (_state(aum=80_000, aum_90d_ago=100_000), [], "active"),
        (_state(last_active_at=_days(120), aum=60_000), [Moment("aum_drop", _days(1), 50_000)], "churn_risk"),
    ],
)
def test_lifecycle_stage(state: CustomerState, moments: list[Moment], stage: str) -> None:
    assert lifecycle_stage(state, moments, AS_OF) == stage


@pytest.mark.parametrize(
    ("moments", "birth_month", "expected"),
    [
        ([], 1, []),
        ([], 6, ["birthday_month"]),
        ([Moment("salary_credited", _days(3), 9000)], 1, ["salary_recent"]),
        ([Moment("salary_credited", _days(8), 9000)], 1, []),
        ([Moment("deposit_maturing", _days(5))], 1, ["maturity_upcoming"]),
        ([Moment("wealth_maturing", _days(20))], 1, []),
        ([Moment("large_inbound_transfer", _days(1), 1e6)], 1, ["big_inflow"]),
        ([Moment("card_bill", _days(9))], 1, ["card_bill_due"]),
        ([Moment("aum_drop", _days(29), 5)], 1, ["aum_drop_recent"]),
        ([Moment("app_login", _days(i)) for i in range(5)], 1, ["frequent_app_user"]),
        ([Moment("app_login", _days(i)) for i in range(4)], 1, []),
    ],
)
def test_tags(moments: list[Moment], birth_month: int, expected: list[str]) -> None:
    assert tags(_state(birth_month=birth_month), moments, AS_OF) == expected


def test_last_activity_ignores_non_activity_moments() -> None:
    moments = [Moment("birthday", _days(1)), Moment("app_login", _days(3)), Moment("aum_drop", _days(0), 1)]
    assert last_activity(_days(10), moments) == _days(3)
    assert last_activity(_days(1), moments) == _days(1)
    assert last_activity(None, [Moment("deposit_maturing", _days(1))]) is None


@pytest.mark.parametrize(
    ("since", "months"),
    [
        (datetime(2025, 3, 15, tzinfo=UTC), 3),
        (datetime(2025, 3, 16, tzinfo=UTC), 2),
        (AS_OF, 0),
        (AS_OF + timedelta(days=40), 0),
    ],
)
def test_tenure(since: datetime, months: int) -> None:
    assert tenure_months(since, AS_OF) == months
