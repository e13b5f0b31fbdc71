"""Contact caps are exact under concurrency: 50 decisions at once for one customer, cap 3 → 3 pass.

Each reservation runs in its own thread with its own connection, as concurrent requests do in the
service, on PostgreSQL (row lock on the customer's counter) and on SQLite (BEGIN IMMEDIATE).
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from qianmian_core.db import Database
from recommender.models import ContactEvent, ContactLock
from recommender.repository import Reservation
from recommender.service.contacts import ContactService
from sqlalchemy import func, select

NOW = datetime(2025, 6, 30, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai: no quiet hours


def _race(service: ContactService, calls: list[tuple[str, str, str]]) -> list[Reservation]:
    """Run every ``(customer, channel, decision_id)`` reservation at once (released by one barrier)."""
    barrier = threading.Barrier(len(calls))

    def one(call: tuple[str, str, str]) -> Reservation:
        customer, channel, decision_id = call
        barrier.wait()
        return service.reserve(customer, channel, NOW, decision_id=decision_id, product_id="P1")

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(one, calls))


def _decisions(db: Database, customer: str) -> int:
    with db.session() as session:
        return int(
            session.execute(
                select(func.count()).where(
                    ContactEvent.customer_id == customer, ContactEvent.kind == "decision"
                )
            ).scalar_one()
        )


def test_fifty_concurrent_reservations_pass_the_daily_cap_exactly_three_times(database: Database) -> None:
    service = ContactService(database)
    started = time.perf_counter()
    results = _race(service, [("C-RACE", "app", f"D-{i:02d}") for i in range(50)])
    elapsed = time.perf_counter() - started
    granted = [r for r in results if r.granted]
    print(
        f"\n{database.dialect}: 50 concurrent reservations, cap 3 → {len(granted)} granted in {elapsed:.2f}s"
    )
    assert len(granted) == 3
    assert all(r.blocked_by == ("cap_daily_channel",) for r in results if not r.granted)
    assert _decisions(database, "C-RACE") == 3
    with database.session() as session:  # PostgreSQL serialised them on the customer's lock row
        lock = session.get(ContactLock, "C-RACE")
    assert (lock is None) == (database.engine.dialect.name == "sqlite")


def test_concurrent_reservations_across_channels_respect_the_weekly_cap(database: Database) -> None:
    # 60 at once over six channels: each channel's daily cap (3) would allow 18, the weekly cap 10.
    service = ContactService(database)
    channels = ["app", "mini_program", "online_rm", "push", "sms", "remote_agent"]
    results = _race(service, [("C-WEEK", channels[i % 6], f"W-{i:02d}") for i in range(60)])
    granted = [r for r in results if r.granted]
    assert len(granted) == 10
    assert _decisions(database, "C-WEEK") == 10


def test_other_customers_are_not_limited_by_one_customers_cap(database: Database) -> None:
    service = ContactService(database)
    results = _race(service, [(f"C-{i % 10}", "app", f"M-{i:02d}") for i in range(40)])
    assert sum(r.granted for r in results) == 30  # 10 customers x 3
    later = service.reserve("C-0", "app", NOW + timedelta(days=1, seconds=1), decision_id="next-day")
    assert later.granted  # the 24 h window has slid past the first three
