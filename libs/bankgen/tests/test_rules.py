"""The vectorised evaluator must give exactly the rule engine's answer."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from qianmian_bankgen.catalogue import CATALOGUE
from qianmian_bankgen.rules import (
    customer_arrays_from_frames,
    eligibility_mask,
    suitability_mask,
)
from qianmian_rules import CustomerFacts, check_eligibility, check_suitability

from .conftest import AS_OF


def test_vectorised_rules_agree_with_qianmian_rules(bank_dir: Path) -> None:
    customers = pd.read_parquet(bank_dir / "customers.parquet").sample(500, random_state=1)
    holdings = pd.read_parquet(bank_dir / "holdings.parquet")
    holdings = holdings[holdings["customer_id"].isin(customers["customer_id"])]
    arrays = customer_arrays_from_frames(customers.reset_index(drop=True), holdings, CATALOGUE)
    at = datetime(AS_OF.year, AS_OF.month, AS_OF.day, tzinfo=UTC)
    at_us = int(at.timestamp()) * 1_000_000
    held = holdings.groupby("customer_id")
    held_ids = held["product_id"].agg(frozenset).to_dict()
    held_types = held["product_type"].agg(frozenset).to_dict()

    eligible = np.column_stack([eligibility_mask(p.eligibility, arrays, CATALOGUE) for p in CATALOGUE])
    suitable = np.column_stack([suitability_mask(p.risk_rating, arrays, at_us) for p in CATALOGUE])
    # Both outcomes must occur, or the comparison proves little.
    assert eligible.any()
    assert (~eligible).any()
    assert (~suitable).any()
    for i, row in enumerate(customers.itertuples(index=False)):
        facts = CustomerFacts(
            age=row.age,
            aum=row.aum,
            region=row.region,
            segments=frozenset(row.segments.split(",")) - {""},
            lifecycle_stage=row.lifecycle_stage,
            held_product_ids=held_ids.get(row.customer_id, frozenset()),
            held_product_types=held_types.get(row.customer_id, frozenset()),
            risk_level=None if pd.isna(row.risk_level) else int(row.risk_level),
            risk_expires_at=None if pd.isna(row.risk_expires_at) else row.risk_expires_at.to_pydatetime(),
        )
        for j, product in enumerate(CATALOGUE):
            assert eligible[i, j] == (not check_eligibility(product.eligibility, facts)), (row, product)
            assert suitable[i, j] == (not check_suitability(product.risk_rating, facts, at)), (row, product)
