"""Santander Product Recommendation (Kaggle) format: one row per customer per month.

Columns used: ``fecha_dato`` (snapshot date), ``ncodpers`` (customer code), the product flags
``ind_*_ult1`` (1 = holds the product that month) and, where present, ``age``, ``sexo``,
``segmento``, ``renta``, ``ind_actividad_cliente`` as customer features. A flag going from 0 (or
absent) to 1 between consecutive snapshots of a customer is a *purchase* at the later date;
products already held in a customer's first snapshot are recorded as ``holding`` rows (weight 0,
so they count as seen, never as a purchase).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Final

import numpy as np
import pandas as pd

from recommender.ml.data import Bank

_AGE_EDGES = (26, 36, 46, 56, 66)
_AGE_BANDS = ("18-25", "26-35", "36-45", "46-55", "56-65", "66+")
#: The columns every Santander snapshot file has besides its product flags.
SANTANDER_KEYS: Final = ("fecha_dato", "ncodpers")


def santander_flags(columns: Iterable[object]) -> list[str]:
    """The product flag columns (``ind_*_ult1``) of a Santander-layout file, in file order."""
    return [c for c in map(str, columns) if c.startswith("ind_") and c.endswith("_ult1")]


def load_santander(path: Path, *, nrows: int | None = None) -> Bank:
    """Read a Santander-style CSV (comma separated, as published) into a :class:`Bank`."""
    frame = pd.read_csv(path, nrows=nrows, low_memory=False, skipinitialspace=True)
    missing = set(SANTANDER_KEYS) - set(frame.columns)
    flags = santander_flags(frame.columns)
    if missing or not flags:
        raise ValueError(f"{path}: not a Santander snapshot file (needs fecha_dato, ncodpers, ind_*_ult1)")
    frame["fecha_dato"] = pd.to_datetime(frame["fecha_dato"], utc=True)
    frame["customer_id"] = "S" + frame["ncodpers"].astype(np.int64).astype(str)
    frame = frame.sort_values(["customer_id", "fecha_dato"], kind="stable").reset_index(drop=True)
    held = frame[flags].fillna(0).to_numpy(dtype=np.int8) > 0
    same = frame["customer_id"].eq(frame["customer_id"].shift()).to_numpy()
    previous = np.vstack([np.zeros((1, len(flags)), dtype=bool), held[:-1]])
    previous[~same] = False
    added = held & ~previous & same[:, None]
    initial = held & ~same[:, None]
    rows: list[pd.DataFrame] = []
    for kind, mask in (("purchase", added), ("holding", initial)):
        r, c = np.nonzero(mask)
        rows.append(
            pd.DataFrame(
                {
                    "customer_id": frame["customer_id"].to_numpy()[r],
                    "product_id": np.asarray(flags, dtype=object)[c],
                    "interaction_type": kind,
                    "event_timestamp": frame["fecha_dato"].to_numpy()[r],
                }
            )
        )
    interactions = pd.concat(rows, ignore_index=True)
    interactions["event_timestamp"] = pd.to_datetime(interactions["event_timestamp"], utc=True)
    interactions = interactions.sort_values(["event_timestamp", "customer_id", "product_id"]).reset_index(
        drop=True
    )

    last = frame.groupby("customer_id", sort=True).tail(1)
    tokens = pd.Series([""] * len(last), index=last.index)
    if "age" in last:
        age = pd.to_numeric(last["age"], errors="coerce").fillna(0).to_numpy()
        bands = np.asarray(_AGE_BANDS, dtype=object)[np.digitize(age, _AGE_EDGES)]
        tokens = tokens + "," + pd.Series([f"age_band={b}" for b in bands], index=last.index)
    for column, name in (("sexo", "gender"), ("segmento", "segment"), ("ind_actividad_cliente", "active")):
        if column in last:
            tokens = (
                tokens + "," + last[column].fillna("unknown").astype(str).map(lambda v, n=name: f"{n}={v}")
            )
    if "renta" in last:
        income = pd.to_numeric(last["renta"], errors="coerce")
        band = (
            pd.qcut(income.rank(method="first"), 5, labels=False) if income.notna().sum() >= 5 else income * 0
        )
        tokens = tokens + "," + band.fillna(-1).astype(int).map(lambda b: f"income_band={b}")
    customers = pd.DataFrame(
        {"customer_id": last["customer_id"].to_numpy(), "feature_tokens": tokens.str.strip(",").to_numpy()}
    )
    products = pd.DataFrame(
        {"product_id": flags, "product_type": [f.removeprefix("ind_").removesuffix("_ult1") for f in flags]}
    )
    return Bank(
        name=f"Santander snapshots {Path(path).name}",
        interactions=interactions,
        customers=customers,
        products=products,
        meta={"snapshots": int(frame["fecha_dato"].nunique())},
    )
