"""Vectorised eligibility and suitability: ``qianmian_rules`` semantics over whole customer arrays.

The generator needs "is customer *i* offered product *j*" for every pair of a 100,000 × 60 matrix;
calling the pydantic rule engine five million times would take minutes. These masks implement the
same conditions with numpy, and the test-suite checks them against ``qianmian_rules`` row by row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from qianmian_rules import LIFECYCLE_STAGES, SEGMENTS, EligibilityRules

from qianmian_bankgen.catalogue import CatalogueProduct

BoolArray = NDArray[np.bool_]


@dataclass(frozen=True)
class CustomerArrays:
    """Column-wise facts of many customers, aligned with ``qianmian_rules.CustomerFacts``.

    ``segments`` is ``[n × len(SEGMENTS)]``; ``lifecycle`` holds indices into ``LIFECYCLE_STAGES``;
    ``held`` is ``[n × len(products)]`` over the products passed to the evaluators;
    ``risk_level`` uses 0 for "never assessed"; ``risk_expires_us`` is epoch microseconds (UTC) and
    is ignored where ``risk_level`` is 0.
    """

    age: NDArray[np.int64]
    aum: NDArray[np.float64]
    region: NDArray[np.str_]
    segments: BoolArray
    lifecycle: NDArray[np.int64]
    held: BoolArray
    risk_level: NDArray[np.int64]
    risk_expires_us: NDArray[np.int64]


def _held_any(
    tokens: Sequence[str], customers: CustomerArrays, products: Sequence[CatalogueProduct]
) -> BoolArray:
    """Customers holding any product whose id or type is among ``tokens`` (the engine's any-of match)."""
    wanted = set(tokens)
    cols = [j for j, p in enumerate(products) if p.product_id in wanted or p.product_type in wanted]
    if not cols:
        return np.zeros(customers.age.shape[0], dtype=np.bool_)
    return np.asarray(customers.held[:, cols].any(axis=1), dtype=np.bool_)


def eligibility_mask(
    rules: EligibilityRules, customers: CustomerArrays, products: Sequence[CatalogueProduct]
) -> BoolArray:
    """True where ``qianmian_rules.check_eligibility(rules, facts)`` would return no failure."""
    ok = np.ones(customers.age.shape[0], dtype=np.bool_)
    if rules.min_aum is not None:
        ok &= customers.aum >= rules.min_aum
    if rules.max_aum is not None:
        ok &= customers.aum <= rules.max_aum
    if rules.min_age is not None:
        ok &= customers.age >= rules.min_age
    if rules.max_age is not None:
        ok &= customers.age <= rules.max_age
    if rules.segments:
        cols = [SEGMENTS.index(s) for s in rules.segments]
        ok &= customers.segments[:, cols].any(axis=1)
    if rules.regions:
        ok &= np.isin(customers.region, np.asarray(rules.regions))
    if rules.lifecycle_stages:
        ok &= np.isin(customers.lifecycle, [LIFECYCLE_STAGES.index(s) for s in rules.lifecycle_stages])
    if rules.required_holdings:
        ok &= _held_any(rules.required_holdings, customers, products)
    if rules.excluded_holdings:
        ok &= ~_held_any(rules.excluded_holdings, customers, products)
    return ok


def suitability_mask(risk_rating: int | None, customers: CustomerArrays, at_us: int) -> BoolArray:
    """True where ``qianmian_rules.check_suitability(risk_rating, facts, at)`` returns no failure."""
    n = customers.age.shape[0]
    if risk_rating is None:
        return np.ones(n, dtype=np.bool_)
    valid = (customers.risk_level > 0) & (customers.risk_expires_us > at_us)
    return np.asarray(valid & (customers.risk_level >= risk_rating), dtype=np.bool_)


def offerable_matrix(
    customers: CustomerArrays, products: Sequence[CatalogueProduct], at_us: int
) -> BoolArray:
    """``[n × products]``: eligible for and suitable to each product at ``at_us`` (epoch µs, UTC)."""
    out = np.empty((customers.age.shape[0], len(products)), dtype=np.bool_)
    for j, product in enumerate(products):
        out[:, j] = eligibility_mask(product.eligibility, customers, products) & suitability_mask(
            product.risk_rating, customers, at_us
        )
    return out


def customer_arrays_from_frames(
    customers: pd.DataFrame, holdings: pd.DataFrame, products: Sequence[CatalogueProduct]
) -> CustomerArrays:
    """Rebuild ``CustomerArrays`` from ``customers.parquet`` and ``holdings.parquet`` frames.

    Lets consumers of the generated files (and the tests) evaluate the catalogue's rules over the
    state at as-of exactly as the generator did.
    """
    n = len(customers)
    position = pd.Series(np.arange(n), index=customers["customer_id"].to_numpy())
    product_position = {p.product_id: j for j, p in enumerate(products)}
    held = np.zeros((n, len(products)), dtype=np.bool_)
    known = holdings["product_id"].isin(product_position.keys()) & holdings["customer_id"].isin(
        position.index
    )
    rows = position.loc[holdings.loc[known, "customer_id"].to_numpy()].to_numpy()
    cols = holdings.loc[known, "product_id"].map(product_position).to_numpy(dtype=np.int64)
    held[rows, cols] = True
    since_epoch = customers["risk_expires_at"] - pd.Timestamp(0, tz="UTC")
    expires_us = (since_epoch // pd.Timedelta(1, "us")).fillna(0).to_numpy(dtype=np.int64)
    return CustomerArrays(
        age=customers["age"].to_numpy(dtype=np.int64),
        aum=customers["aum"].to_numpy(dtype=np.float64),
        region=customers["region"].to_numpy(dtype=str),
        segments=np.column_stack([customers[f"seg_{s}"].to_numpy(dtype=np.bool_) for s in SEGMENTS]),
        lifecycle=customers["lifecycle_stage"].map(LIFECYCLE_STAGES.index).to_numpy(dtype=np.int64),
        held=held,
        risk_level=customers["risk_level"].fillna(0).to_numpy(dtype=np.int64),
        risk_expires_us=np.asarray(expires_us, dtype=np.int64),
    )
