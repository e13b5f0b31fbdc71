"""Helpers for tests that check the feature store against its sources.

Training/serving skew shows up as an online value that differs from the point-in-time
offline value; these functions state "the same value" and "the point-in-time row" once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd


@dataclass(frozen=True)
class BankData:
    """A generated bank: its output directory and the time its features are read at."""

    out: Path
    as_of: datetime

    @property
    def features(self) -> Path:
        """The directory of the feature snapshot parquet files."""
        return self.out / "features"


def is_missing(value: Any) -> bool:
    """None, NaN or pandas' NA: how each store spells "no value"."""
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def same_value(online: Any, offline: Any) -> bool:
    """Equal as feature values: both missing, equal numbers (int 3 == float 3.0), or equal.

    The offline store widens an integer column with gaps to float; the online store
    keeps the declared type, so numbers are compared by value.
    """
    if is_missing(online) or is_missing(offline):
        return is_missing(online) and is_missing(offline)
    if isinstance(online, int | float) and not isinstance(online, bool):
        return math.isclose(float(online), float(offline), rel_tol=1e-12, abs_tol=1e-12)
    return bool(online == offline)


def latest_rows(frame: pd.DataFrame, key: str, at: datetime, ttl: pd.Timedelta) -> pd.DataFrame:
    """The point-in-time answer computed by hand: per entity, the newest row in [at-ttl, at].

    Ties on event time go to the newer ``created_timestamp``, as in Feast.
    """
    stamps = frame["event_timestamp"]
    window = frame[(stamps <= at) & (stamps >= at - ttl)]
    ordered = window.sort_values(["event_timestamp", "created_timestamp"])
    return ordered.groupby(key).tail(1).set_index(key)
