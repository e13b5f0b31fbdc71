"""Monthly adoption dynamics: holding snapshots in the Santander layout, with planted sequential signal.

The generator (``generator.py``) describes one bank at one as-of date. This module lets the same
customers live for ``months`` monthly snapshots (the 28th of each month, as in the Santander Kaggle
data): they add products, close them and new customers arrive. What drives an addition is planted
here, readable and learnable from the past:

- **a product ladder**: a payroll account leads to a credit card, a card to deposits, deposits to
  low-risk wealth products and those to the next risk rung (R1 → R2 → … never above the customer's
  valid risk assessment: suitability is the rule engine's, via ``rules.offerable_matrix``); a
  mortgage leads to insurance and repayment protection; recent openings (a card, a payroll account,
  a mortgage) lead to their companions (bill instalments, salary sweep, protection);
- **moments** drawn per customer-month (salary credited, deposit and wealth maturities, large
  inbound transfers, AUM drops) whose effect on related products decays with a half-life of weeks,
  so most of it lands in the months *after* the moment (features built before the month see it);
- **month-of-year seasonality**: insurance in Q1 (开门红), deposits at year end, consumer loans and
  cards in the weeks before Chinese New Year and Double 11, education products before the school
  year, mortgage rate resets in January;
- **closures**: positions mature and are not rolled over (more so after an AUM drop), open-ended
  positions close at a small monthly hazard that rises with churn; lifecycle stages evolve;
- **new customers** arrive every month with new ``ncodpers`` and their entry products.

The true monthly adoption probability of every (customer, product not held) pair is the oracle;
additions are drawn from exactly that probability. Everything is vectorised over customers and
deterministic in ``(customers, months, seed, start, arrival_rate)``; month ``t`` draws from its own
child stream, so the first months of a longer run are identical to a shorter run.

Customer ``ncodpers = k`` for ``k <= customers`` is customer ``C{k:09d}`` of
``generate(customers, seed, as_of=start)`` at the first snapshot: this module reuses the
generator's customer and prior-holding stages (its private helpers, on purpose, so that the two
never drift apart). Arrivals are numbered after them.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Final

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from numpy.typing import ArrayLike, NDArray
from qianmian_rules import LIFECYCLE_STAGES, PRODUCT_TYPES, SEGMENTS

from qianmian_bankgen.catalogue import CATALOGUE
from qianmian_bankgen.generator import (
    _AUM_EDGES,
    DAY,
    HOUR,
    REGIONS,
    US,
    _age_at,
    _Catalogue,
    _catalogue_arrays,
    _Customers,
    _customers,
    _epoch,
    _prior_holdings,
)
from qianmian_bankgen.rules import CustomerArrays, offerable_matrix

F32 = NDArray[np.float32]
F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
Bool = NDArray[np.bool_]

#: Day of month of every snapshot (Santander's ``fecha_dato`` is always the 28th).
SNAPSHOT_DAY: Final = 28
#: Moment types drawn per customer-month, in the order of the ``moments`` table's codes.
MOMENTS: Final[tuple[str, ...]] = (
    "salary_credited",
    "deposit_maturing",
    "wealth_maturing",
    "large_inbound_transfer",
    "aum_drop",
)
#: Half-life in days of each moment's effect on adoption.
HALF_LIFE_DAYS: Final[Mapping[str, float]] = {
    "salary_credited": 12.0,
    "deposit_maturing": 25.0,
    "wealth_maturing": 25.0,
    "large_inbound_transfer": 20.0,
    "aum_drop": 40.0,
}
#: Santander's demographic columns, in the order of ``train_ver2.csv``.
DEMOGRAPHIC_COLUMNS: Final[tuple[str, ...]] = (
    "fecha_dato",
    "ncodpers",
    "ind_empleado",
    "pais_residencia",
    "sexo",
    "age",
    "fecha_alta",
    "ind_nuevo",
    "antiguedad",
    "indrel",
    "ult_fec_cli_1t",
    "indrel_1mes",
    "tiprel_1mes",
    "indresi",
    "indext",
    "conyuemp",
    "canal_entrada",
    "indfall",
    "tipodom",
    "cod_prov",
    "nomprov",
    "ind_actividad_cliente",
    "renta",
    "segmento",
)
#: Default monthly arrivals as a share of the initial customers.
ARRIVAL_RATE: Final = 0.01
#: Default first snapshot: twelve months then span Double 11, year end, Chinese New Year and Q1.
DEFAULT_START: Final = date(2025, 10, 28)

# Chinese New Year (春节) by year: consumer loans and cards peak in the weeks before it.
_CNY: Final[Mapping[int, date]] = {
    2020: date(2020, 1, 25),
    2021: date(2021, 2, 12),
    2022: date(2022, 2, 1),
    2023: date(2023, 1, 22),
    2024: date(2024, 2, 10),
    2025: date(2025, 1, 29),
    2026: date(2026, 2, 17),
    2027: date(2027, 2, 6),
    2028: date(2028, 1, 26),
    2029: date(2029, 2, 13),
    2030: date(2030, 2, 3),
    2031: date(2031, 1, 23),
    2032: date(2032, 2, 11),
    2033: date(2033, 1, 31),
    2034: date(2034, 2, 19),
    2035: date(2035, 2, 8),
}
# Province codes (GB/T 2260) and names as Santander's cod_prov / nomprov, aligned with REGIONS.
_PROVINCE_CODE: Final = np.array([44, 45, 35, 43, 36, 41, 51, 33, 32, 31, 11, 42], dtype=np.int64)
_PROVINCE_NAME: Final[tuple[str, ...]] = (
    "GUANGDONG",
    "GUANGXI",
    "FUJIAN",
    "HUNAN",
    "JIANGXI",
    "HENAN",
    "SICHUAN",
    "ZHEJIANG",
    "JIANGSU",
    "SHANGHAI",
    "BEIJING",
    "HUBEI",
)
#: A region code of the bank (``customers.parquet``) -> its Santander ``cod_prov``.
PROVINCE_CODE: Final[Mapping[str, int]] = dict(zip(REGIONS, _PROVINCE_CODE.tolist(), strict=True))
_COUNTRIES: Final[tuple[str, ...]] = ("CN", "HK", "MO")
#: canal_entrada: how the customer joined (app, branch, employer payroll, mortgage, remote agent).
_JOIN_CHANNELS: Final[tuple[str, ...]] = ("APP", "BRN", "PAY", "MTG", "RMT")
_SEGMENTO: Final[tuple[str, ...]] = ("01 - TOP", "02 - PARTICULARES", "03 - UNIVERSITARIO")
_TIPREL: Final[tuple[str, ...]] = ("R", "A", "A", "I", "I", "P")  # by lifecycle stage
_INDREL_1MES: Final[tuple[str, ...]] = ("P", "1", "1", "1", "1", "3")  # by lifecycle stage

_POTENTIAL, _NEW, _ACTIVE, _DORMANT, _CHURN_RISK, _CHURNED = range(6)
_PAYROLL, _MORTGAGE, _CARD, _WEALTH, _SOCIAL, _LONG_TAIL = range(6)
_SALARY, _DEP_MATURING, _WM_MATURING, _TRANSFER, _AUM_DROP = range(len(MOMENTS))
_MONTH_S: Final = int(30.44 * DAY)


def flag_column(product_id: str) -> str:
    """The Santander flag column of a catalogue product: ``DEP-3M-01`` → ``ind_dep_3m_01_ult1``."""
    return "ind_" + product_id.lower().replace("-", "_") + "_ult1"


def product_of_flag(column: str) -> str:
    """The catalogue product id of a flag column (inverse of :func:`flag_column`)."""
    return column.removeprefix("ind_").removesuffix("_ult1").replace("_", "-").upper()


def snapshot_dates(start: date, months: int) -> list[date]:
    """The ``months`` snapshot dates (the 28th) from ``start``'s month on."""
    first = start.year * 12 + start.month - 1
    return [date((first + k) // 12, (first + k) % 12 + 1, SNAPSHOT_DAY) for k in range(months)]


# ---------------------------------------------------------------------------------------------
# state
# ---------------------------------------------------------------------------------------------


@dataclass
class _State:
    """Column-wise state of every customer so far (arrivals are appended)."""

    birth: NDArray[np.datetime64]
    male: Bool
    region: I64
    created: I64  # epoch seconds
    seg: Bool  # [n × segments]
    aum: F64
    lifecycle: I64
    risk_level: I64  # 0 = never assessed
    expires: I64  # epoch seconds, 0 = never assessed
    held: Bool  # [n × products]
    opened: I64  # [n × products] epoch days of the open position, -1 = none
    level: F64  # [n × moments] decayed moment level at the last snapshot
    added_last: Bool  # added a product in the last month
    churned_at: I64  # epoch days of the last move to "churned", -1 = never
    salary: F64  # usual monthly salary (payroll customers)
    payday: I64  # day of month the salary arrives
    activity: F64  # persistent propensity to act (a latent random effect)
    type_taste: F32  # [n × product types] persistent latent taste per product type
    employee: Bool
    country: I64
    join_channel: I64
    renta: F64  # NaN = unknown, as in Santander

    @property
    def n(self) -> int:
        return int(self.male.shape[0])

    def extend(self, other: _State) -> None:
        for f in fields(self):
            setattr(self, f.name, np.concatenate([getattr(self, f.name), getattr(other, f.name)]))


def _start_state(rng: np.random.Generator, c: _Customers, held: Bool, opened_s: I64) -> _State:
    """Per-customer attributes the snapshots need beyond the generator's, drawn from ``rng``."""
    n = c.n
    created_day = c.created // DAY
    opened = np.where(held, opened_s // DAY, -1).astype(np.int64)
    payroll = c.seg[:, _PAYROLL]
    young = (c.created > c.created.max(initial=0) - 3 * 365 * DAY) if n else np.zeros(0, dtype=np.bool_)
    join = np.where(
        payroll & (rng.random(n) < 0.7),
        _JOIN_CHANNELS.index("PAY"),
        np.where(
            c.seg[:, _MORTGAGE] & (rng.random(n) < 0.6),
            _JOIN_CHANNELS.index("MTG"),
            np.where(
                young & (rng.random(n) < 0.6),
                _JOIN_CHANNELS.index("APP"),
                np.where(rng.random(n) < 0.9, _JOIN_CHANNELS.index("BRN"), _JOIN_CHANNELS.index("RMT")),
            ),
        ),
    ).astype(np.int64)
    salary = np.asarray(np.round(np.exp(rng.normal(np.log(9_000.0), 0.5, n)), 2), dtype=np.float64)
    income = np.where(
        payroll,
        salary * 12 * rng.uniform(1.1, 1.8, n),
        np.exp(rng.normal(np.log(70_000.0) + 0.2 * np.log((c.aum + 1_000.0) / 15_000.0), 0.5)),
    )
    renta = np.where(rng.random(n) < 0.18, np.nan, np.round(income, 2))
    country = rng.choice(len(_COUNTRIES), n, p=[0.99, 0.007, 0.003]).astype(np.int64)
    return _State(
        birth=c.birth,
        male=c.male,
        region=c.region,
        created=c.created,
        seg=c.seg,
        aum=c.aum,
        lifecycle=c.lifecycle,
        risk_level=c.risk_level,
        expires=c.expires,
        held=held,
        opened=opened,
        level=np.zeros((n, len(MOMENTS))),
        added_last=np.zeros(n, dtype=np.bool_),
        churned_at=np.where(c.lifecycle == _CHURNED, created_day, -1).astype(np.int64),
        salary=salary,
        payday=rng.integers(1, 26, n).astype(np.int64),
        activity=rng.normal(0.0, 0.5, n),
        type_taste=rng.normal(0.0, 0.35, (n, len(PRODUCT_TYPES))).astype(np.float32),
        employee=rng.random(n) < 0.002,
        country=country,
        join_channel=join,
        renta=renta,
    )


def _initial_state(seed: int, customers: int, first: date, cat: _Catalogue) -> _State:
    # The same child streams as ``generate``: stream 0 draws customers, stream 1 prior holdings.
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(12)]
    first_s = _epoch(first)
    c = _customers(streams[0], customers, first, first_s)
    prior, held = _prior_holdings(streams[1], c, cat, first_s)
    opened_s = np.zeros(held.shape, dtype=np.int64)
    opened_s[np.asarray(prior["customer"], dtype=np.int64), np.asarray(prior["product"], dtype=np.int64)] = (
        np.asarray(prior["opened"], dtype=np.int64)
    )
    return _start_state(streams[9], c, held, opened_s)


def _arrivals(rng: np.random.Generator, count: int, s: int, e: int, cat: _Catalogue) -> _State:
    """``count`` customers who join in ``(s, e]`` with their entry products."""
    e_date = datetime.fromtimestamp(e, tz=UTC).date()
    c = _customers(rng, count, e_date, e)
    c.lifecycle = np.full(count, _NEW, dtype=np.int64)
    # Joined on a day after the last snapshot's, during banking hours (never after this snapshot).
    joined_day = rng.integers(s // DAY + 1, e // DAY + 1, count)
    c.created = np.minimum(joined_day * DAY + rng.integers(9 * HOUR, 17 * HOUR, count), e).astype(np.int64)
    # New customers bring a fraction of what they will hold later; segments follow the new AUM.
    c.aum = np.round(c.aum * rng.uniform(0.2, 0.5, count), 2)
    c.seg[:, _WEALTH] &= c.aum >= 300_000
    c.seg[:, _LONG_TAIL] = (c.aum < 50_000) & ~c.seg[:, _PAYROLL] & ~c.seg[:, _WEALTH]
    # Account opening includes a risk assessment for those who had one drawn.
    c.expires = np.where(c.risk_level > 0, c.created + 365 * DAY, 0).astype(np.int64)
    c.assessed = np.where(c.risk_level > 0, c.created, 0).astype(np.int64)

    n, p = count, cat.size
    held = np.zeros((n, p), dtype=np.bool_)
    held[:, cat.index("PAY-CARD-01")] = c.seg[:, _PAYROLL]
    held[:, cat.index("MS-LOAN-01")] = c.seg[:, _MORTGAGE]
    cards = cat.ids("credit_card")
    facts = _facts(c.age, c.aum, c.region, c.seg, c.lifecycle, held, c.risk_level, c.expires)
    card_ok = offerable_matrix(facts, cat.products, e * US)[:, cards]
    choice = cards[np.argmax(card_ok * rng.random((n, cards.shape[0])), axis=1)]
    gets_card = c.seg[:, _CARD] & card_ok.any(axis=1)
    held[np.flatnonzero(gets_card), choice[gets_card]] = True
    c.seg[:, _CARD] = gets_card
    starter = ~held.any(axis=1) & (rng.random(n) < 0.5)
    held[:, cat.index("DEP-NEW-01")] |= starter
    # Those who registered without a product (an app sign-up) are prospects, not new customers.
    c.lifecycle = np.where(held.any(axis=1), _NEW, _POTENTIAL).astype(np.int64)
    opened_s = np.repeat(c.created[:, None], p, axis=1)
    state = _start_state(rng, c, held, opened_s)
    state.join_channel = np.where(
        c.seg[:, _PAYROLL],
        _JOIN_CHANNELS.index("PAY"),
        np.where(c.seg[:, _MORTGAGE], _JOIN_CHANNELS.index("MTG"), state.join_channel),
    ).astype(np.int64)
    return state


def _facts(
    age: I64,
    aum: F64,
    region: I64,
    seg: Bool,
    lifecycle: I64,
    held: Bool,
    risk_level: I64,
    expires: I64,
) -> CustomerArrays:
    return CustomerArrays(
        age=age,
        aum=aum,
        region=np.asarray(REGIONS)[region],
        segments=seg,
        lifecycle=lifecycle,
        held=held,
        risk_level=risk_level,
        risk_expires_us=expires * US,
    )


# ---------------------------------------------------------------------------------------------
# the planted model: logit of a monthly addition = features @ effects + season + latent taste
# ---------------------------------------------------------------------------------------------

FEATURES: Final[tuple[str, ...]] = (
    "const",
    "hold_payroll",
    "hold_card",
    "hold_deposit",
    "hold_mortgage",
    "hold_insurance",
    "hold_loan",
    *(f"rung_{r}" for r in range(6)),
    "recent_card",
    "recent_payroll",
    "recent_mortgage",
    "n_held",
    "added_last_month",
    *(f"life_{stage}" for stage in LIFECYCLE_STAGES),
    *(f"aum_band_{b}" for b in range(5)),
    "age_young",
    "age_family",
    "age_senior",
    "age_elderly",
    "seg_wealth",
    "seg_long_tail",
    "seg_social_security",
    *(f"risk_{level}" for level in range(6)),
    "tenure_log",
    *(f"x_{m}" for m in MOMENTS),
    "activity",
)
_F: Final[Mapping[str, int]] = {name: k for k, name in enumerate(FEATURES)}

# Intercept by product type: a few percent of customers add something in a month.
_BASE: Final[Mapping[str, float]] = {
    "deposit": -7.25,
    "structured_deposit": -8.05,
    "wealth_management": -7.85,
    "fund": -8.05,
    "insurance": -8.2,
    "credit_card": -7.6,
    "consumer_loan": -8.3,
    "mortgage_service": -7.2,
    "payroll_service": -7.0,
}
_LIFECYCLE_EFFECT: Final = (-0.8, 0.7, 0.0, -1.6, -1.2, -3.0)


class _ProductMasks:
    """Float masks over the catalogue, to write effects the way a marketer would say them."""

    def __init__(self, cat: _Catalogue) -> None:
        self.cat = cat

    def type(self, *kinds: str) -> F32:
        return np.isin(self.cat.ptype, [PRODUCT_TYPES.index(k) for k in kinds]).astype(np.float32)

    def tag(self, tag: str) -> F32:
        return np.array([tag in p.tags for p in self.cat.products], dtype=np.float32)

    def ids(self, *product_ids: str) -> F32:
        return np.array([p.product_id in product_ids for p in self.cat.products], dtype=np.float32)

    def rated_investment(self) -> Bool:
        kinds = [PRODUCT_TYPES.index(k) for k in ("structured_deposit", "wealth_management", "fund")]
        return np.asarray(np.isin(self.cat.ptype, kinds) & (self.cat.rating > 0), dtype=np.bool_)


def _effects(cat: _Catalogue) -> F32:
    """``[features × products]`` logit effects of the planted adoption model."""
    w = np.zeros((len(FEATURES), cat.size), dtype=np.float32)
    m = _ProductMasks(cat)

    def add(feature: str, amount: float | F32, where: F32) -> None:
        w[_F[feature]] += np.asarray(amount, dtype=np.float32) * where

    ones = np.ones(cat.size, dtype=np.float32)
    add("const", np.array([_BASE[PRODUCT_TYPES[k]] for k in cat.ptype], dtype=np.float32), ones)
    deposit, card, loan = m.type("deposit"), m.type("credit_card"), m.type("consumer_loan")
    insurance, savings = m.type("insurance"), m.type("deposit", "structured_deposit", "wealth_management")
    invest = m.rated_investment()
    low_invest = (invest & (cat.rating <= 2)).astype(np.float32)

    # The ladder: payroll → card → deposits → wealth of rising risk; mortgage → insurance.
    add("hold_payroll", 2.3, card)
    add("hold_payroll", 0.8, deposit + m.ids("FD-DCA-500"))
    add("hold_payroll", 0.5, loan)  # as in the generator's planted preferences
    add("hold_card", 1.3, deposit)
    add("hold_card", 0.3, low_invest)
    add("hold_deposit", 1.7, low_invest)
    add("hold_deposit", 0.3, deposit)
    for rung in range(6):
        q = cat.rating.astype(np.float32)
        if rung == 0:
            effect = np.select([q == 1, q == 2, q >= 3], [0.6, 0.3, -1.0], 0.0)
        else:
            effect = np.select([q == rung + 1, q == rung, q >= rung + 2], [1.9, 0.8, -0.8], 0.0)
        add(f"rung_{rung}", effect.astype(np.float32), invest.astype(np.float32))
    add("hold_mortgage", 1.8, insurance)
    add("hold_mortgage", 1.0, m.tag("安居"))
    add("hold_insurance", -0.4, insurance)
    add("hold_loan", -0.5, loan)
    add("recent_card", 2.0, m.ids("CL-BILL-01"))
    add("recent_card", 0.3, loan)
    add("recent_payroll", 1.8, m.ids("PAY-SWEEP-01"))
    add("recent_payroll", 1.0, m.ids("WM-PAY-R2", "PAY-ANNU-01"))
    add("recent_payroll", 0.8, card)
    add("recent_mortgage", 2.0, m.ids("MS-GUARD-01"))
    add("recent_mortgage", 1.0, insurance)
    add("recent_mortgage", 1.5, m.ids("CL-RENO-01"))
    add("n_held", -0.12, ones)
    add("added_last_month", 0.5, ones)

    # Lifecycle and tenure: new customers are busy, dormant and churning ones are not.
    for k, stage in enumerate(LIFECYCLE_STAGES):
        add(f"life_{stage}", _LIFECYCLE_EFFECT[k], ones)
    new_customer = m.ids("DEP-NEW-01", "WM-NEW-R1")
    add("life_new", 1.5, new_customer)
    add("life_potential", 2.0, new_customer)
    add("tenure_log", -0.15, ones)

    # Wealth follows AUM; the generator's readable effects (age, long tail, segments) carry over.
    for band in range(5):
        add(f"aum_band_{band}", 0.35 * band - 0.5, invest.astype(np.float32) + m.type("structured_deposit"))
        add(f"aum_band_{band}", 0.1 * band, deposit)
    add("age_young", 0.6, card + m.tag("青年"))
    add("age_family", 0.5, m.tag("亲子"))
    add("age_senior", 1.2, m.tag("养老"))
    add("age_elderly", -1.0, card + loan)
    add("seg_long_tail", 0.6, m.tag("短期") + m.tag("灵活"))
    add("seg_long_tail", -0.6, (invest & (cat.rating >= 3)).astype(np.float32))
    add("seg_wealth", 0.5, invest.astype(np.float32))
    add("seg_social_security", 1.5, m.ids("PAY-SSC-01"))
    # Customers buy close to their risk tolerance, not just anything below it.
    rated = (cat.rating > 0).astype(np.float32)
    for level in range(6):
        add(f"risk_{level}", -0.4 * np.abs(level - cat.rating).astype(np.float32), rated)

    # Moments: money that arrives or matures looks for a home; an AUM drop is a churn signal.
    add("x_salary_credited", 0.7, deposit + low_invest + m.ids("PAY-SWEEP-01", "FD-DCA-500"))
    add("x_deposit_maturing", 1.6, savings + invest.astype(np.float32) * (1 - savings))
    add("x_wealth_maturing", 1.8, m.type("structured_deposit", "wealth_management", "fund"))
    add("x_wealth_maturing", 0.6, deposit)
    add("x_large_inbound_transfer", 1.4, savings + m.type("fund"))
    add("x_large_inbound_transfer", 0.8, m.ids("DEP-CD-3Y", "INS-UL-01", "INS-ILP-01"))
    add("x_aum_drop", -1.5, savings + m.type("fund", "insurance"))
    add("x_aum_drop", 1.0, loan)
    add("activity", 1.0, ones)
    return w


def _overlap_days(s_day: int, e_day: int, lo: date, hi: date) -> int:
    """Days of the window ``(s_day, e_day]`` that fall in ``[lo, hi)``."""
    lo_day, hi_day = _epoch(lo) // DAY, _epoch(hi) // DAY
    return max(0, min(e_day + 1, hi_day) - max(s_day + 1, lo_day))


def _season(cat: _Catalogue, s_day: int, e_day: int, snapshot: date) -> F32:
    """Logit shift per product for the month ending at ``snapshot``."""
    m = _ProductMasks(cat)
    month = snapshot.month
    out = np.zeros(cat.size, dtype=np.float32)
    insurance, deposit = m.type("insurance"), m.type("deposit")
    loan, card = m.type("consumer_loan"), m.type("credit_card")
    if month in (1, 2, 3):  # 开门红: banks push insurance in Q1
        out += 1.0 * insurance
    if month == 12:
        out += 0.7 * deposit - 0.3 * insurance  # year-end deposit drive
    if month == 1:
        out += 0.5 * deposit + 1.5 * m.ids("MS-RATE-01") + 0.5 * m.ids("PAY-ANNU-01")
    if month == 6:
        out += 0.3 * (deposit + m.type("structured_deposit"))  # half-year end
    if month in (7, 8):
        out += 0.8 * m.ids("INS-EDU-01")
    if month in (8, 9):
        out += 1.0 * m.ids("CL-EDU-01")
    pre_cny = 0
    for year in {snapshot.year - 1, snapshot.year, snapshot.year + 1}:
        cny = _CNY.get(year, date(year, 2, 1))
        pre_cny += _overlap_days(s_day, e_day, date.fromordinal(cny.toordinal() - 30), cny)
    cny_effect = min(1.0, pre_cny / 20.0)
    out += cny_effect * (1.3 * loan + 0.4 * card)
    double_11 = sum(
        _overlap_days(s_day, e_day, date(y, 10, 20), date(y, 11, 12))
        for y in {snapshot.year - 1, snapshot.year}
    )
    d11_effect = min(1.0, double_11 / 15.0)
    out += d11_effect * (1.0 * loan + 0.7 * card + 0.5 * m.ids("CL-BILL-01"))
    return out


def _features(st: _State, n: int, s: int, exposure: F64, cat: _Catalogue) -> F32:
    """``[n × features]`` of the first ``n`` customers at the start ``s`` of a month."""
    x = np.zeros((n, len(FEATURES)), dtype=np.float32)
    held = st.held[:n]
    opened = st.opened[:n]
    s_day = s // DAY

    def col(name: str, values: ArrayLike) -> None:
        x[:, _F[name]] = values

    def has(kind: str) -> Bool:
        return np.asarray(held[:, cat.ids(kind)].any(axis=1), dtype=np.bool_)

    pay, mortgage = cat.index("PAY-CARD-01"), cat.index("MS-LOAN-01")
    cards = cat.ids("credit_card")
    col("const", np.ones(n))
    col("hold_payroll", held[:, pay])
    col("hold_card", held[:, cards].any(axis=1))
    col("hold_deposit", has("deposit"))
    col("hold_mortgage", held[:, mortgage])
    col("hold_insurance", has("insurance"))
    col("hold_loan", has("consumer_loan"))
    invest = _ProductMasks(cat).rated_investment()
    rung = (held[:, invest] * cat.rating[invest]).max(axis=1, initial=0)
    x[np.arange(n), _F["rung_0"] + rung] = 1.0
    col("recent_card", (held[:, cards] & (opened[:, cards] >= s_day - 92)).any(axis=1))
    col("recent_payroll", held[:, pay] & (opened[:, pay] >= s_day - 183))
    col("recent_mortgage", held[:, mortgage] & (opened[:, mortgage] >= s_day - 365))
    col("n_held", held.sum(axis=1))
    col("added_last_month", st.added_last[:n])
    x[np.arange(n), _F["life_potential"] + st.lifecycle[:n]] = 1.0
    x[np.arange(n), _F["aum_band_0"] + np.digitize(st.aum[:n], _AUM_EDGES)] = 1.0
    age = _age_at(st.birth[:n], datetime.fromtimestamp(s, tz=UTC).date())
    col("age_young", age <= 35)
    col("age_family", (age >= 30) & (age <= 45))
    col("age_senior", age >= 50)
    col("age_elderly", age >= 66)
    col("seg_wealth", st.seg[:n, _WEALTH])
    col("seg_long_tail", st.seg[:n, _LONG_TAIL])
    col("seg_social_security", st.seg[:n, _SOCIAL])
    valid_risk = np.where(st.expires[:n] > s, st.risk_level[:n], 0)
    x[np.arange(n), _F["risk_0"] + valid_risk] = 1.0
    col("tenure_log", np.log1p(np.maximum(s - st.created[:n], 0) / _MONTH_S))
    for k, name in enumerate(MOMENTS):
        col(f"x_{name}", exposure[:, k])
    col("activity", st.activity[:n])
    return x


# ---------------------------------------------------------------------------------------------
# closures
# ---------------------------------------------------------------------------------------------


def _closure_rates(cat: _Catalogue) -> tuple[F32, F32, F32]:
    """Per product: monthly hazard of an open-ended close, close-at-maturity chance, AUM-drop boost."""
    hazard = np.zeros(cat.size, dtype=np.float32)
    at_maturity = np.zeros(cat.size, dtype=np.float32)
    drop_boost = np.zeros(cat.size, dtype=np.float32)
    by_type_hazard = {
        "deposit": 0.004,
        "structured_deposit": 0.003,
        "wealth_management": 0.004,
        "fund": 0.015,
        "insurance": 0.002,
        "credit_card": 0.004,
        "consumer_loan": 0.01,
        "mortgage_service": 0.003,
        "payroll_service": 0.003,
    }
    # Share of positions closed within a year of maturities (the rest roll over, 自动转存 / 续保);
    # a short term matures often, so its chance per maturity is correspondingly smaller.
    by_type_maturity = {
        "deposit": 0.25,
        "structured_deposit": 0.35,
        "wealth_management": 0.3,
        "fund": 0.2,
        "insurance": 0.15,
        "consumer_loan": 0.5,
        "mortgage_service": 0.2,
    }
    special = {
        "WM-R1-T0": 0.015,
        "DEP-NTC-7D": 0.03,
        "MS-PREPAY-01": 0.3,  # a booking is served and closed within weeks
        "MS-RATE-01": 0.3,
        "PAY-SWEEP-01": 0.01,
        "PAY-ANNU-01": 0.001,
        "PAY-SSC-01": 0.0005,
        "MS-LOAN-01": 0.002,
        "PAY-CARD-01": 0.002,
    }
    for j, product in enumerate(cat.products):
        kind = product.product_type
        hazard[j] = special.get(product.product_id, by_type_hazard[kind])
        yearly = by_type_maturity.get(kind, 1.0)
        term_years = min(float(cat.term_days[j]) / 365.0, 1.0)
        at_maturity[j] = 1.0 - (1.0 - yearly) ** term_years
        if kind in ("deposit", "structured_deposit", "wealth_management", "fund", "insurance"):
            drop_boost[j] = 3.0
    return hazard, at_maturity, drop_boost


# ---------------------------------------------------------------------------------------------
# one month
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PanelMonth:
    """What one month of the panel produced; tables are Arrow tables ready to write.

    ``snapshot``: the Santander-layout rows at ``fecha_dato``; ``oracle``: the true adoption
    probability of every (customer present at the month's start, product not held then) pair for
    the month ending at ``fecha_dato`` (empty for the first snapshot, which has no month before it);
    ``moments``: the moments drawn in the month; ``state``: lifecycle, AUM, valid risk level and
    segments at ``fecha_dato``; ``stats``: counts for the manifest.
    """

    fecha_dato: date
    snapshot: pa.Table
    oracle: pa.Table
    moments: pa.Table
    state: pa.Table
    stats: Mapping[str, float]


@dataclass
class _Moments:
    cust: I64
    kind: I64
    at: I64  # epoch seconds
    amount: F64  # NaN = not known


def _draw_moments(
    rng: np.random.Generator, st: _State, n: int, s: int, e: int, cat: _Catalogue, bonus: bool
) -> tuple[_Moments, Bool]:
    """Moments of the first ``n`` customers in ``(s, e]`` and which positions mature in it."""
    cust_parts: list[I64] = []
    kind_parts: list[I64] = []
    at_parts: list[I64] = []
    amount_parts: list[F64] = []

    def add(kind: int, cust: I64, at: I64, amount: F64) -> None:
        cust_parts.append(cust)
        kind_parts.append(np.full(cust.shape[0], kind, dtype=np.int64))
        at_parts.append(at)
        amount_parts.append(amount)

    lifecycle = st.lifecycle[:n]
    e_date = datetime.fromtimestamp(e, tz=UTC).date()
    month_start = _epoch(e_date.replace(day=1))
    pay = cat.index("PAY-CARD-01")
    paid = np.flatnonzero(st.held[:n, pay] & (lifecycle != _CHURNED) & (rng.random(n) < 0.97))
    at = month_start + (st.payday[paid] - 1) * DAY + rng.integers(7 * HOUR, 11 * HOUR, paid.shape[0])
    amount = st.salary[paid] * rng.uniform(0.95, 1.1, paid.shape[0])
    if bonus:  # 年终奖: most employers pay the year-end bonus before Chinese New Year
        amount *= np.where(rng.random(paid.shape[0]) < 0.6, rng.uniform(2.0, 4.0, paid.shape[0]), 1.0)
    add(_SALARY, paid, at.astype(np.int64), np.round(amount, 2))

    # Term positions roll over at maturity; each maturity is a moment (and a chance to close).
    s_day, e_day = s // DAY, e // DAY
    term = cat.term_days
    rolling_types = [PRODUCT_TYPES.index(k) for k in ("deposit", "structured_deposit", "wealth_management")]
    termed = term >= 28
    rows, cols = np.nonzero(st.held[:n][:, termed])
    cols = np.flatnonzero(termed)[cols]
    opened = st.opened[rows, cols]
    # A maturity at 10:00 on day d is in the window (s, e] of midnights when s_day <= d < e_day.
    k = np.maximum(1, -(-(s_day - opened) // term[cols]))
    due = opened + k * term[cols]
    hit = due < e_day
    matures = np.zeros((n, cat.size), dtype=np.bool_)
    matures[rows[hit], cols[hit]] = True
    rolling = hit & np.isin(cat.ptype[cols], rolling_types)
    wealth = cat.ptype[cols] == PRODUCT_TYPES.index("wealth_management")
    for kind, mask in ((_DEP_MATURING, rolling & ~wealth), (_WM_MATURING, rolling & wealth)):
        sel = np.flatnonzero(mask)
        add(kind, rows[sel], due[sel] * DAY + 10 * HOUR, np.full(sel.shape[0], np.nan))

    def uniform_in_window(count: int) -> I64:
        return (s + 1 + (rng.random(count) * (e - s - 1))).astype(np.int64)

    active = lifecycle != _CHURNED
    rate = (
        (0.04 + 0.10 * (st.aum[:n] >= 200_000) + 0.02 * st.held[:n, pay]) * active * (2.0 if bonus else 1.0)
    )
    transfers = np.repeat(np.arange(n, dtype=np.int64), rng.poisson(rate))
    draw = np.exp(rng.normal(np.log(60_000), 0.9, transfers.shape[0]))
    amount = np.asarray(np.round(np.maximum(20_000.0, draw), 2), dtype=np.float64)
    add(_TRANSFER, transfers, uniform_in_window(transfers.shape[0]), amount)

    drop_rate = np.array([0.0, 0.004, 0.012, 0.03, 0.2, 0.02])[lifecycle]
    dropped = np.flatnonzero(rng.random(n) < drop_rate)
    amount = np.round(st.aum[dropped] * rng.uniform(0.2, 0.6, dropped.shape[0]), 2)
    add(_AUM_DROP, dropped, uniform_in_window(dropped.shape[0]), amount)

    moments = _Moments(
        cust=np.concatenate(cust_parts),
        kind=np.concatenate(kind_parts),
        at=np.concatenate(at_parts),
        amount=np.concatenate(amount_parts),
    )
    order = np.lexsort((moments.kind, moments.at, moments.cust))
    return (
        _Moments(moments.cust[order], moments.kind[order], moments.at[order], moments.amount[order]),
        matures,
    )


def _exposure(st: _State, n: int, moments: _Moments, s: int, e: int) -> F64:
    """Mean decayed moment effect over ``(s, e]`` per customer and type; updates ``st.level``."""
    span = (e - s) / DAY
    half = np.array([HALF_LIFE_DAYS[m] for m in MOMENTS])
    carry = half / (math.log(2) * span) * (1 - 2.0 ** (-span / half))
    since = (e - moments.at) / DAY
    h = half[moments.kind]
    weight = np.ones(moments.cust.shape[0])
    salary = moments.kind == _SALARY
    weight[salary] = moments.amount[salary] / st.salary[moments.cust[salary]]
    key = moments.cust * len(MOMENTS) + moments.kind
    size = n * len(MOMENTS)
    within = np.bincount(key, weight * h / (math.log(2) * span) * (1 - 2.0 ** (-since / h)), minlength=size)
    at_end = np.bincount(key, weight * 2.0 ** (-since / h), minlength=size)
    level = st.level[:n]
    exposure = level * carry[None, :] + within.reshape(n, len(MOMENTS))
    st.level[:n] = level * (2.0 ** (-span / half))[None, :] + at_end.reshape(n, len(MOMENTS))
    return np.asarray(exposure, dtype=np.float64)


def _bonus_month(s_day: int, e_day: int, snapshot: date) -> bool:
    """The month whose window holds the tenth day before Chinese New Year pays the year-end bonus."""
    for year in (snapshot.year, snapshot.year + 1):
        cny = _CNY.get(year, date(year, 2, 1))
        payday = _epoch(cny) // DAY - 10
        if s_day < payday <= e_day:
            return True
    return False


class _Simulation:
    """Steps the panel month by month; holds the effects, catalogue arrays and state."""

    def __init__(self, customers: int, seed: int, start: date, arrival_rate: float) -> None:
        self.cat = _catalogue_arrays(CATALOGUE)
        self.seed = seed
        self.customers = customers
        self.arrival_rate = arrival_rate
        self.effects = _effects(self.cat)
        self.hazard, self.close_at_maturity, self.drop_boost = _closure_rates(self.cat)
        self.state = _initial_state(seed, customers, start, self.cat)
        ids = [p.product_id for p in self.cat.products]
        self.product_ids = pa.array(ids, type=pa.string())
        self.flag_names = [flag_column(i) for i in ids]

    def rng(self, stream: int, t: int) -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(stream, t)))

    def month(self, t: int, snapshot: date, previous: date) -> PanelMonth:
        st, cat = self.state, self.cat
        s, e = _epoch(previous), _epoch(snapshot)
        s_day, e_day = s // DAY, e // DAY
        rng = self.rng(10, t)
        n = st.n
        moments, matures = _draw_moments(rng, st, n, s, e, cat, _bonus_month(s_day, e_day, snapshot))
        exposure = _exposure(st, n, moments, s, e)
        stats: dict[str, float] = {"customers_at_start": float(n)}
        if t == 0:
            oracle = _oracle_table(np.zeros((0,), dtype=np.int64), snapshot, self.product_ids, cat.size)
        else:
            oracle = self._transition(rng, n, s, e, snapshot, exposure, matures, moments, stats)
        arrivals = 0
        if t > 0 and self.arrival_rate > 0:
            arrival_rng = self.rng(11, t)
            arrivals = int(arrival_rng.poisson(self.arrival_rate * self.customers))
            if arrivals:
                st.extend(_arrivals(arrival_rng, arrivals, s, e, cat))
        stats["arrivals"] = float(arrivals)
        return PanelMonth(
            fecha_dato=snapshot,
            snapshot=self._snapshot_table(snapshot),
            oracle=oracle,
            moments=_moments_table(moments, snapshot),
            state=self._state_table(snapshot),
            stats=stats,
        )

    def _transition(
        self,
        rng: np.random.Generator,
        n: int,
        s: int,
        e: int,
        snapshot: date,
        exposure: F64,
        matures: Bool,
        moments: _Moments,
        stats: dict[str, float],
    ) -> pa.Table:
        st, cat = self.state, self.cat
        s_day, e_day = s // DAY, e // DAY
        held = st.held[:n].copy()  # the state at the month's start; st.held moves on below
        start_date = datetime.fromtimestamp(s, tz=UTC).date()
        facts = _facts(
            _age_at(st.birth[:n], start_date),
            st.aum[:n],
            st.region[:n],
            st.seg[:n],
            st.lifecycle[:n],
            held,
            st.risk_level[:n],
            st.expires[:n],
        )
        # Suitability at the month's end: the assessment is valid for the whole month.
        offerable = offerable_matrix(facts, cat.products, e * US) & ~held
        z = _features(st, n, s, exposure, cat) @ self.effects
        z += _season(cat, s_day, e_day, snapshot)[None, :]
        z += st.type_taste[:n][:, cat.ptype]
        p_add = np.where(offerable, np.minimum(1.0 / (1.0 + np.exp(-z)), 0.6), 0.0).astype(np.float32)
        added = rng.random((n, cat.size), dtype=np.float32) < p_add
        self._one_card_at_most(rng, p_add, added)

        # Closures of positions held at the month's start.
        life_mult = np.array([1.0, 0.5, 1.0, 1.5, 2.5, 5.0], dtype=np.float32)[st.lifecycle[:n]]
        drop_x = exposure[:, _AUM_DROP].astype(np.float32)
        boost = 1.0 + self.drop_boost[None, :] * drop_x[:, None]
        hazard = np.minimum(self.hazard[None, :] * life_mult[:, None] * boost, 0.9)
        at_maturity = np.minimum(self.close_at_maturity[None, :] * (1.0 + 0.7 * drop_x[:, None]), 0.98)
        p_close = 1.0 - (1.0 - hazard) * (1.0 - np.where(matures, at_maturity, 0.0))
        closed = held & (rng.random((n, cat.size), dtype=np.float32) < p_close)

        rows, cols = np.nonzero(added)
        st.held[:n] = (held & ~closed) | added
        st.opened[:n][closed] = -1
        st.opened[rows, cols] = s_day + rng.integers(1, e_day - s_day + 1, rows.shape[0])

        # AUM: market drift, money in, money out.
        money = moments.kind == _TRANSFER
        money_in = np.bincount(moments.cust[money], moments.amount[money], minlength=n)
        out_kind = moments.kind == _AUM_DROP
        money_out = np.bincount(moments.cust[out_kind], moments.amount[out_kind], minlength=n)
        drift = np.exp(rng.normal(0.002, 0.03, n))
        st.aum[:n] = np.round(np.maximum(st.aum[:n] * drift + money_in - money_out, 0.0), 2)

        any_added = np.asarray(added.any(axis=1), dtype=np.bool_)
        had_any = np.asarray(held.any(axis=1), dtype=np.bool_)
        self._lifecycle(rng, n, e, any_added, np.asarray(money_out > 0, dtype=np.bool_), had_any)
        st.added_last[:n] = any_added
        pay, mortgage = cat.index("PAY-CARD-01"), cat.index("MS-LOAN-01")
        st.seg[:n, _PAYROLL] = st.held[:n, pay]
        st.seg[:n, _MORTGAGE] = st.held[:n, mortgage]
        st.seg[:n, _CARD] = st.held[:n][:, cat.ids("credit_card")].any(axis=1)
        st.seg[:n, _WEALTH] |= st.aum[:n] >= 500_000
        st.seg[:n, _LONG_TAIL] = (st.aum[:n] < 50_000) & ~st.seg[:n, _PAYROLL] & ~st.seg[:n, _WEALTH]

        # Risk re-assessment at the month's end, more likely when money is looking for a home.
        money_x = exposure[:, [_DEP_MATURING, _WM_MATURING, _TRANSFER]].sum(axis=1)
        expired = (st.risk_level[:n] > 0) & (st.expires[:n] <= e)
        renew = expired & (rng.random(n) < 0.08 + 0.3 * np.minimum(money_x, 1.0))
        first = (st.risk_level[:n] == 0) & (st.lifecycle[:n] != _POTENTIAL) & (rng.random(n) < 0.015)
        levels = rng.choice(np.arange(1, 6), n, p=[0.25, 0.35, 0.25, 0.1, 0.05])
        st.risk_level[:n] = np.where(first, levels, st.risk_level[:n])
        st.expires[:n] = np.where(renew | first, e + 365 * DAY, st.expires[:n])

        stats["adders"] = float(any_added.sum())
        stats["additions"] = float(rows.shape[0])
        stats["closures"] = float(closed.sum())
        stats["expected_additions"] = float(p_add.sum(dtype=np.float64))
        not_held = np.flatnonzero(~held.ravel())
        return _oracle_table(not_held, snapshot, self.product_ids, cat.size, p_add.ravel()[not_held])

    def _one_card_at_most(self, rng: np.random.Generator, p_add: F32, added: Bool) -> None:
        """A customer opens at most one credit card a month (a card excludes the others).

        Draws "a card at all" with chance ``1 - prod(1 - p)`` and which one in proportion to ``p``;
        ``p_add`` becomes each card's exact marginal chance under that draw (the oracle's value).
        """
        cards = self.cat.ids("credit_card")
        p = p_add[:, cards].astype(np.float64)
        total = p.sum(axis=1)
        any_card = 1.0 - np.prod(1.0 - p, axis=1)
        share = np.divide(p, total[:, None], out=np.zeros_like(p), where=total[:, None] > 0)
        p_add[:, cards] = (share * any_card[:, None]).astype(np.float32)
        opens = rng.random(p.shape[0]) < any_card
        pick = (rng.random((p.shape[0], 1)) > np.cumsum(share, axis=1)).sum(axis=1)
        pick = np.minimum(pick, cards.shape[0] - 1)
        added[:, cards] = False
        who = np.flatnonzero(opens)
        added[who, cards[pick[who]]] = True

    def _lifecycle(
        self, rng: np.random.Generator, n: int, e: int, added: Bool, aum_drop: Bool, had_any: Bool
    ) -> None:
        st = self.state
        stage = st.lifecycle[:n].copy()
        r = rng.random(n)
        tenure = (e - st.created[:n]) / _MONTH_S
        new = stage.copy()
        new[(stage == _POTENTIAL) & added] = _NEW
        new[(stage == _NEW) & (tenure >= 6)] = _ACTIVE
        new[(stage == _ACTIVE) & (r < 0.012)] = _DORMANT
        new[np.isin(stage, [_DORMANT, _CHURN_RISK, _CHURNED]) & added] = _ACTIVE
        new[(stage == _DORMANT) & ~added & (r < 0.025)] = _ACTIVE
        new[(stage == _CHURN_RISK) & ~added & (r < 0.10)] = _ACTIVE
        new[(stage == _CHURN_RISK) & ~added & (r >= 0.96)] = _CHURNED
        new[(stage == _CHURNED) & ~added & (r < 0.005)] = _ACTIVE  # won back by a branch or an RM
        new[np.isin(stage, [_NEW, _ACTIVE, _DORMANT]) & aum_drop] = _CHURN_RISK
        # Closing the last product is leaving the bank.
        new[had_any & ~st.held[:n].any(axis=1)] = _CHURNED
        moved = (new == _CHURNED) & (stage != _CHURNED)
        st.churned_at[:n] = np.where(moved, e // DAY, st.churned_at[:n])
        st.lifecycle[:n] = new

    def _snapshot_table(self, snapshot: date) -> pa.Table:
        st = self.state
        n = st.n
        e = _epoch(snapshot)
        age = _age_at(st.birth, snapshot)
        tenure = _months_between(st.created // DAY, snapshot)
        stage = st.lifecycle
        segmento = np.where(st.seg[:, _WEALTH], 0, np.where(age <= 24, 2, 1))
        churned_now = (stage == _CHURNED) & (st.churned_at >= (e - 31 * DAY) // DAY)
        columns: dict[str, pa.Array] = {
            "fecha_dato": _dates(np.full(n, e // DAY)),
            "ncodpers": pa.array(np.arange(1, n + 1, dtype=np.int64)),
            "ind_empleado": _labels(("N", "A"), st.employee.astype(np.int64)),
            "pais_residencia": _labels(_COUNTRIES, st.country),
            "sexo": _labels(("H", "V"), st.male.astype(np.int64)),
            "age": pa.array(age),
            "fecha_alta": _dates(st.created // DAY),
            "ind_nuevo": pa.array((tenure < 6).astype(np.int64)),
            "antiguedad": pa.array(tenure.astype(np.int64)),
            "indrel": pa.array(np.where(churned_now, 99, 1).astype(np.int64)),
            "ult_fec_cli_1t": _dates(st.churned_at, ~churned_now | (st.churned_at < 0)),
            "indrel_1mes": _labels(_INDREL_1MES, stage),
            "tiprel_1mes": _labels(_TIPREL, stage),
            "indresi": _labels(("S", "N"), (st.country != 0).astype(np.int64)),
            "indext": _labels(("N", "S"), (st.country != 0).astype(np.int64)),
            "conyuemp": pa.array(np.full(n, "N", dtype=object), type=pa.string(), mask=~st.employee),
            "canal_entrada": _labels(_JOIN_CHANNELS, st.join_channel),
            "indfall": _labels(("N",), np.zeros(n, dtype=np.int64)),
            "tipodom": pa.array(np.ones(n, dtype=np.int64)),
            "cod_prov": pa.array(_PROVINCE_CODE[st.region]),
            "nomprov": _labels(_PROVINCE_NAME, st.region),
            "ind_actividad_cliente": pa.array(np.isin(stage, [_NEW, _ACTIVE]).astype(np.int64)),
            "renta": pa.array(st.renta, mask=np.isnan(st.renta)),
            "segmento": _labels(_SEGMENTO, segmento),
        }
        for j, name in enumerate(self.flag_names):
            columns[name] = pa.array(st.held[:, j].astype(np.int8))
        return pa.table(columns)

    def _state_table(self, snapshot: date) -> pa.Table:
        st = self.state
        n = st.n
        e = _epoch(snapshot)
        columns: dict[str, pa.Array] = {
            "ncodpers": pa.array(np.arange(1, n + 1, dtype=np.int64)),
            "fecha_dato": _dates(np.full(n, e // DAY)),
            "lifecycle_stage": _labels(LIFECYCLE_STAGES, st.lifecycle),
            "aum": pa.array(st.aum.copy()),
            "risk_level": pa.array(np.where(st.expires > e, st.risk_level, 0).astype(np.int64)),
        }
        for k, name in enumerate(SEGMENTS):
            columns[f"seg_{name}"] = pa.array(st.seg[:, k].astype(np.int8))
        return pa.table(columns)


def _months_between(days: I64, snapshot: date) -> I64:
    """Whole calendar months from each epoch day to ``snapshot`` (Santander's ``antiguedad``)."""
    day = days.astype("datetime64[D]")
    month = day.astype("datetime64[M]")
    day_of_month = (day - month.astype("datetime64[D]")).astype(np.int64) + 1
    months = (snapshot.year * 12 + snapshot.month - 1) - (month.astype(np.int64) + 1970 * 12)
    return np.asarray(np.maximum(months - (day_of_month > snapshot.day), 0), dtype=np.int64)


def _dates(days: I64, null: Bool | None = None) -> pa.Array:
    """Epoch days as an Arrow ``date32`` array (written as ``YYYY-MM-DD`` in CSV)."""
    return pa.array(days.astype(np.int32), type=pa.int32(), mask=null).view(pa.date32())


def _labels(values: Sequence[str], index: I64) -> pa.Array:
    return pa.array(list(values), type=pa.string()).take(pa.array(index.astype(np.int64)))


def _oracle_table(
    pairs: I64, snapshot: date, product_ids: pa.Array, p: int, p_add: F32 | None = None
) -> pa.Table:
    day = _epoch(snapshot) // DAY
    values = np.zeros(pairs.shape[0], dtype=np.float32) if p_add is None else p_add
    return pa.table(
        {
            "ncodpers": pa.array(pairs // p + 1),
            "fecha_dato": _dates(np.full(pairs.shape[0], day)),
            "product_id": pa.DictionaryArray.from_arrays(pa.array((pairs % p).astype(np.int8)), product_ids),
            "p_add": pa.array(values),
        }
    )


def _moments_table(moments: _Moments, snapshot: date) -> pa.Table:
    day = _epoch(snapshot) // DAY
    return pa.table(
        {
            "ncodpers": pa.array(moments.cust + 1),
            "fecha_dato": _dates(np.full(moments.cust.shape[0], day)),
            "moment_type": _labels(MOMENTS, moments.kind),
            "at": pa.array(moments.at * US, type=pa.int64()).view(pa.timestamp("us", tz="UTC")),
            "amount": pa.array(moments.amount, mask=np.isnan(moments.amount)),
        }
    )


# ---------------------------------------------------------------------------------------------
# public API
# ---------------------------------------------------------------------------------------------


def iter_panel(
    customers: int,
    months: int,
    seed: int,
    start: date = DEFAULT_START,
    arrival_rate: float = ARRIVAL_RATE,
) -> Iterator[PanelMonth]:
    """Simulate ``months`` monthly snapshots of ``customers`` initial customers, one month at a time.

    The first snapshot (``start``'s month, day 28) is the generator's state; every later month
    applies additions, closures, lifecycle moves and arrivals (``arrival_rate`` × ``customers``
    new customers a month on average).
    """
    if customers < 1:
        raise ValueError("customers must be at least 1")
    if months < 1:
        raise ValueError("months must be at least 1")
    if not 0 <= arrival_rate < 1:
        raise ValueError("arrival_rate must be in [0, 1)")
    dates = snapshot_dates(start, months + 1)  # one extra month before, the first month's window
    first = dates[0].year * 12 + dates[0].month - 2
    before = date(first // 12, first % 12 + 1, SNAPSHOT_DAY)
    simulation = _Simulation(customers, seed, dates[0], arrival_rate)
    previous = before
    for t, snapshot in enumerate(dates[:months]):
        yield simulation.month(t, snapshot, previous)
        previous = snapshot


@dataclass(frozen=True)
class Panel:
    """A whole simulated panel in memory (use :func:`write_panel` for large ones)."""

    snapshots: pa.Table
    oracle: pa.Table
    moments: pa.Table
    state: pa.Table
    monthly: tuple[Mapping[str, float | str], ...]


def simulate_panel(
    customers: int,
    months: int,
    seed: int,
    start: date = DEFAULT_START,
    arrival_rate: float = ARRIVAL_RATE,
) -> Panel:
    """Simulate the panel of :func:`iter_panel` and keep every table in memory."""
    parts = list(iter_panel(customers, months, seed, start, arrival_rate))
    return Panel(
        snapshots=pa.concat_tables([m.snapshot for m in parts]),
        oracle=pa.concat_tables([m.oracle for m in parts]),
        moments=pa.concat_tables([m.moments for m in parts]),
        state=pa.concat_tables([m.state for m in parts]),
        monthly=tuple(_monthly_stats(m) for m in parts),
    )


@dataclass(frozen=True)
class PanelManifest:
    """What one panel run wrote; saved as ``manifest.json``."""

    seed: int
    customers: int
    months: int
    start: date
    arrival_rate: float
    rows: Mapping[str, int]
    monthly: tuple[Mapping[str, float | str], ...]
    seconds: float

    def to_json(self) -> str:
        """The manifest as the JSON text of ``manifest.json``."""
        return json.dumps(
            {
                "seed": self.seed,
                "customers": self.customers,
                "months": self.months,
                "start": self.start.isoformat(),
                "arrival_rate": self.arrival_rate,
                "rows": dict(self.rows),
                "monthly": [dict(m) for m in self.monthly],
                "flags": {flag_column(p.product_id): p.product_id for p in CATALOGUE},
                "seconds": round(self.seconds, 3),
            },
            indent=2,
            ensure_ascii=False,
        )


#: Files written by :func:`write_panel`, relative to its output directory.
SNAPSHOTS_CSV: Final = "snapshots.csv"
SNAPSHOTS_PARQUET: Final = "snapshots.parquet"
ORACLE_PARQUET: Final = "truth/adoption.parquet"
MOMENTS_PARQUET: Final = "moments.parquet"
STATE_PARQUET: Final = "customer_months.parquet"


def _monthly_stats(month: PanelMonth) -> dict[str, float | str]:
    stats: dict[str, float | str] = {"fecha_dato": month.fecha_dato.isoformat()}
    stats |= {k: (int(v) if float(v).is_integer() else round(v, 3)) for k, v in month.stats.items()}
    base = month.stats["customers_at_start"]
    if "adders" in month.stats and base:
        stats["adder_rate"] = round(month.stats["adders"] / base, 5)
        stats["closure_rate"] = round(month.stats["closures"] / base, 5)
    return stats


def write_panel(
    customers: int,
    months: int,
    seed: int,
    out: Path,
    start: date = DEFAULT_START,
    arrival_rate: float = ARRIVAL_RATE,
    *,
    parquet: bool = False,
) -> PanelManifest:
    """Simulate the panel and stream it to ``out``, month by month; returns the manifest.

    Writes ``snapshots.csv`` (Santander ``train_ver2.csv`` layout), optionally
    ``snapshots.parquet``, ``truth/adoption.parquet`` (the oracle), ``moments.parquet``,
    ``customer_months.parquet`` and ``manifest.json``.
    """
    started = time.perf_counter()
    out = Path(out)
    (out / "truth").mkdir(parents=True, exist_ok=True)
    writers: dict[str, pq.ParquetWriter] = {}
    csv_writer: pa_csv.CSVWriter | None = None
    rows: dict[str, int] = {}
    monthly: list[dict[str, float | str]] = []

    def put(name: str, table: pa.Table) -> None:
        if name not in writers:
            # Dictionary pages on ids and probabilities only cost time: the oracle is 60M+ rows.
            dictionary: bool | list[str] = ["product_id", "fecha_dato"] if name == ORACLE_PARQUET else True
            writers[name] = pq.ParquetWriter(
                out / name, table.schema, compression="zstd", use_dictionary=dictionary
            )
        writers[name].write_table(table)
        rows[name] = rows.get(name, 0) + table.num_rows

    try:
        for month in iter_panel(customers, months, seed, start, arrival_rate):
            if csv_writer is None:
                options = pa_csv.WriteOptions(quoting_style="needed")
                csv_writer = pa_csv.CSVWriter(
                    out / SNAPSHOTS_CSV, month.snapshot.schema, write_options=options
                )
            csv_writer.write_table(month.snapshot)
            rows[SNAPSHOTS_CSV] = rows.get(SNAPSHOTS_CSV, 0) + month.snapshot.num_rows
            if parquet:
                put(SNAPSHOTS_PARQUET, month.snapshot)
            put(ORACLE_PARQUET, month.oracle)
            put(MOMENTS_PARQUET, month.moments)
            put(STATE_PARQUET, month.state)
            monthly.append(_monthly_stats(month))
    finally:
        if csv_writer is not None:
            csv_writer.close()
        for writer in writers.values():
            writer.close()
    manifest = PanelManifest(
        seed=seed,
        customers=customers,
        months=months,
        start=snapshot_dates(start, 1)[0],
        arrival_rate=arrival_rate,
        rows=rows,
        monthly=tuple(monthly),
        seconds=time.perf_counter() - started,
    )
    (out / "manifest.json").write_text(manifest.to_json() + "\n", encoding="utf-8")
    return manifest
