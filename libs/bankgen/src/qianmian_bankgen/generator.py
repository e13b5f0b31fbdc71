"""The synthetic bank: customers, holdings, moments, interactions, planted preferences and features.

Everything follows ``docs/data-contract.md``. The generator is vectorised over customers (loops run
over products, months or event types, never over people) and draws from independent child streams
of ``numpy.random.SeedSequence(seed)``, so the same arguments always give identical files.

The order of the stages matters because each depends on the previous ones:

1. customers (demographics, segments, balances, risk assessment, consent);
2. prior holdings, consistent with segments and with suitability at the time they were opened;
3. moments of truth (salary, maturities of the prior holdings, card bills, birthdays …);
4. planted preferences: a latent-factor affinity, zero where the customer is not offerable;
5. interactions: purchases ~ Bernoulli(affinity), each preceded by an impression and a click in
   a consented channel, plus non-converting impressions and clicks;
6. final holdings (prior + purchases) and the state at as-of, from which the oracle is masked;
7. Feast feature tables.

Choices the contract leaves open, made here once:

- ``truth/preferences.npz`` holds the propensity that drove the purchases, zeroed where the customer
  is not offerable *at as-of* (so a customer who bought a card in the window has no affinity left
  for another card; ``excluded_holdings`` products are the only ones bought with oracle 0).
- Snapshot timestamps are midnight UTC: month-end days for ``customer_profile``, ``as-of − 7k``
  days for the weekly tables; each window ``[T − d, T)`` excludes ``T`` itself.
- ``moments_*`` and ``last_moment_*`` count moments of truth other than ``app_login``; logins are
  counted by ``logins_7d``.
- ``popularity_30d`` is purchases in the last 30 days per 1,000 customers (per 1,000 segment
  members for ``pop_<segment>_30d``); ``conversion_30d`` is purchases / impressions (0 without
  impressions). Segment membership is the state at as-of.
- ``event_id`` is ``E`` + 11 digits, numbered in time order.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Final

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from numpy.typing import NDArray
from qianmian_rules import LIFECYCLE_STAGES, MOMENT_TYPES, PRODUCT_TYPES, SEGMENTS

from qianmian_bankgen.catalogue import CATALOGUE, CHANNELS, CatalogueProduct
from qianmian_bankgen.pii import generate_pii, id_strings
from qianmian_bankgen.rules import CustomerArrays, offerable_matrix

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
Bool = NDArray[np.bool_]

DAY: Final = 86_400
HOUR: Final = 3_600
WINDOW_DAYS: Final = 180
US: Final = 1_000_000

AGE_BANDS: Final[tuple[str, ...]] = ("18-25", "26-35", "36-45", "46-55", "56-65", "66+")
_AGE_EDGES: Final = np.array([26, 36, 46, 56, 66])
_AUM_EDGES: Final = np.array([10_000.0, 50_000.0, 200_000.0, 1_000_000.0])
REGIONS: Final[tuple[str, ...]] = ("GD", "GX", "FJ", "HN", "JX", "HA", "SC", "ZJ", "JS", "SH", "BJ", "HB")
# A Guangdong regional bank: most customers are local, the rest migrated from nearby provinces.
_REGION_P: Final = (0.62, 0.06, 0.06, 0.05, 0.03, 0.03, 0.03, 0.03, 0.03, 0.02, 0.02, 0.02)
_LIFECYCLE_P: Final = (0.05, 0.10, 0.52, 0.15, 0.10, 0.08)
EVENT_TYPES: Final[tuple[str, ...]] = MOMENT_TYPES
INTERACTION_TYPES: Final[tuple[str, ...]] = ("impression", "click", "purchase")
_CONSENT_P: Final = np.array([0.93, 0.70, 0.62, 0.45, 0.28, 0.38])
#: Expected purchases per customer over the window; the affinity matrix is scaled to it.
TARGET_PURCHASES_PER_CUSTOMER: Final = 3.0

_POTENTIAL, _NEW, _ACTIVE, _DORMANT, _CHURN_RISK, _CHURNED = range(6)
_PAYROLL, _MORTGAGE, _CARD, _WEALTH, _SOCIAL, _LONG_TAIL = range(6)
_TS_TYPE = pa.timestamp("us", tz="UTC")
_MONEY_MOMENTS: Final = ("salary_credited", "deposit_maturing", "wealth_maturing", "large_inbound_transfer")
_SAVINGS_TYPES: Final = [
    PRODUCT_TYPES.index(t) for t in ("deposit", "structured_deposit", "wealth_management")
]


@dataclass(frozen=True)
class Manifest:
    """What one generation run produced; written to ``manifest.json``."""

    seed: int
    customers: int
    as_of: date
    rows: Mapping[str, int]
    seconds: float

    def to_json(self) -> str:
        """The manifest as the JSON text of ``manifest.json``."""
        return json.dumps(
            {
                "seed": self.seed,
                "customers": self.customers,
                "as_of": self.as_of.isoformat(),
                "rows": dict(self.rows),
                "seconds": round(self.seconds, 3),
            },
            indent=2,
            sort_keys=True,
        )


@dataclass
class _Customers:
    """Column-wise customer state; mutable because holdings update segments at the end."""

    age: I64
    birth: NDArray[np.datetime64]
    male: Bool
    city_tier: I64
    region: I64
    lifecycle: I64
    created: I64
    seg: Bool
    aum: F64
    deposits: F64
    loans: F64
    risk_level: I64
    assessed: I64
    expires: I64
    consent: Bool
    opt_out: Bool
    start: I64 = field(init=False)

    @property
    def n(self) -> int:
        return int(self.age.shape[0])


@dataclass(frozen=True)
class _Catalogue:
    """The catalogue as arrays aligned with product index."""

    products: tuple[CatalogueProduct, ...]
    ptype: I64
    rating: I64  # 0 = not risk-rated
    channels: Bool  # [P × channels]
    term_days: I64  # 0 = no term
    min_amount: F64

    @property
    def size(self) -> int:
        return len(self.products)

    def ids(self, wanted: str) -> I64:
        """Indices of products of one type."""
        return np.flatnonzero(self.ptype == PRODUCT_TYPES.index(wanted)).astype(np.int64)

    def index(self, product_id: str) -> int:
        return next(j for j, p in enumerate(self.products) if p.product_id == product_id)


@dataclass
class _Rows:
    """A growing set of column arrays (events, interactions, holdings) assembled from parts."""

    parts: dict[str, list[NDArray[np.generic]]] = field(default_factory=dict)

    def add(self, **columns: NDArray[np.generic]) -> None:
        for name, values in columns.items():
            self.parts.setdefault(name, []).append(values)

    def build(self) -> dict[str, NDArray[np.generic]]:
        return {name: np.concatenate(values) for name, values in self.parts.items()}


def _catalogue_arrays(products: Sequence[CatalogueProduct]) -> _Catalogue:
    def number(p: CatalogueProduct, key: str) -> float:
        value = p.attributes.get(key, 0)
        return float(value) if isinstance(value, int | float) else 0.0

    return _Catalogue(
        products=tuple(products),
        ptype=np.array([PRODUCT_TYPES.index(p.product_type) for p in products], dtype=np.int64),
        rating=np.array([p.risk_rating or 0 for p in products], dtype=np.int64),
        channels=np.array([[c in p.channels for c in CHANNELS] for p in products], dtype=np.bool_),
        term_days=np.array([int(number(p, "term_days")) for p in products], dtype=np.int64),
        min_amount=np.array([number(p, "min_amount") for p in products], dtype=np.float64),
    )


def _f64(values: object) -> F64:
    return np.asarray(values, dtype=np.float64)


def _i64(values: object) -> I64:
    return np.asarray(values, dtype=np.int64)


def _uniform_between(rng: np.random.Generator, lo: I64, hi: I64) -> I64:
    """Integer seconds uniformly in ``[lo, hi)`` (``lo`` where the interval is empty)."""
    span = np.maximum(hi - lo, 1)
    return _i64(lo + (rng.random(lo.shape[0]) * span).astype(np.int64))


# ---------------------------------------------------------------------------------------------
# 1. customers
# ---------------------------------------------------------------------------------------------


def _birth_parts(birth: NDArray[np.datetime64]) -> tuple[I64, I64, I64]:
    year = birth.astype("datetime64[Y]").astype(np.int64) + 1970
    month = birth.astype("datetime64[M]").astype(np.int64) % 12 + 1
    day = (birth - birth.astype("datetime64[M]").astype("datetime64[D]")).astype(np.int64) + 1
    return year, month, day


def _age_at(birth: NDArray[np.datetime64], at: date) -> I64:
    year, month, day = _birth_parts(birth)
    before_birthday = (month > at.month) | ((month == at.month) & (day > at.day))
    return _i64(at.year - year - before_birthday)


def _customers(rng: np.random.Generator, n: int, as_of: date, asof_s: int) -> _Customers:
    # Adult bank customers, skewed to working age, with a long tail of retirees.
    age_draw = np.clip(np.rint(rng.gamma(4.0, 7.0, n) + 14), 18, 88).astype(np.int64)
    days_back = age_draw * 365.2425 + rng.uniform(1, 363, n)
    birth = np.datetime64(as_of, "D") - days_back.astype("timedelta64[D]")
    age = _age_at(birth, as_of)
    male = rng.random(n) < 0.49
    city_tier = rng.choice(np.arange(1, 5), n, p=[0.2, 0.35, 0.3, 0.15]).astype(np.int64)
    region = rng.choice(len(REGIONS), n, p=_REGION_P).astype(np.int64)
    lifecycle = rng.choice(len(LIFECYCLE_STAGES), n, p=_LIFECYCLE_P).astype(np.int64)

    tenure_draw = np.where(
        lifecycle == _POTENTIAL,
        rng.integers(0, 2, n),
        np.where(lifecycle == _NEW, rng.integers(0, 6, n), 6 + rng.exponential(54.0, n).astype(np.int64)),
    )
    tenure_draw = np.minimum(tenure_draw, np.maximum(6, (age - 16) * 12))
    created = asof_s - ((tenure_draw * 30.44 + rng.uniform(1, 29, n)) * DAY).astype(np.int64)

    potential = lifecycle == _POTENTIAL
    working = (age >= 22) & (age <= 60)
    seg = np.zeros((n, len(SEGMENTS)), dtype=np.bool_)
    seg[:, _PAYROLL] = ~potential & (rng.random(n) < np.where(working, 0.41, 0.05))
    seg[:, _MORTGAGE] = ~potential & (rng.random(n) < np.where((age >= 27) & (age <= 58), 0.16, 0.03))
    seg[:, _CARD] = ~potential & (rng.random(n) < np.where(age <= 45, 0.34, 0.26))
    seg[:, _SOCIAL] = rng.random(n) < 0.25 + 0.12 * (age >= 50)

    log_mu = (
        np.log(15_000.0)
        + 0.028 * np.minimum(age - 18, 40)
        + 0.7 * seg[:, _PAYROLL]
        + 0.5 * seg[:, _MORTGAGE]
        + 0.3 * (city_tier == 1)
        - 0.3 * (city_tier == 4)
        - 1.0 * (lifecycle == _CHURNED)
    )
    log_mu = np.where(potential, np.log(800.0), log_mu)
    aum = np.round(np.exp(rng.normal(log_mu, 1.45)), 2)
    wealth_draw = rng.random(n)
    seg[:, _WEALTH] = ~potential & (
        ((aum >= 300_000) & (wealth_draw < 0.85)) | ((aum >= 50_000) & (wealth_draw < 0.18))
    )
    seg[:, _LONG_TAIL] = (aum < 50_000) & ~seg[:, _PAYROLL] & ~seg[:, _WEALTH]
    deposit_share = np.where(seg[:, _WEALTH], rng.beta(2, 3, n), rng.beta(6, 2, n))
    deposits = np.round(aum * deposit_share, 2)
    loans = _f64(
        seg[:, _MORTGAGE] * np.exp(rng.normal(np.log(550_000), 0.6, n))
        + seg[:, _CARD] * (rng.random(n) < 0.5) * np.exp(rng.normal(np.log(6_000), 1.0, n))
        + (rng.random(n) < 0.08) * np.exp(rng.normal(np.log(50_000), 0.8, n))
    )
    loans = _f64(np.round(loans, 2))

    # Risk assessment (风险测评): ~15% never assessed, ~10% expired, level follows wealth and age.
    p_never = np.clip(0.14 - 0.12 * seg[:, _WEALTH] + 0.5 * potential, 0, 0.95)
    assessed_any = rng.random(n) >= p_never
    lo_expired = np.maximum(created, asof_s - 900 * DAY)
    hi_expired = asof_s - 366 * DAY
    expired = assessed_any & (rng.random(n) < 0.14) & (hi_expired > lo_expired + DAY)
    lo_valid = np.maximum(created, asof_s - 364 * DAY)
    assessed = np.where(
        expired,
        _uniform_between(rng, lo_expired, np.full(n, hi_expired)),
        _uniform_between(rng, lo_valid, np.full(n, asof_s - HOUR)),
    )
    score = (
        0.45 * (np.log(aum + 1.0) - 10.0) - 0.03 * (age - 40) + 0.6 * seg[:, _WEALTH] + rng.normal(0, 0.9, n)
    )
    risk_level = np.where(assessed_any, 1 + np.digitize(score, [-1.3, -0.4, 0.5, 1.4]), 0).astype(np.int64)
    assessed = np.where(assessed_any, assessed, 0)
    expires = np.where(assessed_any, assessed + 365 * DAY, 0)

    consent_p = _CONSENT_P[None, :] * np.where(lifecycle == _CHURNED, 0.6, 1.0)[:, None]
    consent = rng.random((n, len(CHANNELS))) < consent_p
    opt_out = rng.random(n) < 0.05

    customers = _Customers(
        age=age,
        birth=birth,
        male=male,
        city_tier=city_tier,
        region=region,
        lifecycle=lifecycle,
        created=created,
        seg=seg,
        aum=aum,
        deposits=deposits,
        loans=loans,
        risk_level=risk_level,
        assessed=assessed.astype(np.int64),
        expires=expires.astype(np.int64),
        consent=consent,
        opt_out=opt_out,
    )
    customers.start = np.maximum(created, asof_s - WINDOW_DAYS * DAY)
    return customers


def _rule_arrays(c: _Customers, held: Bool) -> CustomerArrays:
    return CustomerArrays(
        age=c.age,
        aum=c.aum,
        region=np.asarray(REGIONS)[c.region],
        segments=c.seg,
        lifecycle=c.lifecycle,
        held=held,
        risk_level=c.risk_level,
        risk_expires_us=c.expires * US,
    )


# ---------------------------------------------------------------------------------------------
# 2. prior holdings
# ---------------------------------------------------------------------------------------------

# Chance that an (eligible, suitable) customer already holds one product of the type before the window.
_HOLD_P: Final[dict[str, float]] = {
    "deposit": 0.16,
    "structured_deposit": 0.05,
    "wealth_management": 0.07,
    "fund": 0.05,
    "insurance": 0.04,
    "consumer_loan": 0.03,
    "mortgage_service": 0.08,
    "payroll_service": 0.12,
}


def _holding_amount(rng: np.random.Generator, cat: _Catalogue, j: int, c: _Customers, rows: I64) -> F64:
    """Balance of a position: invested amount, credit limit, outstanding loan, or 0 for services."""
    product = cat.products[j]
    k = rows.shape[0]
    kind = product.product_type
    if kind in ("deposit", "structured_deposit", "wealth_management", "fund", "insurance"):
        amount = np.maximum(cat.min_amount[j], c.aum[rows] * rng.uniform(0.05, 0.4, k))
        return _f64(np.round(amount, -2 if kind != "insurance" else 0))
    if kind == "credit_card":
        limit = float(product.attributes.get("credit_limit", 20_000))  # type: ignore[arg-type]
        return _f64(np.round(limit * rng.uniform(0.5, 2.0, k), -3))
    if kind == "consumer_loan":
        return _f64(np.round(np.maximum(cat.min_amount[j], np.exp(rng.normal(np.log(40_000), 0.8, k))), -2))
    if product.product_id == "MS-LOAN-01":
        return _f64(np.round(np.maximum(c.loans[rows], 100_000.0), 2))
    return np.zeros(k, dtype=np.float64)


def _prior_holdings(
    rng: np.random.Generator, c: _Customers, cat: _Catalogue, asof_s: int
) -> tuple[dict[str, NDArray[np.generic]], Bool]:
    n, p = c.n, cat.size
    held = np.zeros((n, p), dtype=np.bool_)
    rows = _Rows()

    def hold(j: int, who: I64) -> None:
        if who.shape[0] == 0:
            return
        held[who, j] = True
        lo = c.created[who]
        if cat.rating[j] > 0:
            # Suitability at the time of sale: opened only while the current assessment is valid.
            lo = np.maximum(lo, c.assessed[who])
        opened = _uniform_between(rng, lo, np.full(who.shape[0], asof_s - HOUR))
        rows.add(
            customer=who,
            product=np.full(who.shape[0], j, dtype=np.int64),
            opened=opened,
            amount=_holding_amount(rng, cat, j, c, who),
        )

    # Structural holdings that define segments come first; other rules refer to them.
    hold(cat.index("PAY-CARD-01"), np.flatnonzero(c.seg[:, _PAYROLL]))
    hold(cat.index("MS-LOAN-01"), np.flatnonzero(c.seg[:, _MORTGAGE]))
    cards = cat.ids("credit_card")
    no_cards = np.zeros((n, p), dtype=np.bool_)
    base = _rule_arrays(c, no_cards)
    card_ok = offerable_matrix(base, cat.products, asof_s * US)[:, cards]
    weights = card_ok * rng.random((n, cards.shape[0]))
    choice = cards[np.argmax(weights, axis=1)]
    card_holders = np.flatnonzero(c.seg[:, _CARD] & card_ok.any(axis=1))
    for j in cards:
        hold(int(j), card_holders[choice[card_holders] == j])
    # Card holders the catalogue cannot serve (e.g. out-of-region youth) keep an old gold card.
    gold = cat.index("CC-GOLD-01")
    hold(gold, np.flatnonzero(c.seg[:, _CARD] & ~card_ok.any(axis=1)))
    c.seg[:, _CARD] = held[:, cards].any(axis=1)

    ok = offerable_matrix(_rule_arrays(c, held.copy()), cat.products, asof_s * US)
    invest = {"structured_deposit", "wealth_management", "fund", "insurance"}
    for j, product in enumerate(cat.products):
        if product.product_type == "credit_card" or held[:, j].any():
            continue
        prob = np.full(n, _HOLD_P[product.product_type])
        if product.product_type in invest:
            prob = prob * np.where(c.seg[:, _WEALTH], 3.0, 1.0)
        prob = prob * (c.lifecycle != _POTENTIAL)
        hold(j, np.flatnonzero(ok[:, j] & (rng.random(n) < prob)))
    return rows.build(), held


# ---------------------------------------------------------------------------------------------
# 3. moments of truth
# ---------------------------------------------------------------------------------------------


def _monthly(
    rng: np.random.Generator, who: I64, c: _Customers, as_of: date, asof_s: int, day_hi: int
) -> tuple[I64, I64]:
    """One event a month per customer on a personal day of month (payday, statement day)."""
    day_of_month = rng.integers(1, day_hi + 1, who.shape[0])
    hour = rng.integers(7 * HOUR, 11 * HOUR, who.shape[0])
    window_start = np.datetime64(as_of, "D") - np.timedelta64(WINDOW_DAYS, "D")
    months = np.arange(window_start.astype("datetime64[M]"), np.datetime64(as_of, "M") + 1)
    cust_parts: list[I64] = []
    ts_parts: list[I64] = []
    for month in months:
        month_s = int(month.astype("datetime64[D]").astype(np.int64)) * DAY
        ts = _i64(month_s + (day_of_month - 1) * DAY + hour)
        keep = (ts >= c.start[who]) & (ts < asof_s)
        cust_parts.append(who[keep])
        ts_parts.append(ts[keep])
    return np.concatenate(cust_parts), np.concatenate(ts_parts)


def _events(
    rng: np.random.Generator,
    c: _Customers,
    cat: _Catalogue,
    holdings: Mapping[str, NDArray[np.generic]],
    as_of: date,
    asof_s: int,
) -> dict[str, NDArray[np.generic]]:
    n = c.n
    window_start = asof_s - WINDOW_DAYS * DAY
    rows = _Rows()

    def add(kind: str, cust: I64, ts: I64, amount: F64 | None = None) -> None:
        rows.add(
            customer=cust,
            type=np.full(cust.shape[0], EVENT_TYPES.index(kind), dtype=np.int64),
            ts=ts,
            amount=np.full(cust.shape[0], np.nan) if amount is None else amount,
        )

    payroll = np.flatnonzero(c.seg[:, _PAYROLL] & (c.lifecycle != _CHURNED))
    salary = np.exp(rng.normal(np.log(9_000), 0.5, n))
    cust, ts = _monthly(rng, payroll, c, as_of, asof_s, 25)
    add("salary_credited", cust, ts, np.round(salary[cust] * rng.uniform(0.95, 1.1, cust.shape[0]), 2))

    card_holders = np.flatnonzero(c.seg[:, _CARD])
    spend = np.exp(rng.normal(np.log(3_500), 0.9, n))
    cust, ts = _monthly(rng, card_holders, c, as_of, asof_s, 28)
    add("card_bill", cust, ts, np.round(spend[cust] * rng.uniform(0.5, 1.5, cust.shape[0]), 2))

    # Term positions roll over (自动转存 / periodic-open wealth): every maturity in the window is a moment.
    h_cust = np.asarray(holdings["customer"], dtype=np.int64)
    h_prod = np.asarray(holdings["product"], dtype=np.int64)
    h_open = np.asarray(holdings["opened"], dtype=np.int64)
    h_amount = np.asarray(holdings["amount"], dtype=np.float64)
    term = cat.term_days[h_prod]
    deposit_like = np.isin(
        cat.ptype[h_prod], [PRODUCT_TYPES.index("deposit"), PRODUCT_TYPES.index("structured_deposit")]
    )
    wealth_like = cat.ptype[h_prod] == PRODUCT_TYPES.index("wealth_management")
    rolling = (deposit_like | wealth_like) & (term >= 28)
    term_s = np.maximum(term, 1) * DAY
    k = np.maximum(1, -(-(window_start - h_open) // term_s))
    for _ in range(WINDOW_DAYS // 28 + 2):
        mature = h_open + k * term_s
        hit = rolling & (mature >= window_start) & (mature < asof_s)
        for kind, mask in (("deposit_maturing", deposit_like), ("wealth_maturing", wealth_like)):
            sel = np.flatnonzero(hit & mask)
            add(kind, h_cust[sel], mature[sel], h_amount[sel])
        k = k + 1

    _, month, day = _birth_parts(c.birth)
    for year in (as_of.year - 1, as_of.year):
        month_start = np.datetime64(str(year), "Y").astype("datetime64[M]") + (month - 1)
        bday = month_start.astype("datetime64[D]") + (day - 1)
        ts = bday.astype(np.int64) * DAY + 8 * HOUR
        sel = np.flatnonzero((ts >= c.start) & (ts < asof_s))
        add("birthday", sel, ts[sel])

    drops = np.where(c.lifecycle == _CHURN_RISK, 1 + (rng.random(n) < 0.5), 0)
    drops = drops + ((c.lifecycle == _DORMANT) & (rng.random(n) < 0.15))
    cust = np.repeat(np.arange(n), drops)
    lo = np.maximum(c.start[cust], asof_s - 60 * DAY)
    add(
        "aum_drop",
        cust,
        _uniform_between(rng, lo, np.full(cust.shape[0], asof_s)),
        np.round(c.aum[cust] * rng.uniform(0.2, 0.6, cust.shape[0]), 2),
    )

    login_rate = np.array([0.06, 0.35, 0.15, 0.01, 0.05, 0.0])[c.lifecycle] * rng.gamma(2.0, 0.5, n)
    active_days = (asof_s - c.start) / DAY
    cust = np.repeat(np.arange(n), rng.poisson(login_rate * active_days))
    add("app_login", cust, _uniform_between(rng, c.start[cust], np.full(cust.shape[0], asof_s)))

    transfers = rng.poisson((0.25 + 0.6 * (c.aum >= 200_000)) * (c.lifecycle != _CHURNED) * active_days / 180)
    cust = np.repeat(np.arange(n), transfers)
    amount = _f64(np.round(np.maximum(20_000, np.exp(rng.normal(np.log(60_000), 0.9, cust.shape[0]))), 2))
    add(
        "large_inbound_transfer",
        cust,
        _uniform_between(rng, c.start[cust], np.full(cust.shape[0], asof_s)),
        amount,
    )

    events = rows.build()
    order = np.lexsort((events["type"], events["customer"], events["ts"]))
    return {name: values[order] for name, values in events.items()}


# ---------------------------------------------------------------------------------------------
# 4. planted preferences
# ---------------------------------------------------------------------------------------------


def _one_hot(index: I64, size: int) -> F64:
    out = np.zeros((index.shape[0], size))
    out[np.arange(index.shape[0]), index] = 1.0
    return out


def _affinity(
    rng: np.random.Generator,
    c: _Customers,
    cat: _Catalogue,
    offerable: Bool,
    events: Mapping[str, NDArray[np.generic]],
    asof_s: int,
) -> F64:
    """Planted purchase propensity over the window: latent factors + readable business effects."""
    n, p = c.n, cat.size
    valid_risk = np.where(c.expires > asof_s, c.risk_level, 0)
    age_band = np.digitize(c.age, _AGE_EDGES)
    aum_band = np.digitize(c.aum, _AUM_EDGES)
    x = np.concatenate(
        [
            c.seg.astype(np.float64),
            _one_hot(age_band, len(AGE_BANDS)),
            _one_hot(aum_band, 5),
            _one_hot(valid_risk, 6),
            _one_hot(c.lifecycle, len(LIFECYCLE_STAGES)),
            _one_hot(c.city_tier - 1, 4),
        ],
        axis=1,
    )
    tags = sorted({t for product in cat.products for t in product.tags})
    y = np.concatenate(
        [
            _one_hot(cat.ptype, len(PRODUCT_TYPES)),
            _one_hot(cat.rating, 6),
            np.array([[t in product.tags for t in tags] for product in cat.products], dtype=np.float64),
        ],
        axis=1,
    )
    dim = 10
    u = x @ rng.normal(0, 0.45, (x.shape[1], dim)) + rng.normal(0, 0.35, (n, dim))
    v = y @ rng.normal(0, 0.45, (y.shape[1], dim)) + rng.normal(0, 0.25, (p, dim))
    z = 0.6 * (u @ v.T)

    type_bias = np.array([0.6, 0.2, 0.3, 0.0, -0.6, -1.6, -0.6, 0.0, 0.2])
    z += type_bias[cat.ptype][None, :] + rng.normal(0, 0.3, p)[None, :]
    z += np.array([-0.6, 0.3, 0.0, -1.2, -0.4, -2.0])[c.lifecycle][:, None]

    def has_tag(tag: str) -> F64:
        return np.array([tag in product.tags for product in cat.products], dtype=np.float64)

    def of_type(*kinds: str) -> F64:
        return np.isin(cat.ptype, [PRODUCT_TYPES.index(k) for k in kinds]).astype(np.float64)

    # Readable effects a marketer would recognise, on top of the latent structure.
    z += np.outer(c.age >= 50, has_tag("养老")) * 1.2
    z += np.outer((c.age >= 30) & (c.age <= 45), has_tag("亲子")) * 0.5
    z += np.outer(c.age <= 35, of_type("credit_card") + has_tag("青年")) * 0.6
    z += np.outer(c.aum >= 500_000, of_type("wealth_management", "structured_deposit", "fund")) * 0.7
    z += np.outer(c.seg[:, _LONG_TAIL], has_tag("短期") + has_tag("灵活")) * 0.6
    z += np.outer(c.seg[:, _PAYROLL], of_type("consumer_loan")) * 0.5
    z += np.outer(c.seg[:, _MORTGAGE], has_tag("安居")) * 1.0
    rated = cat.rating > 0
    # Customers buy close to their risk tolerance, not just anything below it.
    z -= 0.4 * np.abs(valid_risk[:, None] - cat.rating[None, :]) * rated[None, :]

    # Moments: money that just arrived or is about to roll over looks for a home.
    ev_type = np.asarray(events["type"], dtype=np.int64)
    ev_cust = np.asarray(events["customer"], dtype=np.int64)
    ev_ts = np.asarray(events["ts"], dtype=np.int64)
    recent = ev_ts >= asof_s - 30 * DAY
    money_in = np.isin(ev_type, [EVENT_TYPES.index(t) for t in _MONEY_MOMENTS])
    boosted = np.bincount(ev_cust[recent & money_in], minlength=n) > 0
    z += np.outer(boosted, of_type("deposit", "structured_deposit", "wealth_management")) * 0.8

    raw = offerable / (1.0 + np.exp(-(z - 3.0)))
    scale = TARGET_PURCHASES_PER_CUSTOMER * n / max(float(raw.sum()), 1e-9)
    return np.asarray(np.minimum(raw * scale, 0.85), dtype=np.float64)


# ---------------------------------------------------------------------------------------------
# 5. interactions
# ---------------------------------------------------------------------------------------------


def _pick_channel(rng: np.random.Generator, allowed: Bool) -> I64:
    """A random allowed channel per row (rows with none allowed get index 0; callers filter them)."""
    keys = rng.random(allowed.shape) * allowed
    return _i64(np.argmax(keys, axis=1))


def _interactions(
    rng: np.random.Generator,
    c: _Customers,
    cat: _Catalogue,
    affinity: F64,
    offerable: Bool,
    events: Mapping[str, NDArray[np.generic]],
    asof_s: int,
) -> tuple[dict[str, NDArray[np.generic]], dict[str, NDArray[np.generic]]]:
    """Interactions sorted by time, and the purchases (customer, product, ts) they contain."""
    n, p = c.n, cat.size
    reachable = (c.consent.astype(np.int64) @ cat.channels.T.astype(np.int64)) > 0  # [n × P]
    rows = _Rows()

    def add(kind: str, cust: I64, prod: I64, channel: I64, ts: I64) -> None:
        rows.add(
            customer=cust,
            product=prod,
            type=np.full(cust.shape[0], INTERACTION_TYPES.index(kind), dtype=np.int64),
            channel=channel,
            ts=ts,
        )

    def earliest(cust: I64, prod: I64) -> I64:
        # Showing a risk-rated product counts as selling it: only inside the valid assessment.
        return np.where(cat.rating[prod] > 0, np.maximum(c.start[cust], c.assessed[cust]), c.start[cust])

    # Purchases: the planted propensity, realised once per (customer, product).
    cust, prod = np.nonzero(rng.random((n, p)) < affinity)
    cust = cust.astype(np.int64)
    prod = prod.astype(np.int64)
    lo = earliest(cust, prod)
    ts = _uniform_between(rng, lo, np.full(cust.shape[0], asof_s))
    # Savings-type purchases cluster right after money arrives (salary, maturity, transfer).
    ev_type = np.asarray(events["type"], dtype=np.int64)
    money = np.flatnonzero(np.isin(ev_type, [EVENT_TYPES.index(t) for t in _MONEY_MOMENTS]))
    money_cust = np.asarray(events["customer"], dtype=np.int64)[money]
    money_ts = np.asarray(events["ts"], dtype=np.int64)[money]
    order = np.argsort(money_cust, kind="stable")
    money_cust, money_ts = money_cust[order], money_ts[order]
    counts = np.bincount(money_cust, minlength=n)
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
    savings = np.isin(cat.ptype[prod], _SAVINGS_TYPES)
    timed = savings & (counts[cust] > 0) & (rng.random(cust.shape[0]) < 0.6)
    if money_ts.shape[0]:
        pick = offsets[cust] + (rng.random(cust.shape[0]) * np.maximum(counts[cust], 1)).astype(np.int64)
        pick = np.minimum(pick, money_ts.shape[0] - 1)
        after_moment = money_ts[pick] + rng.integers(HOUR, 3 * DAY, cust.shape[0])
        ts = np.where(timed & (after_moment >= lo) & (after_moment < asof_s), after_moment, ts)

    allowed = c.consent[cust] & cat.channels[prod]
    funnel = allowed.any(axis=1)
    channel = np.where(funnel, _pick_channel(rng, allowed), CHANNELS.index("app"))
    impression_ts = np.maximum(lo, ts - rng.integers(10 * 60, 3 * DAY, cust.shape[0]))
    click_ts = impression_ts + ((ts - impression_ts) * rng.uniform(0.2, 0.9, cust.shape[0])).astype(np.int64)
    add("purchase", cust, prod, channel, ts)
    f = np.flatnonzero(funnel)
    add("impression", cust[f], prod[f], channel[f], impression_ts[f])
    add("click", cust[f], prod[f], channel[f], click_ts[f])
    purchases: dict[str, NDArray[np.generic]] = {"customer": cust, "product": prod, "ts": ts}

    # Non-converting impressions, targeted by the bank's current (imperfect) policy: popular products,
    # tilted to affinity except for customers who refused personalisation (PIPL art. 24).
    popularity = affinity.mean(axis=0) + 1e-3
    tilt = 0.25 + affinity / max(float(affinity[offerable].mean()) if offerable.any() else 1.0, 1e-9)
    weights = popularity[None, :] * np.where(c.opt_out[:, None], 1.0, tilt) * offerable * reachable
    volume = (
        np.array([6.0, 26.0, 24.0, 6.0, 16.0, 2.0])[c.lifecycle] * (asof_s - c.start) / (WINDOW_DAYS * DAY)
    )
    totals = weights.sum(axis=1, keepdims=True)
    expected = np.divide(weights * volume[:, None], totals, out=np.zeros_like(weights), where=totals > 0)
    counts2 = rng.poisson(expected)
    cust, prod = np.nonzero(counts2)
    reps = counts2[cust, prod]
    cust = np.repeat(cust.astype(np.int64), reps)
    prod = np.repeat(prod.astype(np.int64), reps)
    channel = _pick_channel(rng, c.consent[cust] & cat.channels[prod])
    ts = _uniform_between(rng, earliest(cust, prod), np.full(cust.shape[0], asof_s))
    add("impression", cust, prod, channel, ts)
    clicked = np.flatnonzero(rng.random(cust.shape[0]) < 0.01 + 0.15 * affinity[cust, prod])
    click_ts = np.minimum(ts[clicked] + rng.integers(5, 900, clicked.shape[0]), asof_s - 1)
    add("click", cust[clicked], prod[clicked], channel[clicked], click_ts)

    out = rows.build()
    order = np.lexsort((out["type"], out["product"], out["customer"], out["ts"]))
    return {name: values[order] for name, values in out.items()}, purchases


# ---------------------------------------------------------------------------------------------
# 6. final holdings
# ---------------------------------------------------------------------------------------------


def _final_holdings(
    rng: np.random.Generator,
    c: _Customers,
    cat: _Catalogue,
    prior: Mapping[str, NDArray[np.generic]],
    purchases: Mapping[str, NDArray[np.generic]],
) -> tuple[dict[str, NDArray[np.generic]], Bool]:
    """Prior positions plus purchases; a repeat purchase tops up the existing position."""
    p = cat.size
    cust = np.asarray(prior["customer"], dtype=np.int64)
    prod = np.asarray(prior["product"], dtype=np.int64)
    opened = np.asarray(prior["opened"], dtype=np.int64)
    amount = np.asarray(prior["amount"], dtype=np.float64).copy()
    b_cust = np.asarray(purchases["customer"], dtype=np.int64)
    b_prod = np.asarray(purchases["product"], dtype=np.int64)
    b_ts = np.asarray(purchases["ts"], dtype=np.int64)
    b_amount = np.zeros(b_cust.shape[0])
    for j in range(p):
        sel = np.flatnonzero(b_prod == j)
        b_amount[sel] = _holding_amount(rng, cat, j, c, b_cust[sel])

    key = cust * p + prod
    order = np.argsort(key, kind="stable")
    b_key = b_cust * p + b_prod
    if key.shape[0]:
        pos = np.minimum(np.searchsorted(key[order], b_key), key.shape[0] - 1)
        repeat = key[order][pos] == b_key
        np.add.at(amount, order[pos[repeat]], b_amount[repeat])
    else:
        repeat = np.zeros(b_key.shape[0], dtype=np.bool_)
    new = ~repeat
    out = {
        "customer": np.concatenate([cust, b_cust[new]]),
        "product": np.concatenate([prod, b_prod[new]]),
        "opened": np.concatenate([opened, b_ts[new]]),
        "amount": np.concatenate([amount, b_amount[new]]),
    }
    order = np.lexsort((out["product"], out["customer"]))
    out = {name: values[order] for name, values in out.items()}
    held = np.zeros((c.n, p), dtype=np.bool_)
    held[out["customer"], out["product"]] = True
    return out, held


# ---------------------------------------------------------------------------------------------
# 7. features
# ---------------------------------------------------------------------------------------------


def _month_ends(as_of: date, count: int) -> list[date]:
    """The last ``count`` month-end dates on or before ``as_of``, oldest first."""
    day = np.datetime64(as_of, "D")
    month = day.astype("datetime64[M]")
    latest_end = (month + 1).astype("datetime64[D]") - 1
    if latest_end > day:
        latest_end = month.astype("datetime64[D]") - 1
    ends = [latest_end]
    for _ in range(count - 1):
        ends.append(ends[-1].astype("datetime64[M]").astype("datetime64[D]") - 1)
    return [e.astype(date) for e in reversed(ends)]


def _epoch(d: date) -> int:
    return int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp())


def _profile_features(rng: np.random.Generator, c: _Customers, as_of: date, asof_s: int) -> pa.Table:
    n = c.n
    drift = np.select(
        [c.lifecycle == _CHURN_RISK, c.lifecycle == _DORMANT, c.lifecycle == _CHURNED],
        [0.12, 0.02, 0.05],
        -0.008,
    )
    wobble = rng.normal(0, 0.04, n)
    was_active = rng.random(n)
    parts: list[pa.Table] = []
    for snap in _month_ends(as_of, 3):
        ts = _epoch(snap)
        months_back = (asof_s - ts) / (30.44 * DAY)
        sel = np.flatnonzero(c.created <= ts)
        growth = np.exp(drift[sel] * months_back + wobble[sel] * np.sqrt(months_back))
        lifecycle = np.where(
            (c.lifecycle[sel] == _CHURN_RISK) & (was_active[sel] < 0.4 * months_back),
            _ACTIVE,
            c.lifecycle[sel],
        )
        assessed = (c.risk_level[sel] > 0) & (c.assessed[sel] <= ts)
        columns: dict[str, pa.Array] = {
            "customer_id": _customer_ids(sel),
            "event_timestamp": _timestamps(np.full(sel.shape[0], ts)),
            "created_timestamp": _timestamps(np.full(sel.shape[0], ts)),
            "age": pa.array(_age_at(c.birth[sel], snap)),
            "age_band": _labels(AGE_BANDS, np.digitize(_age_at(c.birth[sel], snap), _AGE_EDGES)),
            "city_tier": pa.array(c.city_tier[sel]),
            "region": _labels(REGIONS, c.region[sel]),
        }
        for s, name in enumerate(SEGMENTS):
            columns[f"seg_{name}"] = pa.array(c.seg[sel, s].astype(np.int64))
        columns |= {
            "aum": pa.array(np.round(c.aum[sel] * growth, 2)),
            "deposits": pa.array(np.round(c.deposits[sel] * growth, 2)),
            "loans": pa.array(np.round(c.loans[sel] * (1 + 0.004 * months_back), 2)),
            "lifecycle_stage": _labels(LIFECYCLE_STAGES, lifecycle),
            "tenure_months": pa.array(((ts - c.created[sel]) // int(30.44 * DAY)).astype(np.int64)),
            "risk_level": pa.array(np.where(assessed, c.risk_level[sel], 0)),
            "risk_expires_ts": pa.array(np.where(assessed, c.expires[sel], 0)),
        }
        for k, name in enumerate(CHANNELS):
            columns[f"consent_{name}"] = pa.array(c.consent[sel, k].astype(np.int64))
        columns["personalised_opt_out"] = pa.array(c.opt_out[sel].astype(np.int64))
        parts.append(pa.table(columns))
    return pa.concat_tables(parts)


def _weekly_snapshots(asof_s: int, weeks: int = 8) -> list[int]:
    return [asof_s - k * 7 * DAY for k in range(weeks - 1, -1, -1)]


def _activity_features(
    c: _Customers,
    interactions: Mapping[str, NDArray[np.generic]],
    events: Mapping[str, NDArray[np.generic]],
    asof_s: int,
) -> pa.Table:
    n = c.n
    i_cust = np.asarray(interactions["customer"], dtype=np.int64)
    i_type = np.asarray(interactions["type"], dtype=np.int64)
    i_ts = np.asarray(interactions["ts"], dtype=np.int64)
    e_type = np.asarray(events["type"], dtype=np.int64)
    login = e_type == EVENT_TYPES.index("app_login")
    l_cust = np.asarray(events["customer"], dtype=np.int64)[login]
    l_ts = np.asarray(events["ts"], dtype=np.int64)[login]
    # Logins are counted on their own; "moments" are the other, rarer moments of truth.
    m_cust = np.asarray(events["customer"], dtype=np.int64)[~login]
    m_ts = np.asarray(events["ts"], dtype=np.int64)[~login]
    m_type = e_type[~login]
    by_customer = np.lexsort((m_ts, m_cust))
    m_cust, m_ts, m_type = m_cust[by_customer], m_ts[by_customer], m_type[by_customer]

    def count(cust: I64, ts: I64, end: int, days: int, mask: Bool | None = None) -> I64:
        hit = (ts >= end - days * DAY) & (ts < end)
        if mask is not None:
            hit &= mask
        return np.bincount(cust[hit], minlength=n).astype(np.int64)

    impression = i_type == INTERACTION_TYPES.index("impression")
    click = i_type == INTERACTION_TYPES.index("click")
    purchase = i_type == INTERACTION_TYPES.index("purchase")
    parts: list[pa.Table] = []
    for ts in _weekly_snapshots(asof_s):
        sel = np.flatnonzero(c.created <= ts)
        before = np.flatnonzero(m_ts < ts)
        last = before[np.r_[m_cust[before][1:] != m_cust[before][:-1], True]] if before.shape[0] else before
        last_type = np.full(n, len(EVENT_TYPES), dtype=np.int64)
        last_ts = np.zeros(n, dtype=np.int64)
        last_type[m_cust[last]] = m_type[last]
        last_ts[m_cust[last]] = m_ts[last]
        columns = {
            "customer_id": _customer_ids(sel),
            "event_timestamp": _timestamps(np.full(sel.shape[0], ts)),
            "created_timestamp": _timestamps(np.full(sel.shape[0], ts)),
            "impressions_7d": count(i_cust, i_ts, ts, 7, impression)[sel],
            "impressions_30d": count(i_cust, i_ts, ts, 30, impression)[sel],
            "clicks_7d": count(i_cust, i_ts, ts, 7, click)[sel],
            "clicks_30d": count(i_cust, i_ts, ts, 30, click)[sel],
            "purchases_30d": count(i_cust, i_ts, ts, 30, purchase)[sel],
            "moments_7d": count(m_cust, m_ts, ts, 7)[sel],
            "moments_30d": count(m_cust, m_ts, ts, 30)[sel],
            "logins_7d": count(l_cust, l_ts, ts, 7)[sel],
            "last_moment_type": _labels((*EVENT_TYPES, ""), last_type[sel]),
            "last_moment_ts": last_ts[sel],
        }
        parts.append(pa.table({k: v if isinstance(v, pa.Array) else pa.array(v) for k, v in columns.items()}))
    return pa.concat_tables(parts)


def _product_stats(
    c: _Customers, cat: _Catalogue, interactions: Mapping[str, NDArray[np.generic]], asof_s: int
) -> pa.Table:
    p = cat.size
    i_cust = np.asarray(interactions["customer"], dtype=np.int64)
    i_prod = np.asarray(interactions["product"], dtype=np.int64)
    i_type = np.asarray(interactions["type"], dtype=np.int64)
    i_ts = np.asarray(interactions["ts"], dtype=np.int64)
    impression = i_type == INTERACTION_TYPES.index("impression")
    purchase = i_type == INTERACTION_TYPES.index("purchase")

    def rates(window: Bool, members: Bool, population: int) -> tuple[F64, F64]:
        bought = np.bincount(i_prod[window & purchase & members], minlength=p).astype(np.float64)
        shown = np.bincount(i_prod[window & impression & members], minlength=p).astype(np.float64)
        # Purchases per 1,000 customers keeps popularity comparable across bank sizes.
        popularity = bought * 1000.0 / max(population, 1)
        conversion = np.minimum(np.divide(bought, shown, out=np.zeros(p), where=shown > 0), 1.0)
        return _f64(np.round(popularity, 6)), _f64(np.round(conversion, 6))

    everyone = np.ones(i_cust.shape[0], dtype=np.bool_)
    parts: list[pa.Table] = []
    for ts in _weekly_snapshots(asof_s):
        window = (i_ts >= ts - 30 * DAY) & (i_ts < ts)
        exists = c.created <= ts
        popularity, conversion = rates(window, everyone, int(exists.sum()))
        columns: dict[str, pa.Array] = {
            "product_id": pa.array([product.product_id for product in cat.products]),
            "event_timestamp": _timestamps(np.full(p, ts)),
            "created_timestamp": _timestamps(np.full(p, ts)),
            "popularity_30d": pa.array(popularity),
            "conversion_30d": pa.array(conversion),
        }
        for s, name in enumerate(SEGMENTS):
            pop_s, conv_s = rates(window, c.seg[i_cust, s], int((exists & c.seg[:, s]).sum()))
            columns[f"pop_{name}_30d"] = pa.array(pop_s)
            columns[f"conv_{name}_30d"] = pa.array(conv_s)
        parts.append(pa.table(columns))
    return pa.concat_tables(parts)


# ---------------------------------------------------------------------------------------------
# writing
# ---------------------------------------------------------------------------------------------


def _customer_ids(index: I64) -> pa.Array:
    return id_strings("C", index.astype(np.int64) + 1, 9)


def _timestamps(seconds: I64, null: Bool | None = None) -> pa.Array:
    return pa.array(seconds.astype(np.int64) * US, type=pa.int64(), mask=null).view(_TS_TYPE)


def _labels(values: Sequence[str], index: I64) -> pa.Array:
    return pa.array(list(values), type=pa.string()).take(pa.array(index.astype(np.int64)))


def _products_table(cat: _Catalogue) -> pa.Table:
    products = cat.products
    return pa.table(
        {
            "product_id": pa.array([p.product_id for p in products]),
            "name": pa.array([p.name for p in products]),
            "product_type": pa.array([p.product_type for p in products]),
            "risk_rating": pa.array([p.risk_rating for p in products], type=pa.int64()),
            "channels": pa.array([",".join(p.channels) for p in products]),
            "margin_rate": pa.array([p.margin_rate for p in products], type=pa.float64()),
            "attributes": pa.array(
                [json.dumps(dict(p.attributes), ensure_ascii=False, sort_keys=True) for p in products]
            ),
            "eligibility": pa.array([p.eligibility.model_dump_json() for p in products]),
        }
    )


def _customers_table(c: _Customers, asof_s: int) -> pa.Table:
    n = c.n
    index = np.arange(n, dtype=np.int64)
    codes = c.seg.astype(np.int64) @ (1 << np.arange(len(SEGMENTS)))
    segment_lists = [",".join(s for k, s in enumerate(SEGMENTS) if code >> k & 1) for code in range(64)]
    _, month, day = _birth_parts(c.birth)
    never = c.risk_level == 0
    columns: dict[str, pa.Array] = {
        "customer_id": _customer_ids(index),
        "age": pa.array(c.age),
        "age_band": _labels(AGE_BANDS, np.digitize(c.age, _AGE_EDGES)),
        "gender": _labels(("F", "M"), c.male.astype(np.int64)),
        "city_tier": pa.array(c.city_tier),
        "region": _labels(REGIONS, c.region),
        "segments": _labels(segment_lists, codes),
    }
    for s, name in enumerate(SEGMENTS):
        columns[f"seg_{name}"] = pa.array(c.seg[:, s])
    columns |= {
        "aum": pa.array(c.aum),
        "deposits": pa.array(c.deposits),
        "loans": pa.array(c.loans),
        "lifecycle_stage": _labels(LIFECYCLE_STAGES, c.lifecycle),
        "tenure_months": pa.array(((asof_s - c.created) // int(30.44 * DAY)).astype(np.int64)),
        "risk_level": pa.array(c.risk_level, mask=never),
        "risk_assessed_at": _timestamps(c.assessed, never),
        "risk_expires_at": _timestamps(c.expires, never),
    }
    for k, name in enumerate(CHANNELS):
        columns[f"consent_{name}"] = pa.array(c.consent[:, k])
    columns |= {
        "personalised_opt_out": pa.array(c.opt_out),
        "birth_month": pa.array(month),
        "birth_day": pa.array(day),
        "created_at": _timestamps(c.created),
    }
    return pa.table(columns)


def _write(table: pa.Table, path: Path, rows: dict[str, int], out: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    rows[path.relative_to(out).as_posix()] = table.num_rows


def generate(customers: int, seed: int, as_of: date, out: Path) -> Manifest:
    """Generate the synthetic bank of ``docs/data-contract.md`` into ``out`` and return its manifest.

    Deterministic in ``(customers, seed, as_of)``: the parquet files are byte-identical across runs.
    """
    if customers < 1:
        raise ValueError("customers must be at least 1")
    started = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(9)]
    asof_s = _epoch(as_of)
    cat = _catalogue_arrays(CATALOGUE)

    c = _customers(streams[0], customers, as_of, asof_s)
    prior, held_before = _prior_holdings(streams[1], c, cat, asof_s)
    events = _events(streams[2], c, cat, prior, as_of, asof_s)
    offerable_before = offerable_matrix(_rule_arrays(c, held_before), cat.products, asof_s * US)
    affinity = _affinity(streams[3], c, cat, offerable_before, events, asof_s)
    interactions, purchases = _interactions(streams[4], c, cat, affinity, offerable_before, events, asof_s)
    holdings, held = _final_holdings(streams[5], c, cat, prior, purchases)
    # A card bought in the window makes the customer a card holder at as-of.
    c.seg[:, _CARD] = held[:, cat.ids("credit_card")].any(axis=1)
    # The oracle is what is still offerable at as-of: a customer who now holds a card has no
    # propensity left for another one.
    truth = affinity * offerable_matrix(_rule_arrays(c, held), cat.products, asof_s * US)

    rows: dict[str, int] = {}
    product_ids = pa.array([p.product_id for p in cat.products])
    _write(_products_table(cat), out / "products.parquet", rows, out)
    _write(_customers_table(c, asof_s), out / "customers.parquet", rows, out)
    pii = generate_pii(streams[6], np.asarray(REGIONS)[c.region], c.birth, c.male)
    pii_table = pa.table({"customer_id": _customer_ids(np.arange(c.n, dtype=np.int64)), **pii})
    _write(pii_table, out / "customer_pii.parquet", rows, out)

    h_prod = np.asarray(holdings["product"], dtype=np.int64)
    holdings_table = pa.table(
        {
            "customer_id": _customer_ids(np.asarray(holdings["customer"], dtype=np.int64)),
            "product_id": product_ids.take(pa.array(h_prod)),
            "product_type": _labels(PRODUCT_TYPES, cat.ptype[h_prod]),
            "opened_at": _timestamps(np.asarray(holdings["opened"], dtype=np.int64)),
            "amount": pa.array(np.asarray(holdings["amount"], dtype=np.float64)),
        }
    )
    _write(holdings_table, out / "holdings.parquet", rows, out)

    e_count = int(events["ts"].shape[0])
    e_amount = np.asarray(events["amount"], dtype=np.float64)
    events_table = pa.table(
        {
            "event_id": id_strings("E", np.arange(1, e_count + 1, dtype=np.int64), 11),
            "customer_id": _customer_ids(np.asarray(events["customer"], dtype=np.int64)),
            "event_type": _labels(EVENT_TYPES, np.asarray(events["type"], dtype=np.int64)),
            "event_timestamp": _timestamps(np.asarray(events["ts"], dtype=np.int64)),
            "amount": pa.array(e_amount, mask=np.isnan(e_amount)),
        }
    )
    _write(events_table, out / "events.parquet", rows, out)

    interactions_table = pa.table(
        {
            "customer_id": _customer_ids(np.asarray(interactions["customer"], dtype=np.int64)),
            "product_id": product_ids.take(pa.array(np.asarray(interactions["product"], dtype=np.int64))),
            "interaction_type": _labels(INTERACTION_TYPES, np.asarray(interactions["type"], dtype=np.int64)),
            "channel": _labels(CHANNELS, np.asarray(interactions["channel"], dtype=np.int64)),
            "event_timestamp": _timestamps(np.asarray(interactions["ts"], dtype=np.int64)),
        }
    )
    _write(interactions_table, out / "interactions.parquet", rows, out)

    (out / "truth").mkdir(exist_ok=True)
    np.savez(
        out / "truth" / "preferences.npz",
        affinity=truth.astype(np.float32),
        customer_ids=np.asarray(
            _customer_ids(np.arange(c.n, dtype=np.int64)).to_numpy(zero_copy_only=False), dtype=str
        ),
        product_ids=np.asarray([p.product_id for p in cat.products], dtype=str),
    )
    rows["truth/preferences.npz"] = c.n

    _write(
        _profile_features(streams[7], c, as_of, asof_s),
        out / "features" / "customer_profile.parquet",
        rows,
        out,
    )
    _write(
        _activity_features(c, interactions, events, asof_s),
        out / "features" / "customer_activity.parquet",
        rows,
        out,
    )
    _write(
        _product_stats(c, cat, interactions, asof_s), out / "features" / "product_stats.parquet", rows, out
    )

    manifest = Manifest(
        seed=seed, customers=customers, as_of=as_of, rows=rows, seconds=time.perf_counter() - started
    )
    (out / "manifest.json").write_text(manifest.to_json() + "\n", encoding="utf-8")
    return manifest
