"""What the simulation served, what customers did, and what the planted preferences imply.

The **implied** figures are exact expectations under the response model, computed from what each
customer was actually served (no sampling). A decision's bundle at rank ``r`` converts with
``p = examination[r] × min(1, conversion_scale × a)`` (the planted affinity ``a``), independently of
the other bundles, and a product is bought at most once: its first success is the purchase, and later
impressions of it convert no more. A conversion counts for the experiment when it is **attributed**:
the customer has an exposure in it within the attribution window before the conversion time.
So, for one exposed customer and one product ``j`` shown at times ``t1 < t2 < …``,

    q_j = Σ over attributed impressions t of  p_t × Π over earlier impressions s of j (1 − p_s)

is the probability that ``j``'s purchase happens and is attributed (an earlier purchase, attributed
or not, ends the product's chances). Products are independent, so

    P(converted) = 1 − Π_j (1 − q_j)      E[attributed conversions] = Σ_j q_j.

The implied **margin** of a customer is ``Σ_j q_j × value_j``: the expected value to the bank (the
catalogue's ``value`` of a sale, what arbitration multiplies the propensity with) of the attributed
purchases, the analysis's ``margin_per_customer`` with the response noise taken out.

The implied conversion rate of an arm is the mean of ``P(converted)`` over its exposed customers: the
analysis's ``conversion_rate`` (converted exposed customers / exposed customers) with the response
noise taken out. Detected (the API's analysis, a sample) and implied (an expectation over the same
customers and the same served bundles) differ only by the customers' Bernoulli draws, so the detected
interval should cover the implied difference about 95 % of the time.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from recommender.experiments import stats


@dataclass(frozen=True, slots=True)
class ServedBundle:
    """One bundle of a decision and the customer's response to it."""

    product_id: str
    rank: int
    #: The planted affinity (as generated; not zeroed after a purchase).
    affinity: float
    #: P(convert) under the planted affinity, as if nothing had been bought yet.
    p_convert: float
    clicked: bool
    converted: bool
    value_fen: int | None = None


@dataclass(frozen=True, slots=True)
class ServedDecision:
    """One decision of the simulation: who, when, which arm, what was served and what happened."""

    decision_id: str
    customer_id: str
    day: int
    at: datetime
    experiment_id: str | None
    arm: str | None
    #: Whether the decision logged an exposure in ``experiment_id``.
    exposed: bool
    bundles: tuple[ServedBundle, ...]
    #: When the customer's conversions of this decision happen (feedback ``at``).
    converted_at: datetime | None = None
    #: Whether another arm would have served something else (from the audit; None: not read).
    answers_differ: bool | None = None


@dataclass(frozen=True)
class ArmOutcome:
    """One arm's exposed customers with the observed and the implied conversion figures."""

    arm: str
    exposed_customers: int
    exposures: int
    converted_customers: int
    conversions: int
    implied_converted: float
    implied_conversions: float
    #: Expected margin (fen) of the attributed purchases, summed over the exposed customers.
    implied_margin_fen: float = 0.0

    @property
    def conversion_rate(self) -> float:
        return self.converted_customers / self.exposed_customers if self.exposed_customers else 0.0

    @property
    def implied_rate(self) -> float:
        return self.implied_converted / self.exposed_customers if self.exposed_customers else 0.0

    @property
    def implied_conversions_per_customer(self) -> float:
        return self.implied_conversions / self.exposed_customers if self.exposed_customers else 0.0

    @property
    def implied_margin_per_customer(self) -> float:
        """Expected margin (fen) per exposed customer."""
        return self.implied_margin_fen / self.exposed_customers if self.exposed_customers else 0.0


@dataclass(frozen=True)
class Uplift:
    """Treatment minus control on the conversion rate: observed (with its interval) and implied."""

    treatment: str
    control: str
    observed: stats.Comparison | None
    implied: float
    implied_relative: float | None

    @property
    def covered(self) -> bool | None:
        """Whether the observed interval covers the implied difference (None without an interval)."""
        if self.observed is None:
            return None
        return self.observed.ci_low <= self.implied <= self.observed.ci_high


def _conversion_time(d: ServedDecision) -> datetime:
    return d.converted_at or d.at


def attributed_purchases(visits: Iterable[tuple[bool, Sequence[tuple[str, float]]]]) -> dict[str, float]:
    """``{product_id: q_j}``: the chance that the product's purchase happens and is attributed, from one
    customer's decisions in time order, each ``(attributed, [(product_id, p_convert), …])``."""
    unbought: dict[str, float] = defaultdict(lambda: 1.0)
    attributed_purchase: dict[str, float] = defaultdict(float)
    for attributed, bundles in visits:
        for product_id, p in bundles:
            if attributed:
                attributed_purchase[product_id] += p * unbought[product_id]
            unbought[product_id] *= 1.0 - p
    return dict(attributed_purchase)


def expectation(visits: Iterable[tuple[bool, Sequence[tuple[str, float]]]]) -> tuple[float, float]:
    """``(P(at least one attributed conversion), E[attributed conversions])`` of one customer from their
    decisions in time order, each ``(attributed, [(product_id, p_convert), …])`` (module docstring)."""
    return _summarise(attributed_purchases(visits))


def _summarise(attributed_purchase: Mapping[str, float]) -> tuple[float, float]:
    none = 1.0
    for q in attributed_purchase.values():
        none *= 1.0 - q
    total = sum(attributed_purchase.values())
    # P(any) <= E[count] holds exactly; clamp so float rounding cannot invert it.
    return min(1.0 - none, total), total


def _attributed(d: ServedDecision, exposures: Sequence[datetime], window: timedelta) -> bool:
    at = _conversion_time(d)
    return any(at - window <= e <= at for e in exposures)


def arm_outcomes(
    decisions: Iterable[ServedDecision],
    experiment_id: str,
    *,
    window: timedelta,
    through_day: int | None = None,
    values: Mapping[str, float] | None = None,
) -> dict[str, ArmOutcome]:
    """Per arm of ``experiment_id``: exposed customers, observed attributed conversions, and the
    implied (expected) converted customers, conversions and margin (``values``: CNY per product id),
    over the days ``<= through_day``."""
    by_customer: dict[str, list[ServedDecision]] = defaultdict(list)
    for d in decisions:
        in_arm = d.experiment_id == experiment_id and d.arm is not None
        if in_arm and (through_day is None or d.day <= through_day):
            by_customer[d.customer_id].append(d)
    acc: dict[str, list[float]] = defaultdict(lambda: [0, 0, 0, 0, 0.0, 0.0, 0.0])
    for rows in by_customer.values():
        rows.sort(key=lambda d: d.at)
        exposures = [d.at for d in rows if d.exposed]
        if not exposures:
            continue
        arm = next(d.arm for d in rows if d.exposed)
        assert arm is not None
        a = acc[arm]
        a[0] += 1
        a[1] += len(exposures)
        flags = [_attributed(d, exposures, window) for d in rows]
        converted = sum(b.converted for d, f in zip(rows, flags, strict=True) if f for b in d.bundles)
        purchases = attributed_purchases(
            (f, [(b.product_id, b.p_convert) for b in d.bundles]) for d, f in zip(rows, flags, strict=True)
        )
        p_any, expected = _summarise(purchases)
        if values is not None:
            a[6] += sum(100.0 * q * values.get(pid, 0.0) for pid, q in purchases.items())
        a[2] += int(converted > 0)
        a[3] += converted
        a[4] += p_any
        a[5] += expected
    return {
        arm: ArmOutcome(
            arm=arm,
            exposed_customers=int(a[0]),
            exposures=int(a[1]),
            converted_customers=int(a[2]),
            conversions=int(a[3]),
            implied_converted=float(a[4]),
            implied_conversions=float(a[5]),
            implied_margin_fen=float(a[6]),
        )
        for arm, a in acc.items()
    }


def uplift(outcomes: Mapping[str, ArmOutcome], treatment: str, control: str) -> Uplift:
    """The conversion-rate difference of ``treatment`` against ``control``, observed and implied."""
    t, c = outcomes.get(treatment), outcomes.get(control)
    if t is None or c is None:
        return Uplift(treatment, control, None, 0.0, None)
    observed = (
        stats.compare_proportions(
            t.converted_customers, t.exposed_customers, c.converted_customers, c.exposed_customers
        )
        if t.exposed_customers >= 2 and c.exposed_customers >= 2
        else None
    )
    implied = t.implied_rate - c.implied_rate
    return Uplift(
        treatment,
        control,
        observed,
        implied,
        implied / c.implied_rate if c.implied_rate > 0 else None,
    )


@dataclass(frozen=True)
class DailyUplift:
    """The cumulative uplift after each simulated day (for the chart; reading it daily is peeking)."""

    day: int
    exposed: Mapping[str, int]
    rates: Mapping[str, float]
    uplift: Uplift


def daily_uplift(
    decisions: Sequence[ServedDecision],
    experiment_id: str,
    *,
    treatment: str,
    control: str,
    window: timedelta,
    days: int,
) -> list[DailyUplift]:
    """:func:`uplift` on the data up to the end of each day 0 … ``days`` − 1."""
    out = []
    for day in range(days):
        outcomes = arm_outcomes(decisions, experiment_id, window=window, through_day=day)
        out.append(
            DailyUplift(
                day=day,
                exposed={a: o.exposed_customers for a, o in outcomes.items()},
                rates={a: o.conversion_rate for a, o in outcomes.items()},
                uplift=uplift(outcomes, treatment, control),
            )
        )
    return out


def paired_implied_rates(
    decisions: Iterable[ServedDecision],
    counterfactual: Mapping[str, Mapping[str, Sequence[tuple[str, float]]]],
    experiment_id: str,
    *,
    window: timedelta,
) -> dict[str, float]:
    """The implied conversion rate of every arm over the **same** customers: all customers exposed in
    the experiment, each as if served by that arm (their own answers for their arm, the audit's
    counterfactual answers, made from the same inputs, for the others).

    Free of the assignment's noise (who happened to land in which arm): the uplift the planted
    preferences imply for this population. Approximate where the arms' histories diverge (a conversion
    or a contact in one arm changes the next decision's inputs; the counterfactual is per decision).
    """
    by_customer: dict[str, list[ServedDecision]] = defaultdict(list)
    for d in decisions:
        if d.experiment_id == experiment_id and d.arm is not None:
            by_customer[d.customer_id].append(d)
    arms = sorted({d.arm for rows in by_customer.values() for d in rows if d.arm is not None})
    arms += sorted({a for c in counterfactual.values() for a in c} - set(arms))
    totals = dict.fromkeys(arms, 0.0)
    customers = 0
    for rows in by_customer.values():
        rows.sort(key=lambda d: d.at)
        exposures = [d.at for d in rows if d.exposed]
        if not exposures:
            continue
        customers += 1
        flags = [_attributed(d, exposures, window) for d in rows]
        for arm in arms:
            visits = []
            for d, f in zip(rows, flags, strict=True):
                own = [(b.product_id, b.p_convert) for b in d.bundles]
                answer = own if arm == d.arm else counterfactual.get(d.decision_id, {}).get(arm, own)
                visits.append((f, answer))
            totals[arm] += expectation(visits)[0]
    return {arm: (total / customers if customers else 0.0) for arm, total in totals.items()}


@dataclass(frozen=True)
class ServedProduct:
    """How often an arm's first bundle was a product in the decisions where the arms differed."""

    product_id: str
    decisions: int
    mean_p_convert: float


def differing_answers(
    decisions: Iterable[ServedDecision],
    counterfactual: Mapping[str, Mapping[str, Sequence[tuple[str, float]]]],
    experiment_id: str,
) -> dict[str, list[ServedProduct]]:
    """Per arm, the first bundle it served (or would have served: the audit's counterfactual) in the
    exposed decisions, most frequent first: what the arms disagree about."""
    seen: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for d in decisions:
        if d.experiment_id != experiment_id or d.arm is None or not d.exposed or not d.bundles:
            continue
        seen[d.arm][d.bundles[0].product_id].append(d.bundles[0].p_convert)
        for arm, answer in counterfactual.get(d.decision_id, {}).items():
            if answer:
                seen[arm][answer[0][0]].append(answer[0][1])
    return {
        arm: sorted(
            (ServedProduct(p, len(v), sum(v) / len(v)) for p, v in products.items()),
            key=lambda s: (-s.decisions, s.product_id),
        )
        for arm, products in seen.items()
    }


@dataclass(frozen=True)
class FirstChoices:
    """One arm's exposed decisions: the mean P(convert) of the first bundle it served, of its model's own
    first choice among the candidates every policy allowed, and of the best of those candidates."""

    arm: str
    decisions: int
    served: float
    model_first: float
    best_allowed: float


def first_choices(
    records: Iterable[tuple[str, str, Mapping[str, Any], Sequence[Mapping[str, Any]]]],
    p_convert: Callable[[str, str], float],
) -> dict[str, FirstChoices]:
    """Per arm, from audit records ``(arm, customer_id, response, candidates)`` of exposed decisions:
    whether arbitration kept the model's ranking. ``p_convert(customer, product)`` is the planted
    P(convert) at the first slot. The model's first choice is the allowed candidate of highest score
    among those a ``cf:`` source proposed; decisions without bundles or such a candidate are skipped."""
    sums: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0, 0.0])
    for arm, customer, response, candidates in records:
        bundles = response.get("bundles") or []
        allowed = [c for c in candidates if c.get("allowed")]
        model = [c for c in allowed if any(str(s).startswith("cf:") for s in c.get("sources", ()))]
        if not bundles or not model:
            continue
        first = max(model, key=lambda c: (float(c["score"]), str(c["product_id"])))
        acc = sums[arm]
        acc[0] += 1
        acc[1] += p_convert(customer, str(bundles[0]["product"]["id"]))
        acc[2] += p_convert(customer, str(first["product_id"]))
        acc[3] += max(p_convert(customer, str(c["product_id"])) for c in allowed)
    return {
        arm: FirstChoices(arm, int(n), served / n, model_first / n, best / n)
        for arm, (n, served, model_first, best) in sums.items()
        if n
    }
