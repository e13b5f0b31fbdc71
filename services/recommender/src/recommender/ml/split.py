"""Offline splits: time-based (train before a cut-off, test on the next period's purchases) and
leave-last-out (each customer's last purchase is held out, training sees only what came before)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd


@dataclass(frozen=True)
class Split:
    """Training interactions and held-out purchases (customer_id, product_id, event_timestamp)."""

    name: str
    train: pd.DataFrame
    test: pd.DataFrame
    description: str


def time_split(interactions: pd.DataFrame, *, test_days: int = 30) -> Split:
    """Train on everything before ``max(ts) - test_days``; test on the purchases from then on.

    ``max(ts)`` is the newest interaction's; ``holding`` rows follow the same cut-off (a position
    opened at or after it is test-period behaviour and never reaches training).
    """
    logged = interactions["interaction_type"] != "holding"
    end = interactions.loc[logged, "event_timestamp"].max()
    cutoff = end - pd.Timedelta(days=test_days)
    before = interactions["event_timestamp"] < cutoff
    test = interactions[~before & (interactions["interaction_type"] == "purchase")]
    return Split(
        name="time",
        train=interactions[before],
        test=test[["customer_id", "product_id", "event_timestamp"]].drop_duplicates(
            ["customer_id", "product_id"]
        ),
        description=(
            f"train < {cutoff:%Y-%m-%d %H:%M} UTC; test = purchases in the following {test_days} days"
        ),
    )


def leave_last_out(interactions: pd.DataFrame) -> Split:
    """Hold out each customer's last purchase (customers with at least two purchases).

    Training keeps only the customer's interactions strictly before that purchase and none with the
    held-out product: in the synthetic bank every purchase is preceded by an impression and a click
    of the same product minutes earlier, which would otherwise give the answer away (ALS and BPR
    then "beat" the oracle). Other customers' rows are all kept.
    """
    purchases = interactions[interactions["interaction_type"] == "purchase"]
    counts = purchases.groupby("customer_id")["product_id"].transform("size")
    eligible = purchases[counts >= 2]
    last = (
        eligible.sort_values(["customer_id", "event_timestamp", "product_id"]).groupby("customer_id").tail(1)
    )
    held_at = last.set_index("customer_id")["event_timestamp"]
    at = interactions["customer_id"].map(held_at)
    held_product = interactions["customer_id"].map(last.set_index("customer_id")["product_id"])
    keep = at.isna() | ((interactions["event_timestamp"] < at) & (interactions["product_id"] != held_product))
    return Split(
        name="leave_last_out",
        train=interactions[keep],
        test=last[["customer_id", "product_id", "event_timestamp"]],
        description="each customer's last purchase held out (customers with ≥ 2 purchases)",
    )
