"""Behaviour of the generated bank: determinism, integrity, law, realism and the planted signal."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from qianmian_bankgen import generate
from qianmian_bankgen.catalogue import CATALOGUE, CHANNELS, by_id
from qianmian_bankgen.cli import main
from qianmian_rules import LIFECYCLE_STAGES

from .conftest import AS_OF, CUSTOMERS, SEED

AS_OF_TS = pd.Timestamp(datetime(AS_OF.year, AS_OF.month, AS_OF.day, tzinfo=UTC))
WINDOW_START = AS_OF_TS - pd.Timedelta(days=180)
RATING = {p.product_id: p.risk_rating or 0 for p in CATALOGUE}


def _digests(out: Path) -> dict[str, str]:
    return {
        p.relative_to(out).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in out.rglob("*.parquet")
    }


def _read(bank_dir: Path, name: str) -> pd.DataFrame:
    return pd.read_parquet(bank_dir / name)


def test_same_arguments_give_identical_files(bank_dir: Path, tmp_path: Path) -> None:
    generate(CUSTOMERS, SEED, AS_OF, tmp_path / "again")
    assert _digests(tmp_path / "again") == _digests(bank_dir)
    again = np.load(tmp_path / "again" / "truth" / "preferences.npz")["affinity"]
    assert np.array_equal(again, np.load(bank_dir / "truth" / "preferences.npz")["affinity"])


def test_different_seed_gives_different_bank(bank_dir: Path, tmp_path: Path) -> None:
    generate(CUSTOMERS, SEED + 1, AS_OF, tmp_path / "other")
    ours, theirs = _read(bank_dir, "customers.parquet"), _read(tmp_path / "other", "customers.parquet")
    assert not ours["aum"].equals(theirs["aum"])
    assert (
        _read(bank_dir, "interactions.parquet").shape
        != _read(tmp_path / "other", "interactions.parquet").shape
    )


def test_referential_integrity(bank_dir: Path) -> None:
    customer_ids = set(_read(bank_dir, "customers.parquet")["customer_id"])
    product_ids = set(_read(bank_dir, "products.parquet")["product_id"])
    assert product_ids == set(by_id())
    for name in ("holdings.parquet", "interactions.parquet", "events.parquet", "customer_pii.parquet"):
        frame = _read(bank_dir, name)
        assert set(frame["customer_id"]) <= customer_ids, name
        if "product_id" in frame:
            assert set(frame["product_id"]) <= product_ids, name
    holdings = _read(bank_dir, "holdings.parquet")
    assert not holdings.duplicated(["customer_id", "product_id"]).any()
    types = holdings["product_id"].map(lambda p: by_id()[p].product_type)
    assert (types == holdings["product_type"]).all()
    events = _read(bank_dir, "events.parquet")
    assert events["event_id"].is_unique


def test_everything_happens_after_the_customer_exists(bank_dir: Path) -> None:
    created = _read(bank_dir, "customers.parquet").set_index("customer_id")["created_at"]
    for name, column in (("events.parquet", "event_timestamp"), ("interactions.parquet", "event_timestamp")):
        frame = _read(bank_dir, name)
        assert (frame[column] >= frame["customer_id"].map(created)).all(), name
        assert (frame[column] >= WINDOW_START).all(), name
        assert (frame[column] < AS_OF_TS).all(), name
    holdings = _read(bank_dir, "holdings.parquet")
    assert (holdings["opened_at"] >= holdings["customer_id"].map(created)).all()
    assert (holdings["opened_at"] < AS_OF_TS).all()


def _with_customer(frame: pd.DataFrame, customers: pd.DataFrame) -> pd.DataFrame:
    return frame.merge(customers, on="customer_id", how="left")


@pytest.mark.parametrize(
    ("name", "column"), [("interactions.parquet", "event_timestamp"), ("holdings.parquet", "opened_at")]
)
def test_no_suitability_breach(bank_dir: Path, name: str, column: str) -> None:
    """Risk-rated products are shown, sold and held only within a valid assessment of a high enough level."""
    customers = _read(bank_dir, "customers.parquet")
    frame = _with_customer(_read(bank_dir, name), customers)
    rating = frame["product_id"].map(RATING)
    rated = frame[rating > 0]
    assert len(rated) > 100
    assert (rated["risk_level"] >= rating[rating > 0]).all()
    assert (rated[column] >= rated["risk_assessed_at"]).all()
    assert (rated[column] < rated["risk_expires_at"]).all()


def test_impressions_respect_consent_and_channels(bank_dir: Path) -> None:
    customers = _read(bank_dir, "customers.parquet").set_index("customer_id")
    shown = _read(bank_dir, "interactions.parquet")
    shown = shown[shown["interaction_type"] != "purchase"]
    for channel in CHANNELS:
        in_channel = shown[shown["channel"] == channel]
        assert customers.loc[in_channel["customer_id"], f"consent_{channel}"].all(), channel
        assert in_channel["product_id"].map(lambda p, c=channel: c in by_id()[p].channels).all(), channel


def test_interaction_volumes_are_plausible(bank_dir: Path) -> None:
    interactions = _read(bank_dir, "interactions.parquet")
    per_customer = len(interactions) / CUSTOMERS
    purchases = (interactions["interaction_type"] == "purchase").sum() / CUSTOMERS
    assert 20 <= per_customer <= 40
    assert 2 <= purchases <= 4
    counts = interactions["interaction_type"].value_counts()
    assert counts["impression"] > counts["click"] > counts["purchase"]


def test_purchase_rate_increases_with_planted_affinity(bank_dir: Path) -> None:
    truth = np.load(bank_dir / "truth" / "preferences.npz")
    affinity = truth["affinity"]
    bought = np.zeros_like(affinity, dtype=bool)
    purchases = _read(bank_dir, "interactions.parquet").query("interaction_type == 'purchase'")
    rows = pd.Index(truth["customer_ids"]).get_indexer(purchases["customer_id"])
    cols = pd.Index(truth["product_ids"]).get_indexer(purchases["product_id"])
    bought[rows, cols] = True
    positive = affinity > 0
    decile = pd.qcut(affinity[positive], 10, labels=False)
    rates = pd.Series(bought[positive]).groupby(decile).mean().to_numpy()
    assert np.all(np.diff(rates) > -0.01), rates
    assert rates[-1] > 5 * rates[0], rates
    # Nothing is bought where the oracle says "never" unless it became ineligible by that very purchase.
    excluded_by_purchase = {p.product_id for p in CATALOGUE if p.eligibility.excluded_holdings}
    never = bought & ~positive
    assert set(np.asarray(truth["product_ids"])[np.nonzero(never)[1]]) <= excluded_by_purchase


def test_segments_and_customer_mix_are_realistic(bank_dir: Path) -> None:
    customers = _read(bank_dir, "customers.parquet")
    shares = {
        s: customers[f"seg_{s}"].mean()
        for s in ("payroll", "credit_card", "mortgage", "wealth", "social_security")
    }
    assert 0.28 <= shares["payroll"] <= 0.42
    assert 0.32 <= shares["credit_card"] <= 0.50
    assert 0.08 <= shares["mortgage"] <= 0.16
    assert 0.09 <= shares["wealth"] <= 0.20
    assert 0.22 <= shares["social_security"] <= 0.36
    long_tail = (customers["aum"] < 50_000) & ~customers["seg_payroll"] & ~customers["seg_wealth"]
    assert (long_tail == customers["seg_long_tail"]).all()
    assert set(customers["lifecycle_stage"]) == set(LIFECYCLE_STAGES)
    never = customers["risk_level"].isna().mean()
    expired = (customers["risk_expires_at"] <= AS_OF_TS).mean()
    assert 0.10 <= never <= 0.20
    assert 0.06 <= expired <= 0.14
    assert 0.02 <= customers["personalised_opt_out"].mean() <= 0.08
    assert (
        customers["consent_app"].mean()
        > customers["consent_sms"].mean()
        > customers["consent_remote_agent"].mean()
    )
    listed = customers["segments"].str.split(",")
    assert (listed.map(lambda s: "payroll" in s) == customers["seg_payroll"]).all()
    band = pd.cut(
        customers["age"],
        [17, 25, 35, 45, 55, 65, 200],
        labels=["18-25", "26-35", "36-45", "46-55", "56-65", "66+"],
    )
    assert (band.astype(str) == customers["age_band"]).all()


def test_holdings_follow_segments(bank_dir: Path) -> None:
    customers = _read(bank_dir, "customers.parquet").set_index("customer_id")
    holdings = _read(bank_dir, "holdings.parquet")
    held_types = holdings.groupby("customer_id")["product_type"].agg(set)
    held_types = held_types.reindex(customers.index).map(lambda s: s if isinstance(s, set) else set())
    assert (held_types[customers["seg_payroll"]].map(lambda s: "payroll_service" in s)).all()
    assert (held_types[customers["seg_mortgage"]].map(lambda s: "mortgage_service" in s)).all()
    assert (held_types.map(lambda s: "credit_card" in s) == customers["seg_credit_card"]).all()


def test_moments_are_grounded(bank_dir: Path) -> None:
    customers = _read(bank_dir, "customers.parquet").set_index("customer_id")
    events = _read(bank_dir, "events.parquet")
    holdings = _read(bank_dir, "holdings.parquet")
    kinds = events.groupby("event_type")["customer_id"]
    assert set(kinds.groups) == {
        "salary_credited",
        "deposit_maturing",
        "wealth_maturing",
        "large_inbound_transfer",
        "card_bill",
        "birthday",
        "aum_drop",
        "app_login",
    }
    assert customers.loc[kinds.get_group("salary_credited"), "seg_payroll"].all()
    assert customers.loc[kinds.get_group("card_bill"), "seg_credit_card"].all()
    assert (
        customers.loc[kinds.get_group("aum_drop"), "lifecycle_stage"].isin({"churn_risk", "dormant"})
    ).all()
    for kind, types in (
        ("deposit_maturing", {"deposit", "structured_deposit"}),
        ("wealth_maturing", {"wealth_management"}),
    ):
        holders = set(holdings.loc[holdings["product_type"].isin(types), "customer_id"])
        assert set(kinds.get_group(kind)) <= holders, kind
    birthdays = events[events["event_type"] == "birthday"]
    born = customers.loc[birthdays["customer_id"]]
    assert (birthdays["event_timestamp"].dt.month.to_numpy() == born["birth_month"].to_numpy()).all()
    assert (birthdays["event_timestamp"].dt.day.to_numpy() == born["birth_day"].to_numpy()).all()
    logins = kinds.get_group("app_login").value_counts()
    active = customers.index[customers["lifecycle_stage"] == "active"]
    dormant = customers.index[customers["lifecycle_stage"] == "dormant"]
    assert logins.reindex(active, fill_value=0).mean() > 5 * logins.reindex(dormant, fill_value=0).mean()


def test_feature_snapshots(bank_dir: Path) -> None:
    profile = _read(bank_dir, "features/customer_profile.parquet")
    stamps = sorted(profile["event_timestamp"].unique())
    assert [pd.Timestamp(t).strftime("%Y-%m-%d") for t in stamps] == [
        "2026-08-31",
        "2026-09-30",
        "2026-10-31",
    ]
    assert not profile.duplicated(["customer_id", "event_timestamp"]).any()
    assert set(profile["risk_level"]) <= {0, 1, 2, 3, 4, 5}

    activity = _read(bank_dir, "features/customer_activity.parquet")
    weekly = sorted(activity["event_timestamp"].unique())
    assert len(weekly) == 8
    assert pd.Timestamp(weekly[-1]) == AS_OF_TS
    assert (pd.Series(weekly).diff().dropna() == pd.Timedelta(days=7)).all()
    latest = activity[activity["event_timestamp"] == AS_OF_TS].set_index("customer_id")
    interactions = _read(bank_dir, "interactions.parquet")
    recent = interactions[interactions["event_timestamp"] >= AS_OF_TS - pd.Timedelta(days=30)]
    bought = recent[recent["interaction_type"] == "purchase"]["customer_id"].value_counts()
    assert (bought.reindex(latest.index, fill_value=0) == latest["purchases_30d"]).all()
    assert (latest["impressions_7d"] <= latest["impressions_30d"]).all()
    assert ((latest["last_moment_type"] == "") == (latest["last_moment_ts"] == 0)).all()

    stats = _read(bank_dir, "features/product_stats.parquet")
    assert len(stats) == 8 * len(CATALOGUE)
    assert stats["conversion_30d"].between(0, 1).all()
    assert (stats["popularity_30d"] > 0).any()


def test_cli_smoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli"
    code = main(["generate", "--customers", "500", "--seed", "3", "--as-of", "2026-11-01", "--out", str(out)])
    assert code == 0
    line = capsys.readouterr().out.strip()
    assert "\n" not in line
    assert "customers.parquet=500" in line
    assert "s:" in line
    assert (out / "manifest.json").exists()
    assert (out / "features" / "product_stats.parquet").exists()


def test_module_entry_point(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "qianmian_bankgen",
            "generate",
            "--customers",
            "50",
            "--out",
            str(tmp_path / "m"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "customers.parquet=50" in result.stdout
