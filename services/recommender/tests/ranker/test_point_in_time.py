"""Point-in-time correctness: a feature value stamped after an example's timestamp never reaches it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from recommender.ml.ranker.features import moments_source
from recommender.ml.ranker.panel import SnapshotPanel
from recommender.ml.ranker.rows import FeatureLayout, customer_block
from recommender.ml.ranker.training import (
    PanelFeatures,
    month_of_year,
    product_types,
    sample_customer_months,
    train_ranker,
)

from .conftest import CONFIG, SEED

SENTINEL = 987_654_321


def _poison(path: Path, shifts: list[pd.Timedelta]) -> None:
    """Append to a source a copy of every row stamped later by each shift, every value a sentinel."""
    frame = pd.read_parquet(path)
    later = []
    for shift in shifts:
        copy = frame.copy()
        copy["event_timestamp"] = copy["event_timestamp"] + shift
        for column in copy.columns:
            if column in ("customer_id", "product_id", "event_timestamp"):
                continue
            copy[column] = "FUTURE" if copy[column].dtype == object else SENTINEL
        later.append(copy)
    pd.concat([frame, *later], ignore_index=True).to_parquet(path, index=False)


@pytest.fixture(scope="module")
def poisoned(panel: SnapshotPanel, tmp_path_factory: pytest.TempPathFactory) -> PanelFeatures:
    """The panel's Feast repo whose every source also holds sentinel rows 1 s, 1 day and 20 days
    after each real row (so after every cut-off an example can be stamped with)."""
    features = PanelFeatures(panel, Path(tmp_path_factory.mktemp("poisoned")), log=lambda _m: None)
    shifts = [pd.Timedelta(seconds=1), pd.Timedelta(days=1), pd.Timedelta(days=20)]
    for path in features.paths.values():
        _poison(path, shifts)
    return features


def test_a_value_written_after_the_example_never_appears_in_it(poisoned: PanelFeatures) -> None:
    panel = poisoned.panel
    months = list(range(2, panel.months))
    rows, label_months, _ = sample_customer_months(panel, months, negative_rate=0.2, seed=SEED)
    frame = poisoned.customers(rows, label_months - 1)

    assert len(frame) == len(rows)
    values = frame.to_numpy(dtype=object)
    assert not (values == SENTINEL).any(), "a numeric value stamped after the cut-off leaked"
    assert not (values == "FUTURE").any(), "a text value stamped after the cut-off leaked"
    products = poisoned.products(sorted({int(t) - 1 for t in months}))
    assert not (products.to_numpy(dtype=object) == SENTINEL).any()

    # The values are those of the cut-off snapshot itself, not of the month being predicted:
    # holdings lag 1 = the cut-off, lag 2 = the snapshot before; the label month's snapshot never.
    expected = pd.read_parquet(poisoned.paths["ranker_holdings"])
    expected = expected[expected["adds_1m"] != SENTINEL].set_index(["customer_id", "event_timestamp"])
    request = poisoned.entity_df(rows, label_months - 1)
    keys = list(zip(request["customer_id"], request["event_timestamp"], strict=True))
    np.testing.assert_array_equal(
        frame["ranker_holdings__adds_3m"].to_numpy(dtype=np.int64),
        expected.loc[keys, "adds_3m"].to_numpy(dtype=np.int64),
    )
    layout = FeatureLayout.build(
        poisoned.specs, panel.products.ids, product_types(panel), frame, products, ()
    )
    block = customer_block(layout, frame, month_of_year(panel, label_months - 1))
    cutoffs = label_months - 1
    np.testing.assert_array_equal(block.lags[:, 0, :], panel.held[cutoffs, rows])
    previous = np.where((cutoffs >= 1)[:, None], panel.held[np.maximum(cutoffs - 1, 0), rows], False)
    np.testing.assert_array_equal(block.lags[:, 1, :], previous)
    # … and the month predicted differs from the cut-off for some customers (else this proves nothing).
    assert (panel.held[label_months, rows] != panel.held[cutoffs, rows]).any()


def test_training_examples_never_see_a_later_value(poisoned: PanelFeatures) -> None:
    panel = poisoned.panel
    trained = train_ranker(
        poisoned,
        months=[panel.months - 2, panel.months - 1],
        config=dataclasses.replace(CONFIG, num_boost_round=2),
        threads=1,
        seed=SEED,
        log=lambda _m: None,
    )
    matrix = trained.examples.matrix
    assert matrix.shape[0] > 0
    assert not np.isin(matrix, [np.float32(SENTINEL)]).any()
    # Every positive row is a product not held at the cut-off and held at the month's end.
    ex = trained.examples
    positive = ex.labels == 1
    assert positive.any()
    assert not panel.held[ex.month[positive] - 1, ex.customer[positive], ex.product[positive]].any()
    assert panel.held[ex.month[positive], ex.customer[positive], ex.product[positive]].all()


def test_a_moment_after_the_snapshot_counts_only_from_the_next_one(panel: SnapshotPanel) -> None:
    assert panel.moments is not None
    t = 3
    customer = int(np.flatnonzero(panel.present[t + 1])[0])
    kind = "large_inbound_transfer"
    at = panel.timestamp(t) + pd.Timedelta(seconds=1)
    extra = pd.DataFrame({"i": [customer], "moment_type": [kind], "at": [at]})
    moved = dataclasses.replace(panel, moments=pd.concat([panel.moments, extra], ignore_index=True))

    def counts(p: SnapshotPanel, snapshot: int) -> pd.Series:
        frame = moments_source(p)
        stamp = p.timestamp(snapshot)
        row = frame[(frame["customer_id"] == p.customers.ids[customer]) & (frame["event_timestamp"] == stamp)]
        return row.iloc[0]

    before, after = counts(panel, t), counts(moved, t)
    assert after[f"{kind}_1m"] == before[f"{kind}_1m"]
    assert after[f"{kind}_days"] == before[f"{kind}_days"] or (
        np.isnan(after[f"{kind}_days"]) and np.isnan(before[f"{kind}_days"])
    )
    later = counts(moved, t + 1)
    assert later[f"{kind}_1m"] == counts(panel, t + 1)[f"{kind}_1m"] + 1
