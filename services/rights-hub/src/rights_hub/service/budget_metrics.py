"""``qianmian_rights_budget_remaining_ratio``: how much of each active right's budget is left (0–1).

Computed from the rights table at scrape time, so the gauge is exactly what the ledger's counters say
(holds, grants and redemptions all use budget), with no second bookkeeping to drift. The ratio is the
smaller of what is left in count and in money (a money budget of 0 counts only the count). The chart's
``QianmianRightsBudgetNearlyExhausted`` alert fires below ``rightsBudget.remainingRatio``.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import REGISTRY, GaugeMetricFamily
from prometheus_client.registry import Collector
from qianmian_core.db import Database
from qianmian_core.logging import get_logger
from sqlalchemy import select

from rights_hub.models import Right

log = get_logger(__name__)

NAME = "qianmian_rights_budget_remaining_ratio"
HELP = "Share of an active right's budget (count and money, whichever is lower) not yet used"


def remaining_ratio(right: Right) -> float:
    """``min(count left / count budget, money left / money budget)`` in [0, 1]."""
    used_count = right.held_count + right.granted_count + right.redeemed_count
    ratio = max(0.0, (right.budget_count - used_count) / right.budget_count)
    if right.budget_money_fen > 0:
        used_money = right.held_money_fen + right.granted_money_fen + right.redeemed_money_fen
        ratio = min(ratio, max(0.0, (right.budget_money_fen - used_money) / right.budget_money_fen))
    return ratio


class BudgetCollector(Collector):
    """Reads the active rights of the database it is bound to on every scrape."""

    def __init__(self) -> None:
        self.database: Database | None = None

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(NAME, HELP, labels=["budget"])

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(NAME, HELP, labels=["budget"])
        database = self.database
        if database is not None:
            try:
                with database.session() as session:
                    for right in session.scalars(select(Right).where(Right.status == "active")):
                        family.add_metric([right.right_id], remaining_ratio(right))
            except Exception as exc:  # a scrape must not fail because the database is down
                log.warning("budget_metric_unavailable", error_type=type(exc).__name__)
        yield family


#: One collector per process (the service runs one app); ``bind`` points it at the app's database.
COLLECTOR = BudgetCollector()
REGISTRY.register(COLLECTOR)


def bind(database: Database) -> None:
    COLLECTOR.database = database
