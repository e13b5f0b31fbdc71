"""Seeding from bankgen parquet: counts, derived values, speed, and the real generator."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

import pytest
from profile_service.models import Base, Consent, Customer, CustomerPii, Event
from profile_service.service.seeding import seed
from qianmian_core.db import Database
from sqlalchemy import func, select

from ..conftest import write_bank  # type: ignore[import-not-found]


def test_seed_counts_and_windows(database: Database, bank_dir: Path, as_of: datetime) -> None:
    with database.session() as session:
        report = seed(session, bank_dir)
    assert report.counts["customers"] == 30
    assert report.counts["customer_pii"] == 30
    assert report.counts["consents"] == 30 * 7
    assert report.counts["risk_assessments"] == 29
    with database.session() as session:
        oldest = session.scalar(select(func.min(Event.occurred_at)))
        assert oldest is not None
        assert (as_of - oldest).days < 30
        customer = session.get(Customer, "C000000001")
        assert customer is not None
        assert customer.clv > 0
        assert (
            session.scalar(select(func.count()).select_from(Consent).where(Consent.channel == "personalised"))
            == 30
        )
    with database.session() as session:  # seeding again replaces, never duplicates
        seed(session, bank_dir)
        assert session.scalar(select(func.count()).select_from(CustomerPii)) == 30


@pytest.mark.slow
def test_ten_thousand_customers_seed_well_under_30s(tmp_path: Path, as_of: datetime) -> None:
    data = write_bank(tmp_path / "bank", 10_000, as_of)
    db = Database(f"sqlite:///{tmp_path}/big.db")
    Base.metadata.create_all(db.engine)
    started = time.perf_counter()
    with db.session() as session:
        report = seed(session, data)
    elapsed = time.perf_counter() - started
    db.dispose()
    assert report.counts["customers"] == 10_000
    assert elapsed < 15, f"seeding 10k customers took {elapsed:.1f}s"
