"""Monthly adoption dynamics: Santander layout, determinism, and the planted signal a ranker should learn."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from numpy.typing import NDArray
from qianmian_bankgen import generate
from qianmian_bankgen.catalogue import CATALOGUE, by_id
from qianmian_bankgen.cli import main
from qianmian_bankgen.dynamics import (
    DEMOGRAPHIC_COLUMNS,
    MOMENTS,
    ORACLE_PARQUET,
    SNAPSHOTS_CSV,
    flag_column,
    product_of_flag,
    simulate_panel,
    snapshot_dates,
    write_panel,
)

CUSTOMERS = 4_000
MONTHS = 12
SEED = 7
START = date(2025, 10, 1)
FLAGS = [flag_column(p.product_id) for p in CATALOGUE]
PRODUCT = {p.product_id: j for j, p in enumerate(CATALOGUE)}


@dataclass(frozen=True)
class Dense:
    """The panel as arrays: ``held[t, i, j]`` (-1 = not a customer yet), oracle ``p[t, i, j]``."""

    dates: list[date]
    held: NDArray[np.int8]
    p_add: NDArray[np.float32]
    in_oracle: NDArray[np.bool_]
    risk: NDArray[np.int64]
    moments: pd.DataFrame

    def added(self, t: int) -> NDArray[np.bool_]:
        return np.asarray((self.held[t - 1] == 0) & (self.held[t] == 1), dtype=np.bool_)

    def closed(self, t: int) -> NDArray[np.bool_]:
        return np.asarray((self.held[t - 1] == 1) & (self.held[t] == 0), dtype=np.bool_)

    def present(self, t: int) -> NDArray[np.bool_]:
        return np.asarray(self.held[t, :, 0] >= 0, dtype=np.bool_)


@pytest.fixture(scope="module")
def panel_frames() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    panel = simulate_panel(CUSTOMERS, MONTHS, SEED, START)
    return (
        panel.snapshots.to_pandas(),
        panel.oracle.to_pandas(),
        panel.moments.to_pandas(),
        panel.state.to_pandas(),
    )


@pytest.fixture(scope="module")
def dense(panel_frames: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]) -> Dense:
    snapshots, oracle, moments, state = panel_frames
    dates = snapshot_dates(START, MONTHS)
    month = {d: t for t, d in enumerate(dates)}
    n = int(snapshots["ncodpers"].max())
    held = np.full((MONTHS, n, len(FLAGS)), -1, dtype=np.int8)
    t = snapshots["fecha_dato"].map(month).to_numpy()
    held[t, snapshots["ncodpers"].to_numpy() - 1] = snapshots[FLAGS].to_numpy(dtype=np.int8)
    p_add = np.zeros(held.shape, dtype=np.float32)
    in_oracle = np.zeros(held.shape, dtype=np.bool_)
    ot = oracle["fecha_dato"].map(month).to_numpy()
    oi = oracle["ncodpers"].to_numpy() - 1
    oj = oracle["product_id"].astype(str).map(PRODUCT).to_numpy()
    p_add[ot, oi, oj] = oracle["p_add"].to_numpy()
    in_oracle[ot, oi, oj] = True
    risk = np.zeros((MONTHS, n), dtype=np.int64)
    risk[state["fecha_dato"].map(month).to_numpy(), state["ncodpers"].to_numpy() - 1] = state["risk_level"]
    moments = moments.assign(t=moments["fecha_dato"].map(month), i=moments["ncodpers"] - 1)
    return Dense(dates, held, p_add, in_oracle, risk, moments)


def _rows_any(values: NDArray[np.bool_]) -> NDArray[np.bool_]:
    return np.asarray(values.any(axis=1), dtype=np.bool_)


def _of_type(*kinds: str) -> list[int]:
    return [j for j, p in enumerate(CATALOGUE) if p.product_type in kinds]


# ---- determinism -----------------------------------------------------------------------------


def test_same_seed_same_panel_and_prefix_stable() -> None:
    a = simulate_panel(600, 5, SEED, START)
    b = simulate_panel(600, 5, SEED, START)
    assert a.snapshots.equals(b.snapshots)
    assert a.oracle.equals(b.oracle)
    assert a.moments.equals(b.moments)
    # Month t draws from its own stream: a shorter run is the start of a longer one.
    short = simulate_panel(600, 3, SEED, START)
    assert short.snapshots.equals(a.snapshots.slice(0, short.snapshots.num_rows))
    assert short.oracle.equals(a.oracle.slice(0, short.oracle.num_rows))
    other = simulate_panel(600, 5, SEED + 1, START)
    assert not other.snapshots.equals(a.snapshots)


def test_written_files_are_identical_for_a_seed(tmp_path: Path) -> None:
    def digests(out: Path) -> dict[str, str]:
        return {
            p.relative_to(out).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(out.rglob("*"))
            if p.is_file() and p.name != "manifest.json"
        }

    write_panel(300, 3, SEED, tmp_path / "a", START, parquet=True)
    write_panel(300, 3, SEED, tmp_path / "b", START, parquet=True)
    assert digests(tmp_path / "a") == digests(tmp_path / "b")
    assert set(digests(tmp_path / "a")) == {
        "snapshots.csv",
        "snapshots.parquet",
        "truth/adoption.parquet",
        "moments.parquet",
        "customer_months.parquet",
    }


def test_first_snapshot_is_the_generators_bank(tmp_path: Path) -> None:
    """Customer ncodpers k is C{k:09d} of generate() at the first snapshot, with the same holdings."""
    first = snapshot_dates(START, 1)[0]
    generate(500, SEED, first, tmp_path)
    customers = pd.read_parquet(tmp_path / "customers.parquet")
    holdings = pd.read_parquet(tmp_path / "holdings.parquet")
    snapshot = simulate_panel(500, 1, SEED, START).snapshots.to_pandas()
    assert snapshot["ncodpers"].tolist() == [int(c[1:]) for c in customers["customer_id"]]
    assert snapshot["age"].tolist() == customers["age"].tolist()
    # The bank's holdings include the purchases of its history window; the panel starts before them.
    opened = holdings["opened_at"] < pd.Timestamp(first).tz_localize("UTC") - pd.Timedelta(days=180)
    old = holdings[opened]
    rows = old["customer_id"].str[1:].astype(int).to_numpy() - 1
    cols = old["product_id"].map(flag_column)
    assert all(snapshot.at[r, c] == 1 for r, c in zip(rows, cols, strict=True))


# ---- layout ----------------------------------------------------------------------------------


def test_santander_layout(tmp_path: Path) -> None:
    manifest = write_panel(400, 4, SEED, tmp_path, START)
    header = (tmp_path / SNAPSHOTS_CSV).read_text(encoding="utf-8").splitlines()[0]
    assert [c.strip('"') for c in header.split(",")] == [*DEMOGRAPHIC_COLUMNS, *FLAGS]
    frame = pd.read_csv(tmp_path / SNAPSHOTS_CSV, skipinitialspace=True, low_memory=False)
    assert len(frame) == manifest.rows[SNAPSHOTS_CSV]
    assert frame["fecha_dato"].map(lambda d: bool(re.fullmatch(r"\d{4}-\d{2}-28", d))).all()
    assert sorted(frame["fecha_dato"].unique()) == [d.isoformat() for d in snapshot_dates(START, 4)]
    assert not frame.duplicated(["ncodpers", "fecha_dato"]).any()
    # Once a customer, always in the file: one row in every month from the first one on.
    first = frame.groupby("ncodpers")["fecha_dato"].min()
    rows = frame.groupby("ncodpers").size()
    months_since = first.map({d.isoformat(): 4 - k for k, d in enumerate(snapshot_dates(START, 4))})
    assert (rows == months_since).all()
    flags = frame[FLAGS].to_numpy()
    assert set(np.unique(flags)) <= {0, 1}
    assert frame["ncodpers"].dtype == np.int64
    assert set(frame["sexo"]) <= {"H", "V"}
    assert set(frame["segmento"]) <= {"01 - TOP", "02 - PARTICULARES", "03 - UNIVERSITARIO"}
    assert frame["age"].between(18, 120).all()
    assert set(frame["ind_actividad_cliente"]) <= {0, 1}
    assert frame["renta"].isna().mean() < 0.3
    assert pd.to_datetime(frame["fecha_alta"]).le(pd.to_datetime(frame["fecha_dato"])).all()
    assert all(product_of_flag(f) in by_id() for f in FLAGS)
    assert json.loads((tmp_path / "manifest.json").read_text())["flags"][FLAGS[0]] == CATALOGUE[0].product_id


def test_santander_loader_parses_the_output(tmp_path: Path) -> None:
    # Read-only use of the recommender's loader: the snapshots must be a valid Santander file.
    from recommender.ml.loaders.santander import load_santander

    write_panel(400, 4, SEED, tmp_path, START)
    bank = load_santander(tmp_path / SNAPSHOTS_CSV)
    frame = pd.read_csv(tmp_path / SNAPSHOTS_CSV)
    assert bank.meta["snapshots"] == 4
    assert list(bank.products["product_id"]) == FLAGS
    assert len(bank.customers) == frame["ncodpers"].nunique()
    frame = frame.sort_values(["ncodpers", "fecha_dato"])
    held = frame[FLAGS].to_numpy()
    same = frame["ncodpers"].eq(frame["ncodpers"].shift()).to_numpy()
    additions = int(((held == 1) & (np.roll(held, 1, axis=0) == 0) & same[:, None]).sum())
    purchases = bank.interactions[bank.interactions["interaction_type"] == "purchase"]
    assert len(purchases) == additions > 0


# ---- realism and the planted signal ----------------------------------------------------------


def test_a_few_percent_of_customers_add_a_product_each_month(dense: Dense) -> None:
    for t in range(1, MONTHS):
        present = dense.present(t - 1)
        rate = dense.added(t)[present].any(axis=1).mean()
        assert 0.01 < rate < 0.10, (dense.dates[t], rate)


def test_oracle_covers_exactly_the_products_not_held_and_matches_additions(dense: Dense) -> None:
    assert not dense.in_oracle[0].any()
    expected = 0.0
    realised = 0
    for t in range(1, MONTHS):
        not_held = (dense.held[t - 1] == 0) & dense.present(t - 1)[:, None]
        assert np.array_equal(dense.in_oracle[t], not_held)
        added = dense.added(t)
        assert (dense.p_add[t][added] > 0).all()  # nothing is added that the oracle rules out
        expected += float(dense.p_add[t].sum(dtype=np.float64))
        realised += int(added.sum())
    assert ((dense.p_add >= 0) & (dense.p_add <= 1)).all()
    assert abs(realised - expected) < 4 * np.sqrt(expected) + 0.02 * expected


def test_payroll_customers_add_a_credit_card_far_more_often(dense: Dense) -> None:
    cards, pay = _of_type("credit_card"), PRODUCT["PAY-CARD-01"]
    with_pay = without_pay = 0
    adds_with = adds_without = 0
    for t in range(1, MONTHS):
        no_card = dense.present(t - 1) & (dense.held[t - 1][:, cards] == 0).all(axis=1)
        adds = dense.added(t)[:, cards].any(axis=1)
        payroll = dense.held[t - 1][:, pay] == 1
        with_pay += int((no_card & payroll).sum())
        without_pay += int((no_card & ~payroll).sum())
        adds_with += int((adds & no_card & payroll).sum())
        adds_without += int((adds & no_card & ~payroll).sum())
    assert adds_with > 50
    assert adds_with / with_pay > 4 * adds_without / without_pay


def test_wealth_ladder_climbs_one_risk_rung_at_a_time(dense: Dense) -> None:
    invest = [
        j
        for j, p in enumerate(CATALOGUE)
        if p.product_type in ("structured_deposit", "wealth_management", "fund") and p.risk_rating
    ]
    rating = np.array([CATALOGUE[j].risk_rating or 0 for j in invest])
    next_rung = jump = 0.0
    next_n = jump_n = 0
    for t in range(1, MONTHS):
        held = dense.held[t - 1][:, invest] == 1
        rung = (held * rating).max(axis=1)
        p = dense.p_add[t][:, invest]
        risk = dense.risk[t - 1]
        # Among customers whose assessment allows both, the next rung beats a two-rung jump.
        for r in (1, 2):
            sel = (rung == r) & (risk >= r + 2)
            next_rung += float(p[sel][:, rating == r + 1].sum())
            next_n += int(sel.sum()) * int((rating == r + 1).sum())
            jump += float(p[sel][:, rating == r + 2].sum())
            jump_n += int(sel.sum()) * int((rating == r + 2).sum())
    assert next_n > 0
    assert jump_n > 0
    assert next_rung / next_n > 3 * jump / jump_n


def test_deposit_holders_move_into_low_risk_wealth(dense: Dense) -> None:
    deposits, low = _of_type("deposit"), [j for j, p in enumerate(CATALOGUE) if p.risk_rating in (1, 2)]
    rate: dict[bool, list[float]] = {True: [], False: []}
    for t in range(1, MONTHS):
        present = dense.present(t - 1) & (dense.risk[t - 1] >= 2)
        has_deposit = (dense.held[t - 1][:, deposits] == 1).any(axis=1)
        adds = _rows_any(dense.added(t)[:, low])
        for flag in (True, False):
            rate[flag].append(float(adds[present & (has_deposit == flag)].mean()))
    assert np.mean(rate[True]) > 2 * np.mean(rate[False])


def test_additions_respect_suitability_and_eligibility(dense: Dense) -> None:
    rating = np.array([p.risk_rating or 0 for p in CATALOGUE])
    bill, cards = PRODUCT["CL-BILL-01"], _of_type("credit_card")
    for t in range(1, MONTHS):
        added = dense.added(t)
        i, j = np.nonzero(added & (rating > 0)[None, :])
        assert (rating[j] <= dense.risk[t - 1][i]).all()
        # A bill instalment needs a card; a second card is never added.
        assert (dense.held[t - 1][added[:, bill]][:, cards] == 1).any(axis=1).all()
        assert (dense.held[t][:, cards] == 1).sum(axis=1).max() <= 1
        assert not added[:, [PRODUCT["MS-LOAN-01"], PRODUCT["PAY-CARD-01"]]].any()


def test_a_maturity_raises_adoption_of_savings_the_month_after(dense: Dense) -> None:
    savings = _of_type("deposit", "structured_deposit", "wealth_management")
    deposits = _of_type("deposit")
    m = dense.moments
    after: list[float] = []
    without: list[float] = []
    p_after: list[float] = []
    p_without: list[float] = []
    for t in range(2, MONTHS):
        matured = np.zeros(dense.held.shape[1], dtype=np.bool_)
        matured[m.loc[(m["t"] == t - 1) & (m["moment_type"] == "deposit_maturing"), "i"]] = True
        holders = dense.present(t - 1) & (dense.held[t - 1][:, deposits] == 1).any(axis=1)
        adds = _rows_any(dense.added(t)[:, savings])
        p = dense.p_add[t][:, savings].sum(axis=1)
        after.append(float(adds[holders & matured].mean()))
        without.append(float(adds[holders & ~matured].mean()))
        p_after.append(float(p[holders & matured].mean()))
        p_without.append(float(p[holders & ~matured].mean()))
    assert np.mean(p_after) > 1.8 * np.mean(p_without)
    assert np.mean(after) > 1.5 * np.mean(without)


def test_an_aum_drop_lowers_adoption_and_raises_closures(dense: Dense) -> None:
    m = dense.moments
    p_drop: list[float] = []
    p_other: list[float] = []
    closed_drop: list[float] = []
    closed_other: list[float] = []
    invest = _of_type("deposit", "structured_deposit", "wealth_management", "fund")
    for t in range(2, MONTHS):
        dropped = np.zeros(dense.held.shape[1], dtype=np.bool_)
        dropped[m.loc[(m["t"] == t - 1) & (m["moment_type"] == "aum_drop"), "i"]] = True
        present = dense.present(t - 1)
        p = dense.p_add[t][:, invest].sum(axis=1)
        p_drop.append(float(p[present & dropped].mean()))
        p_other.append(float(p[present & ~dropped].mean()))
        holding = dense.held[t - 1][:, invest] == 1
        closed = dense.closed(t)[:, invest]
        closed_drop.append(closed[dropped].sum() / max(holding[dropped].sum(), 1))
        closed_other.append(closed[~dropped].sum() / max(holding[~dropped].sum(), 1))
    assert np.mean(p_drop) < 0.7 * np.mean(p_other)
    assert np.mean(closed_drop) > 1.3 * np.mean(closed_other)


def test_insurance_sells_in_the_first_quarter(dense: Dense) -> None:
    insurance = _of_type("insurance")
    q1_p, rest_p, q1_rate, rest_rate = [], [], [], []
    for t in range(1, MONTHS):
        present = dense.present(t - 1)
        p = float(dense.p_add[t][present][:, insurance].sum(axis=1).mean())
        rate = float(dense.added(t)[present][:, insurance].any(axis=1).mean())
        if dense.dates[t].month in (1, 2, 3):
            q1_p.append(p)
            q1_rate.append(rate)
        else:
            rest_p.append(p)
            rest_rate.append(rate)
    assert np.mean(q1_p) > 1.8 * np.mean(rest_p)
    assert np.mean(q1_rate) > 1.4 * np.mean(rest_rate)


def test_consumer_loans_peak_before_chinese_new_year(dense: Dense) -> None:
    loans = _of_type("consumer_loan")
    by_month = {
        d: float(dense.p_add[t][dense.present(t - 1)][:, loans].sum(axis=1).mean())
        for t, d in enumerate(dense.dates)
        if t > 0
    }
    # Chinese New Year 2026 is on 17 February: the month to 2026-02-28 holds the run-up.
    assert by_month[date(2026, 2, 28)] > 1.5 * by_month[date(2026, 4, 28)]
    assert by_month[date(2025, 11, 28)] > 1.5 * by_month[date(2026, 4, 28)]  # Double 11


def test_positions_close_as_well_as_open(dense: Dense) -> None:
    closures = sum(int(dense.closed(t).sum()) for t in range(1, MONTHS))
    additions = sum(int(dense.added(t).sum()) for t in range(1, MONTHS))
    assert closures > 0
    assert 0.5 < closures / additions < 2.0
    # Maturing time deposits that are not rolled over close at their maturity.
    m = dense.moments
    matured = m[(m["moment_type"] == "deposit_maturing") & (m["t"] >= 1)]
    assert len(matured) > 100


def test_new_customers_arrive_every_month(
    panel_frames: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame],
) -> None:
    snapshots = panel_frames[0]
    first = snapshots.groupby("ncodpers")["fecha_dato"].min()
    dates = snapshot_dates(START, MONTHS)
    arrivals = first[first.index > CUSTOMERS]
    assert (first[first.index <= CUSTOMERS] == dates[0]).all()
    per_month = arrivals.value_counts()
    assert set(per_month.index) == set(dates[1:])
    assert per_month.between(0.004 * CUSTOMERS, 0.02 * CUSTOMERS).all()
    # New ids follow the old ones in order of arrival.
    assert arrivals.is_monotonic_increasing
    rows = snapshots.set_index(["ncodpers", "fecha_dato"])
    joined = rows.loc[list(zip(arrivals.index, arrivals, strict=True))]
    assert (joined["ind_nuevo"] == 1).all()
    assert (joined["antiguedad"] == 0).all()


def test_moments_table(panel_frames: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]) -> None:
    snapshots, _, moments, _ = panel_frames
    assert set(moments["moment_type"]) == set(MOMENTS)
    assert list(moments.columns) == ["ncodpers", "fecha_dato", "moment_type", "at", "amount"]
    # Every moment lies in the month that ends at its fecha_dato.
    at = moments["at"].dt.tz_convert(None)
    end = pd.to_datetime(moments["fecha_dato"])
    assert ((at <= end) & (at > end - pd.DateOffset(months=1))).all()
    known = set(zip(snapshots["ncodpers"], snapshots["fecha_dato"], strict=True))
    assert all(key in known for key in zip(moments["ncodpers"], moments["fecha_dato"], strict=True))
    salary = moments[moments["moment_type"] == "salary_credited"]
    assert salary["amount"].gt(0).all()


# ---- CLI -------------------------------------------------------------------------------------


def test_cli_snapshots(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "panel"
    args = ["snapshots", "--customers", "300", "--months", "3", "--seed", "3", "--start", "2025-12"]
    assert main([*args, "--out", str(out), "--parquet"]) == 0
    assert "customers adding a product per month" in capsys.readouterr().out
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["months"] == 3
    assert manifest["start"] == "2025-12-28"
    assert (out / "snapshots.parquet").exists()
    oracle = pd.read_parquet(out / ORACLE_PARQUET)
    assert list(oracle.columns) == ["ncodpers", "fecha_dato", "product_id", "p_add"]
    assert len(oracle) == manifest["rows"][ORACLE_PARQUET]
    assert main(["snapshots", "--months", "0", "--out", str(out)]) == 2
    assert main(["snapshots", "--customers", "0", "--out", str(out)]) == 2
