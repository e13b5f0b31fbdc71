"""UCI Bank Marketing (``bank-additional-full.csv``, semicolon separated), one row per contact.

Each row is a telemarketing contact offering a term deposit: an ``impression`` of product
``TERM-DEPOSIT``; ``y = yes`` is a conversion (a ``purchase``). ``housing``/``loan = yes`` become
holdings of ``HOUSING-LOAN``/``PERSONAL-LOAN``. The file has no customer id and no year, so each
row is its own customer (``U`` + row number) and timestamps follow the file's row order (it is
sorted by time, May 2008 to November 2010), one minute apart. Customer features: age band, job,
marital status, education, credit default, contact channel.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from recommender.ml.data import Bank

_AGE_EDGES = (26, 36, 46, 56, 66)
_AGE_BANDS = ("18-25", "26-35", "36-45", "46-55", "56-65", "66+")
PRODUCTS = ("TERM-DEPOSIT", "HOUSING-LOAN", "PERSONAL-LOAN")


def load_uci_bank(path: Path, *, nrows: int | None = None) -> Bank:
    """Read ``bank-additional-full.csv`` (or ``bank-full.csv``) into a :class:`Bank`."""
    frame = pd.read_csv(path, sep=";", nrows=nrows)
    if "y" not in frame.columns or "age" not in frame.columns:
        raise ValueError(f"{path}: not a UCI Bank Marketing file (needs ';'-separated age … y)")
    n = len(frame)
    ids = np.asarray([f"U{i:08d}" for i in range(n)], dtype=object)
    start = pd.Timestamp("2008-05-01", tz="UTC")
    ts = start + pd.to_timedelta(np.arange(n), unit="min")
    parts = [
        pd.DataFrame(
            {
                "customer_id": ids,
                "product_id": "TERM-DEPOSIT",
                "interaction_type": "impression",
                "event_timestamp": ts,
            }
        )
    ]
    bought = frame["y"].astype(str).str.lower().eq("yes").to_numpy()
    parts.append(
        pd.DataFrame(
            {
                "customer_id": ids[bought],
                "product_id": "TERM-DEPOSIT",
                "interaction_type": "purchase",
                "event_timestamp": ts[bought] + pd.Timedelta(seconds=1),
            }
        )
    )
    for column, product in (("housing", "HOUSING-LOAN"), ("loan", "PERSONAL-LOAN")):
        if column in frame:
            held = frame[column].astype(str).str.lower().eq("yes").to_numpy()
            parts.append(
                pd.DataFrame(
                    {
                        "customer_id": ids[held],
                        "product_id": product,
                        "interaction_type": "holding",
                        "event_timestamp": ts[held],
                    }
                )
            )
    interactions = (
        pd.concat(parts, ignore_index=True)
        .sort_values(["event_timestamp", "interaction_type"])
        .reset_index(drop=True)
    )
    age = pd.to_numeric(frame["age"], errors="coerce").fillna(0).to_numpy()
    tokens = [f"age_band={b}" for b in np.asarray(_AGE_BANDS, dtype=object)[np.digitize(age, _AGE_EDGES)]]
    for column in ("job", "marital", "education", "default", "contact"):
        if column in frame:
            values = frame[column].astype(str).to_numpy()
            tokens = [f"{t},{column}={v}" for t, v in zip(tokens, values, strict=True)]
    customers = pd.DataFrame({"customer_id": ids, "feature_tokens": tokens})
    products = pd.DataFrame(
        {"product_id": list(PRODUCTS), "product_type": ["deposit", "mortgage_service", "consumer_loan"]}
    )
    return Bank(
        name=f"UCI Bank Marketing {Path(path).name}",
        interactions=interactions,
        customers=customers,
        products=products,
        meta={"contacts": n, "conversions": int(bought.sum())},
    )
