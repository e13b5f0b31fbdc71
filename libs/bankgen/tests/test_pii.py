from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

PII_COLUMNS = {"name", "mobile", "id_number", "card_number"}
_ID_WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]


def _id_valid(number: str) -> bool:
    total = sum(int(d) * w for d, w in zip(number[:17], _ID_WEIGHTS, strict=True))
    return len(number) == 18 and "10X98765432"[total % 11] == number[17]


def _luhn_valid(number: str) -> bool:
    digits = [int(d) for d in reversed(number)]
    total = sum(digits[0::2]) + sum(d * 2 - 9 if d * 2 > 9 else d * 2 for d in digits[1::2])
    return total % 10 == 0


def test_pii_is_valid(bank_dir: Path) -> None:
    pii = pd.read_parquet(bank_dir / "customer_pii.parquet")
    customers = pd.read_parquet(bank_dir / "customers.parquet")
    assert pii["id_number"].map(_id_valid).all()
    assert pii["card_number"].map(_luhn_valid).all()
    assert pii["card_number"].str.len().between(16, 19).all()
    assert pii["mobile"].str.fullmatch(r"1[3-9]\d{9}").all()
    assert pii["name"].str.len().between(2, 3).all()
    merged = pii.merge(customers, on="customer_id")
    # The id number encodes birth date and gender, consistent with the customer record.
    birth = merged["id_number"].str[10:14].astype(int)
    assert (birth == merged["birth_month"] * 100 + merged["birth_day"]).all()
    male = merged["id_number"].str[16].astype(int) % 2 == 1
    assert (male == (merged["gender"] == "M")).all()


def test_pii_appears_in_no_other_file(bank_dir: Path) -> None:
    pii = pd.read_parquet(bank_dir / "customer_pii.parquet")
    secrets = set(pii["id_number"]) | set(pii["mobile"]) | set(pii["card_number"]) | set(pii["name"])
    for path in bank_dir.rglob("*.parquet"):
        if path.name == "customer_pii.parquet":
            continue
        table = pq.read_table(path)
        # products.parquet has a product "name", which is not personal data.
        allowed = {"name"} if path.name == "products.parquet" else set()
        assert not (PII_COLUMNS - allowed) & set(table.column_names), path
        for column in table.column_names:
            if pa.types.is_string(table.schema.field(column).type):
                assert not secrets & set(table.column(column).to_pylist()), (path, column)
