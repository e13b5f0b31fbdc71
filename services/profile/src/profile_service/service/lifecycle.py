"""Lifecycle stage and tags, recomputed from moments by the rules documented in the README.

Rules are evaluated in order; the first that matches gives the stage:

1. ``potential``   the customer holds no product.
2. ``new``         tenure under NEW_TENURE_MONTHS months.
3. ``churned``     no activity moment for CHURNED_INACTIVE_DAYS days (or never) and AUM < CHURNED_MAX_AUM.
4. ``churn_risk``  an ``aum_drop`` moment in the last 30 days of at least 30 % of the AUM before it
                   (amount / (aum + amount)), or AUM down at least 30 % against 90 days ago.
5. ``dormant``     no activity moment for DORMANT_INACTIVE_DAYS days (or never).
6. ``active``      otherwise.

Activity moments are those the customer makes: app logins and transactions (salary credited,
large inbound transfer, card bill). Maturities, birthdays and AUM drops are not activity.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

NEW_TENURE_MONTHS: Final = 3
DORMANT_INACTIVE_DAYS: Final = 90
CHURNED_INACTIVE_DAYS: Final = 180
CHURNED_MAX_AUM: Final = 1_000.0
CHURN_RISK_DROP: Final = 0.30
CHURN_RISK_WINDOW_DAYS: Final = 30

ACTIVITY_MOMENTS: Final = frozenset({"app_login", "salary_credited", "large_inbound_transfer", "card_bill"})

#: tag -> (moment types, look-back window). Each tag is set when such a moment happened in the window.
MOMENT_TAGS: Final[dict[str, tuple[frozenset[str], timedelta]]] = {
    "salary_recent": (frozenset({"salary_credited"}), timedelta(days=7)),
    "maturity_upcoming": (frozenset({"deposit_maturing", "wealth_maturing"}), timedelta(days=14)),
    "big_inflow": (frozenset({"large_inbound_transfer"}), timedelta(days=7)),
    "card_bill_due": (frozenset({"card_bill"}), timedelta(days=10)),
    "aum_drop_recent": (frozenset({"aum_drop"}), timedelta(days=30)),
}
FREQUENT_LOGINS_7D: Final = 5


@dataclass(frozen=True, slots=True)
class Moment:
    """The parts of a moment the rules look at."""

    event_type: str
    occurred_at: datetime
    amount: float | None = None


@dataclass(frozen=True, slots=True)
class CustomerState:
    """The parts of a customer the rules look at."""

    holdings_count: int
    tenure_months: int
    aum: float
    aum_90d_ago: float | None
    last_active_at: datetime | None
    birth_month: int


def last_activity(previous: datetime | None, moments: Iterable[Moment]) -> datetime | None:
    """The latest activity moment, given the previously known one."""
    latest = previous
    for moment in moments:
        if moment.event_type in ACTIVITY_MOMENTS and (latest is None or moment.occurred_at > latest):
            latest = moment.occurred_at
    return latest


def _inactive_for(state: CustomerState, days: int, as_of: datetime) -> bool:
    return state.last_active_at is None or as_of - state.last_active_at >= timedelta(days=days)


def _churn_risk(state: CustomerState, moments: Iterable[Moment], as_of: datetime) -> bool:
    window_start = as_of - timedelta(days=CHURN_RISK_WINDOW_DAYS)
    for moment in moments:
        if moment.event_type != "aum_drop" or moment.occurred_at < window_start or not moment.amount:
            continue
        before = state.aum + moment.amount
        if before > 0 and moment.amount / before >= CHURN_RISK_DROP:
            return True
    if state.aum_90d_ago is not None and state.aum_90d_ago > 0:
        return (state.aum_90d_ago - state.aum) / state.aum_90d_ago >= CHURN_RISK_DROP
    return False


def lifecycle_stage(state: CustomerState, moments: Iterable[Moment], as_of: datetime) -> str:
    """The lifecycle stage by the ordered rules of the module docstring."""
    moments = list(moments)
    if state.holdings_count == 0:
        return "potential"
    if state.tenure_months < NEW_TENURE_MONTHS:
        return "new"
    if _inactive_for(state, CHURNED_INACTIVE_DAYS, as_of) and state.aum < CHURNED_MAX_AUM:
        return "churned"
    if _churn_risk(state, moments, as_of):
        return "churn_risk"
    if _inactive_for(state, DORMANT_INACTIVE_DAYS, as_of):
        return "dormant"
    return "active"


def tags(state: CustomerState, moments: Iterable[Moment], as_of: datetime) -> list[str]:
    """Sorted tags: moment tags by window, ``birthday_month``, ``frequent_app_user``."""
    result: set[str] = set()
    logins_7d = 0
    for moment in moments:
        age = as_of - moment.occurred_at
        if age < timedelta(0):
            age = timedelta(0)
        for tag, (types, window) in MOMENT_TAGS.items():
            if moment.event_type in types and age <= window:
                result.add(tag)
        if moment.event_type == "app_login" and age <= timedelta(days=7):
            logins_7d += 1
    if state.birth_month == as_of.month:
        result.add("birthday_month")
    if logins_7d >= FREQUENT_LOGINS_7D:
        result.add("frequent_app_user")
    return sorted(result)


def tenure_months(customer_since: datetime, as_of: datetime) -> int:
    """Whole months between opening and ``as_of``."""
    months = (as_of.year - customer_since.year) * 12 + (as_of.month - customer_since.month)
    if as_of.day < customer_since.day:
        months -= 1
    return max(months, 0)
