"""Every file has exactly the columns and types of docs/data-contract.md."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from qianmian_bankgen import Manifest
from qianmian_bankgen.catalogue import CATALOGUE, CHANNELS
from qianmian_rules import SEGMENTS

from .conftest import CUSTOMERS

S, INT, F, B = pa.string(), pa.int64(), pa.float64(), pa.bool_()
TS = pa.timestamp("us", tz="UTC")
SEG_BOOL = [(f"seg_{s}", B) for s in SEGMENTS]
SEG_INT = [(f"seg_{s}", INT) for s in SEGMENTS]
CONSENT_BOOL = [(f"consent_{c}", B) for c in CHANNELS]
CONSENT_INT = [(f"consent_{c}", INT) for c in CHANNELS]

EXPECTED: dict[str, list[tuple[str, pa.DataType]]] = {
    "products.parquet": [
        ("product_id", S),
        ("name", S),
        ("product_type", S),
        ("risk_rating", INT),
        ("channels", S),
        ("margin_rate", F),
        ("attributes", S),
        ("eligibility", S),
    ],
    "customers.parquet": [
        ("customer_id", S),
        ("age", INT),
        ("age_band", S),
        ("gender", S),
        ("city_tier", INT),
        ("region", S),
        ("segments", S),
        *SEG_BOOL,
        ("aum", F),
        ("deposits", F),
        ("loans", F),
        ("lifecycle_stage", S),
        ("tenure_months", INT),
        ("risk_level", INT),
        ("risk_assessed_at", TS),
        ("risk_expires_at", TS),
        *CONSENT_BOOL,
        ("personalised_opt_out", B),
        ("birth_month", INT),
        ("birth_day", INT),
        ("created_at", TS),
    ],
    "customer_pii.parquet": [
        ("customer_id", S),
        ("name", S),
        ("mobile", S),
        ("id_number", S),
        ("card_number", S),
    ],
    "holdings.parquet": [
        ("customer_id", S),
        ("product_id", S),
        ("product_type", S),
        ("opened_at", TS),
        ("amount", F),
    ],
    "events.parquet": [
        ("event_id", S),
        ("customer_id", S),
        ("event_type", S),
        ("event_timestamp", TS),
        ("amount", F),
    ],
    "interactions.parquet": [
        ("customer_id", S),
        ("product_id", S),
        ("interaction_type", S),
        ("channel", S),
        ("event_timestamp", TS),
    ],
    "features/customer_profile.parquet": [
        ("customer_id", S),
        ("event_timestamp", TS),
        ("created_timestamp", TS),
        ("age", INT),
        ("age_band", S),
        ("city_tier", INT),
        ("region", S),
        *SEG_INT,
        ("aum", F),
        ("deposits", F),
        ("loans", F),
        ("lifecycle_stage", S),
        ("tenure_months", INT),
        ("risk_level", INT),
        ("risk_expires_ts", INT),
        *CONSENT_INT,
        ("personalised_opt_out", INT),
    ],
    "features/customer_activity.parquet": [
        ("customer_id", S),
        ("event_timestamp", TS),
        ("created_timestamp", TS),
        ("impressions_7d", INT),
        ("impressions_30d", INT),
        ("clicks_7d", INT),
        ("clicks_30d", INT),
        ("purchases_30d", INT),
        ("moments_7d", INT),
        ("moments_30d", INT),
        ("logins_7d", INT),
        ("last_moment_type", S),
        ("last_moment_ts", INT),
    ],
    "features/product_stats.parquet": [
        ("product_id", S),
        ("event_timestamp", TS),
        ("created_timestamp", TS),
        ("popularity_30d", F),
        ("conversion_30d", F),
        *[(f"{kind}_{s}_30d", F) for s in SEGMENTS for kind in ("pop", "conv")],
    ],
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_columns_and_types(bank_dir: Path, name: str) -> None:
    schema = pq.read_schema(bank_dir / name)
    assert [(f.name, f.type) for f in schema] == EXPECTED[name]


def test_no_unexpected_nulls(bank_dir: Path) -> None:
    nullable = {("products.parquet", "risk_rating"), ("events.parquet", "amount")} | {
        ("customers.parquet", c) for c in ("risk_level", "risk_assessed_at", "risk_expires_at")
    }
    for name in EXPECTED:
        table = pq.read_table(bank_dir / name)
        for column in table.column_names:
            if (name, column) not in nullable:
                assert table.column(column).null_count == 0, (name, column)


def test_manifest_and_oracle(bank: tuple[Path, Manifest]) -> None:
    out, manifest = bank
    assert manifest.customers == CUSTOMERS
    assert (out / "manifest.json").exists()
    for name in EXPECTED:
        assert manifest.rows[name] == pq.read_metadata(out / name).num_rows
    truth = np.load(out / "truth" / "preferences.npz")
    assert truth["affinity"].dtype == np.float32
    assert truth["affinity"].shape == (CUSTOMERS, len(CATALOGUE))
    assert list(truth["product_ids"]) == [p.product_id for p in CATALOGUE]
    assert truth["customer_ids"][0] == "C000000001"
    assert ((truth["affinity"] >= 0) & (truth["affinity"] < 1)).all()


def test_customer_ids_are_pseudonymous(bank_dir: Path) -> None:
    ids = pq.read_table(bank_dir / "customers.parquet", columns=["customer_id"]).column(0).to_pylist()
    assert len(set(ids)) == CUSTOMERS
    assert all(len(i) == 10 and i[0] == "C" and i[1:].isdigit() for i in ids)
