"""The generated bank's own holdings history as the ranker's panel (one synthetic world)."""

from __future__ import annotations

import argparse
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from qianmian_bankgen.dynamics import MOMENTS, PROVINCE_CODE
from recommender.ml.ranker.commands import _panel
from recommender.ml.ranker.panel import SnapshotPanel, bank_snapshot_dates, panel_from_bank

MONTHS = 6


@pytest.fixture(scope="module")
def bank_panel(bank_dir: Path) -> SnapshotPanel:
    return panel_from_bank(bank_dir, MONTHS)


def test_snapshot_dates_step_back_a_month_from_until() -> None:
    assert bank_snapshot_dates(date(2026, 3, 31), 3) == (
        date(2026, 1, 28),
        date(2026, 2, 28),
        date(2026, 3, 28),
    )
    assert bank_snapshot_dates(date(2026, 1, 15), 2) == (date(2025, 12, 15), date(2026, 1, 15))
    with pytest.raises(ValueError, match="at least 2"):
        bank_snapshot_dates(date(2026, 1, 15), 1)


def test_holdings_at_each_snapshot_are_those_opened_before_it(
    bank_dir: Path, bank_panel: SnapshotPanel
) -> None:
    holdings = pd.read_parquet(bank_dir / "holdings.parquet")
    customers = pd.read_parquet(bank_dir / "customers.parquet")
    assert bank_panel.dates[-1] == date(2025, 6, 28)  # the bank's as-of is 2025-06-30
    for t in range(bank_panel.months):
        stamp = bank_panel.timestamp(t)
        opened = holdings[holdings["opened_at"] < stamp]
        i = bank_panel.customers.indices(opened["customer_id"].tolist())
        j = bank_panel.products.indices(opened["product_id"].tolist())
        expected = np.zeros_like(bank_panel.held[t])
        expected[i[i >= 0], j[i >= 0]] = True
        assert (bank_panel.held[t] == expected).all(), f"snapshot {bank_panel.dates[t]}"
        present = customers["created_at"] < stamp
        assert bank_panel.present[t].sum() == present.sum()
        assert (i >= 0).sum() > 0.9 * len(i)  # only customers created since the last snapshot are out
    # The bank keeps no closures: additions only, and some in every month of this bank.
    assert all(not bank_panel.dropped(t).any() for t in range(1, bank_panel.months))
    assert all(bank_panel.added(t).sum() > 0 for t in range(1, bank_panel.months))


def test_no_holding_or_customer_from_after_a_snapshot(bank_dir: Path, bank_panel: SnapshotPanel) -> None:
    holdings = pd.read_parquet(bank_dir / "holdings.parquet")
    first = bank_panel.timestamp(0)
    late = holdings[holdings["opened_at"] >= first]
    assert len(late) > 0
    i = bank_panel.customers.indices(late["customer_id"].tolist())
    j = bank_panel.products.indices(late["product_id"].tolist())
    # A product a customer opened after the first snapshot (and did not hold already) is not held there.
    earlier = holdings[holdings["opened_at"] < first].groupby(["customer_id", "product_id"]).size()
    fresh = ~pd.MultiIndex.from_frame(late[["customer_id", "product_id"]]).isin(earlier.index) & (i >= 0)
    assert fresh.sum() > 0
    assert not bank_panel.held[0, i[fresh], j[fresh]].any()


def test_demographics_are_as_of_each_snapshot(bank_dir: Path, bank_panel: SnapshotPanel) -> None:
    customers = pd.read_parquet(bank_dir / "customers.parquet").set_index("customer_id")
    profile = bank_panel.profile
    first, last = profile[profile["t"] == 0], profile[profile["t"] == bank_panel.months - 1]
    for row in last.head(50).itertuples():
        cid = bank_panel.customers.ids[row.i]
        c = customers.loc[cid]
        day = bank_panel.dates[-1]
        birthday_ahead = (day.month, day.day) < (c["birth_month"], c["birth_day"])
        as_of_ahead = (c["birth_month"], c["birth_day"]) > (6, 30)
        birth_year = 2025 - c["age"] - int(as_of_ahead)
        assert row.age == day.year - birth_year - int(birthday_ahead)
        assert row.cod_prov == PROVINCE_CODE[c["region"]]
        assert row.sexo == ("V" if c["gender"] == "M" else "H")
        created = c["created_at"].date()
        months = (day.year - created.year) * 12 + day.month - created.month - (day.day < created.day)
        assert row.antiguedad == max(months, 0)
        assert row.ind_nuevo == (row.antiguedad < 6)
    # Tenure grows by the months between the snapshots for a customer present in both.
    both = first.merge(last, on="i", suffixes=("_0", "_1"))
    assert ((both["antiguedad_1"] - both["antiguedad_0"]) == MONTHS - 1).all()


def test_moments_are_the_banks_events_of_moment_types(bank_dir: Path, bank_panel: SnapshotPanel) -> None:
    events = pd.read_parquet(bank_dir / "events.parquet")
    wanted = events[events["event_type"].isin(MOMENTS)]
    assert bank_panel.moments is not None
    assert len(bank_panel.moments) == len(wanted) > 0
    assert set(bank_panel.moments["moment_type"]) <= set(MOMENTS)
    assert bank_panel.states is None  # nothing known only as of the bank's as-of
    assert not bank_panel.oracle


def test_the_ranker_commands_take_a_bank(bank_dir: Path) -> None:
    args = argparse.Namespace(
        santander=None, panel=None, bank=bank_dir, months=4, until=date(2025, 5, 31), seed=3
    )
    panel, facts = _panel(args, lambda _m: None)
    assert panel.dates == bank_snapshot_dates(date(2025, 5, 31), 4)
    assert "holdings history" in facts["data"]
    assert panel.timestamp(3) == pd.Timestamp(datetime(2025, 5, 28, tzinfo=UTC))


def test_a_snapshot_after_the_banks_as_of_is_refused(bank_dir: Path) -> None:
    with pytest.raises(ValueError, match="up to 2025-06-30"):
        panel_from_bank(bank_dir, 3, until=date(2025, 7, 31))
