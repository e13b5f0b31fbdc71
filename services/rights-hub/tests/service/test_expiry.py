"""The expiry job: holds past their expiry and grants past their deadline end, and free their budget."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from qianmian_core.db import Database
from rights_hub.database import open_database
from rights_hub.schemas import GrantRequest, ReasonRequest, ReserveRequest, RightCreate, TransitionRequest
from rights_hub.service import CatalogueService, LedgerService
from rights_hub.service.ledger import Idempotency


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    db = open_database(database_url)
    yield db
    db.dispose()


@pytest.fixture
def services(database: Database, clock: Clock) -> tuple[CatalogueService, LedgerService]:
    catalogue = CatalogueService(database, clock=clock)
    catalogue.create(
        RightCreate(
            right_id="RT-E",
            name="定期存款加息券",
            right_type="rate_boost",
            unit_cost_fen=3000,
            budget_count=2,
            budget_money_fen=6000,
            per_customer_limit=1,
            valid_from=clock.now - timedelta(days=1),
            valid_until=clock.now + timedelta(days=10),
            redeem_within_days=3,
        ),
        author="console-alice",
    )
    catalogue.transition("RT-E", TransitionRequest(to="active"), actor="console-bob")
    return catalogue, LedgerService(database, default_hold_seconds=600, clock=clock)


def _idem(key: str) -> Idempotency:
    return Idempotency("recommender", key)


def test_expired_holds_and_grants_free_budget_and_right_retires_after_window(
    services: tuple[CatalogueService, LedgerService], clock: Clock
) -> None:
    catalogue, ledger = services
    hold = orjson.loads(ledger.reserve("RT-E", ReserveRequest(customer_id="c1"), _idem("r1")).body)
    grant = orjson.loads(ledger.grant("RT-E", GrantRequest(customer_id="c2"), _idem("g1")).body)
    assert catalogue.budget("RT-E").remaining_count == 0
    assert ledger.expire_due().model_dump() == {"holds_expired": 0, "grants_expired": 0, "rights_retired": 0}

    clock.now += timedelta(minutes=11)
    late = ledger.grant_reservation(hold["reservation_id"], ReasonRequest(), _idem("late"))
    assert (late.status_code, orjson.loads(late.body)["error"]["code"]) == (409, "reservation_expired")
    assert ledger.expire_due().holds_expired == 1
    assert ledger.get_reservation(hold["reservation_id"]).status == "expired"
    budget = catalogue.budget("RT-E")
    assert (budget.reserved_count, budget.granted_count, budget.remaining_count) == (0, 1, 1)

    clock.now += timedelta(days=3)
    redeem = ledger.redeem(grant["grant_id"], ReasonRequest(), _idem("redeem-late"))
    assert (redeem.status_code, orjson.loads(redeem.body)["error"]["code"]) == (409, "grant_expired")
    assert ledger.expire_due().grants_expired == 1
    assert ledger.get_grant(grant["grant_id"]).status == "expired"
    assert catalogue.budget("RT-E").remaining_count == 2
    # The customer's slot is free again too.
    assert ledger.grant("RT-E", GrantRequest(customer_id="c2"), _idem("g2")).status_code == 201

    clock.now += timedelta(days=10)
    report = ledger.expire_due()
    assert (report.grants_expired, report.rights_retired) == (1, 1)
    assert catalogue.get("RT-E").status == "retired"
    ops = [e.operation for e in catalogue.ledger("RT-E").items]
    assert ops.count("expire") == 3
    assert ops[-1] == "status_change"


def test_expiry_is_idempotent_and_batched(
    services: tuple[CatalogueService, LedgerService], clock: Clock
) -> None:
    catalogue, ledger = services
    ledger.reserve("RT-E", ReserveRequest(customer_id="c1"), _idem("r1"))
    ledger.reserve("RT-E", ReserveRequest(customer_id="c2"), _idem("r2"))
    clock.now += timedelta(hours=1)
    assert ledger.expire_due(batch_size=1).holds_expired == 2
    assert ledger.expire_due(batch_size=1).holds_expired == 0
    assert catalogue.budget("RT-E").reserved_count == 0
