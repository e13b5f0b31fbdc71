"""The recommender's series of the chart's metrics contract (deploy/helm/qianmian/README.md).

Module-level, on prometheus-client's default registry, which ``/metrics`` of every service exposes.
"""

from __future__ import annotations

import threading
from collections import Counter as Tally
from collections.abc import Iterable
from typing import Final, get_args

from prometheus_client import Counter
from prometheus_client.metrics_core import Metric
from qianmian_core.memo import IdentityMemo

from recommender.bounds import WARM_ENTRIES
from recommender.models import FEEDBACK_EVENTS, GRANT_STATUSES
from recommender.service.policies import RULE_METRIC, MetricRule, PolicyResult


class _DeferredCounter(Counter):
    """A counter whose decision-path increments are added when it is read (see record_policy_blocks)."""

    def collect(self) -> Iterable[Metric]:
        flush_policy_blocks()
        return super().collect()


POLICY_BLOCKS: Final = _DeferredCounter(
    "qianmian_policy_blocks_total",
    "Candidates (or, for caps and quiet hours, decisions) blocked by a policy, by rule",
    ["rule"],
)
AUDIT_WRITE_FAILURES: Final = Counter(
    "qianmian_audit_write_failures_total",
    "Decision audit records that could not be made durable (the decision was answered 503)",
)

FEEDBACK_EVENTS_TOTAL: Final = Counter(
    "qianmian_feedback_events_total",
    "Feedback events recorded by POST /v1/feedback, by event (idempotent replays are not counted)",
    ["event"],
)
RIGHTS_GRANTS_TOTAL: Final = Counter(
    "qianmian_rights_grants_total",
    "Attempts to grant a converted bundle's right through rights-hub, by outcome "
    "(granted, refused, pending_retry)",
    ["outcome"],
)

#: Every label value the contract allows, so each series exists (at 0) from start-up.
METRIC_RULES: Final[tuple[MetricRule, ...]] = get_args(MetricRule)
for _rule in METRIC_RULES:
    POLICY_BLOCKS.labels(rule=_rule)
for _event in FEEDBACK_EVENTS:
    FEEDBACK_EVENTS_TOTAL.labels(event=_event)
for _outcome in GRANT_STATUSES:
    RIGHTS_GRANTS_TOTAL.labels(outcome=_outcome)


def policy_blocks(result: PolicyResult) -> Tally[MetricRule]:
    """What one decision's policy stage blocked, by metric rule.

    A candidate counts once per metric rule it failed (``already_held`` and an eligibility code are
    both ``eligibility``); request-wide rules (quiet hours, caps) count once per decision, not once per
    candidate they repeat on.
    """
    blocks: Tally[MetricRule] = Tally()
    for outcome in result.request_outcomes:
        if not outcome.passed:
            blocks[RULE_METRIC[outcome.rule]] += 1
    for verdict in result.verdicts:
        if verdict.failed:
            blocks.update({RULE_METRIC[o.rule] for o in verdict.failed if not o.request_wide})
    return blocks


#: Each rule's child series, bound once (``labels`` looks the label value up on every call).
_POLICY_BLOCKS_BY_RULE: Final = {rule: POLICY_BLOCKS.labels(rule=rule) for rule in METRIC_RULES}
#: A kept policy result's blocks (the memo shares results across a customer's decisions).
_BLOCKS: IdentityMemo[Tally[MetricRule]] = IdentityMemo(WARM_ENTRIES)


class _Uses:
    """A kept blocks tally and how many decisions had it since the counter was last read."""

    __slots__ = ("blocks", "count")

    def __init__(self, blocks: Tally[MetricRule]) -> None:
        self.blocks = blocks
        self.count = 1


#: Decisions counted but not yet added to the series, per kept blocks tally (by id). Added when the
#: counter is read (a scrape, a test) or when it grows large.
_PENDING: dict[int, _Uses] = {}
_PENDING_MAX: Final = 1024
_PENDING_LOCK = threading.Lock()


def record_policy_blocks(result: PolicyResult) -> Tally[MetricRule]:
    """Count one decision's blocks into ``qianmian_policy_blocks_total``; returns what it counted
    (shared: never modify it).

    The series' increments are deferred: a warm customer's decisions share their policy result and
    so their tally, and the decision path only counts how many decisions had each tally. Every read
    of the counter (``collect``: a scrape, ``REGISTRY.get_sample_value``) adds them first, so what is
    read is exact. (Measured: six locked increments cost a fortieth of a decision.)
    """
    blocks = _BLOCKS.get((result,))
    if blocks is None:
        blocks = policy_blocks(result)
        _BLOCKS.put((result,), None, blocks)
    if not blocks:
        return blocks
    with _PENDING_LOCK:
        entry = _PENDING.get(id(blocks))
        if entry is None:
            _PENDING[id(blocks)] = _Uses(blocks)  # holds the tally: its id is not reused meanwhile
            large = len(_PENDING) >= _PENDING_MAX
        else:
            entry.count += 1
            return blocks
    if large:
        flush_policy_blocks()
    return blocks


def flush_policy_blocks() -> None:
    """Add the pending counts to ``qianmian_policy_blocks_total``."""
    global _PENDING
    with _PENDING_LOCK:
        pending, _PENDING = _PENDING, {}
    totals: Tally[MetricRule] = Tally()
    for uses in pending.values():
        for rule, n in uses.blocks.items():
            totals[rule] += n * uses.count
    for rule, n in totals.items():
        _POLICY_BLOCKS_BY_RULE[rule].inc(n)
