"""Opt-outs reach the experiments' guardrail through profile's change feed: each ``consent`` change is
looked at once (the feed's overlap re-reads changes), and an opt-out of an exposed customer is
attributed to their arm."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import pytest
from qianmian_core.db import Database
from recommender.models import ExperimentConversion
from recommender.service.context import ChangesWire, ChangeWire, CustomerContextSource
from recommender.service.experiments import opt_out_recorder
from recommender.testing import FakeProfile
from sqlalchemy import select

from .test_service import START, Clock, running, service


class Feed:
    """profile's change feed over a list (``after`` exclusive, as profile pages it)."""

    def __init__(self) -> None:
        self.rows: list[ChangeWire] = []

    async def changes(self, after: int, limit: int = 1000) -> ChangesWire:
        page = [c for c in self.rows if c.seq > after][:limit]
        head = self.rows[-1].seq if self.rows else 0
        return ChangesWire(changes=page, next_after=page[-1].seq if page else after, head=head)


def test_an_exposed_customers_opt_out_is_attributed_once(sqlite_database: Database) -> None:
    clock = Clock()
    experiments = service(sqlite_database, clock)
    experiment_id = running(experiments)
    profile = FakeProfile()  # C000000002 opted out of personalisation; C000000001 did not
    for customer in ("C000000001", "C000000002"):
        arm = experiments.assign(customer, "app", []).arm_of(experiment_id)
        assert arm is not None
        experiments.record_exposure(experiment_id, arm, customer, channel="app", at=START)
    feed = Feed()
    source = CustomerContextSource(
        profile, None, changes=feed, on_consent=opt_out_recorder(profile, experiments)
    )

    async def run() -> None:
        await source.poll_once()  # starts at the head
        at = START + timedelta(hours=2)
        feed.rows += [
            ChangeWire(seq=1, customer_id="C000000001", kind="consent", at=at),
            ChangeWire(seq=2, customer_id="C000000002", kind="consent", at=at),
            ChangeWire(seq=3, customer_id="C000000002", kind="moment", at=at),
        ]
        await source.poll_once()
        await source.poll_once()  # the overlap reads seq 1-3 again: nothing is attributed twice
        profile.down = True  # a consent change that cannot be looked at does not stop the feed
        feed.rows.append(ChangeWire(seq=4, customer_id="C000000001", kind="consent", at=at))
        await source.poll_once()
        assert source.feed_healthy

    asyncio.run(run())
    with sqlite_database.session() as session:
        rows = session.execute(select(ExperimentConversion)).scalars().all()
    assert [(r.customer_id, r.kind) for r in rows] == [("C000000002", "opt_out")]
    arms = {a["arm"]: a for a in experiments.analysis(experiment_id)["arms"]}
    arm = experiments.assign("C000000002", "app", []).arm_of(experiment_id)
    assert arm is not None
    assert arms[arm]["opt_outs"] == 1
    assert sum(a["opt_outs"] for a in arms.values()) == 1


def test_a_bulk_consent_update_is_looked_at_a_batch_per_poll(monkeypatch: pytest.MonkeyPatch) -> None:
    from recommender.service import context as context_module

    monkeypatch.setattr(context_module, "CONSENT_CHECKS_PER_POLL", 2)
    seen: list[str] = []

    async def on_consent(customer_id: str, _at: datetime | None) -> None:
        seen.append(customer_id)

    feed = Feed()
    source = CustomerContextSource(FakeProfile(), None, changes=feed, on_consent=on_consent)

    async def run() -> list[int]:
        await source.poll_once()
        feed.rows += [ChangeWire(seq=n, customer_id=f"C{n:09d}", kind="consent") for n in range(1, 6)]
        handled = []
        for _ in range(4):
            await source.poll_once()
            handled.append(len(seen))
        return handled

    assert asyncio.run(run()) == [2, 4, 5, 5]
    assert seen == [f"C{n:09d}" for n in range(1, 6)]
