"""Property: whatever sequence of operations runs, the budget never goes negative or over, and every
counter equals the sum of its ledger entries."""

from __future__ import annotations

import shutil
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rights_hub.database import open_database
from rights_hub.models import Right
from rights_hub.repository import LedgerRepository, UsageRepository
from rights_hub.schemas import GrantRequest, ReasonRequest, ReserveRequest, RightCreate, TransitionRequest
from rights_hub.service import CatalogueService, LedgerService
from rights_hub.service.ledger import Idempotency

CUSTOMERS = st.sampled_from(["c1", "c2", "c3"])
OPERATIONS = st.one_of(
    st.tuples(st.just("reserve"), CUSTOMERS),
    st.tuples(st.just("grant"), CUSTOMERS),
    st.tuples(st.sampled_from(["grant_hold", "release", "redeem", "reverse"]), st.integers(0, 20)),
    st.tuples(st.just("advance"), st.integers(1, 4000)),
    st.tuples(st.just("expire"), st.just(0)),
    st.tuples(st.just("replay"), st.integers(0, 20)),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    operations=st.lists(OPERATIONS, max_size=25),
    budget=st.integers(1, 4),
    limit=st.integers(1, 2),
)
def test_budget_never_negative_and_counters_equal_ledger_sums(
    migrated_template: Path,
    tmp_path_factory: object,
    operations: list[tuple[str, object]],
    budget: int,
    limit: int,
) -> None:
    path = Path(f"/tmp/rights-hub-prop-{uuid.uuid4().hex}.db")
    shutil.copyfile(migrated_template, path)
    database = open_database(f"sqlite:///{path}")
    now = [datetime(2026, 3, 1, tzinfo=UTC)]
    clock = lambda: now[0]  # noqa: E731
    try:
        catalogue = CatalogueService(database, clock=clock)
        catalogue.create(
            RightCreate(
                right_id="RT-P",
                name="积分翻倍",
                right_type="points_multiplier",
                unit_cost_fen=700,
                budget_count=budget,
                budget_money_fen=700 * budget,
                per_customer_limit=limit,
                valid_from=now[0] - timedelta(days=1),
                valid_until=now[0] + timedelta(days=30),
                redeem_within_days=1,
            ),
            author="console-alice",
        )
        catalogue.transition("RT-P", TransitionRequest(to="active"), actor="console-bob")
        ledger = LedgerService(database, default_hold_seconds=3600, clock=clock)
        holds: list[str] = []
        grants: list[str] = []
        sent: list[tuple[str, object, str]] = []
        for n, (op, arg) in enumerate(operations):
            idem = Idempotency("recommender", f"k{n}")
            if op == "reserve":
                stored = ledger.reserve("RT-P", ReserveRequest(customer_id=str(arg)), idem)
                if stored.status_code == 201:
                    holds.append(orjson.loads(stored.body)["reservation_id"])
            elif op == "grant":
                stored = ledger.grant("RT-P", GrantRequest(customer_id=str(arg)), idem)
                if stored.status_code == 201:
                    grants.append(orjson.loads(stored.body)["grant_id"])
            elif op in ("grant_hold", "release") and holds:
                target = holds[int(str(arg)) % len(holds)]
                if op == "grant_hold":
                    stored = ledger.grant_reservation(target, ReasonRequest(), idem)
                    if stored.status_code == 201:
                        grants.append(orjson.loads(stored.body)["grant_id"])
                else:
                    stored = ledger.release(target, ReasonRequest(), idem)
            elif op in ("redeem", "reverse") and grants:
                target = grants[int(str(arg)) % len(grants)]
                stored = (ledger.redeem if op == "redeem" else ledger.reverse)(target, ReasonRequest(), idem)
            elif op == "advance":
                now[0] += timedelta(seconds=int(str(arg)) * 30)
                continue
            elif op == "expire":
                ledger.expire_due(batch_size=2)
                continue
            elif op == "replay" and sent:
                # A replay of an earlier request changes nothing and answers the same bytes.
                _kind, body, key = sent[int(str(arg)) % len(sent)]
                again = ledger.grant(
                    "RT-P", GrantRequest(customer_id=str(body)), Idempotency("recommender", key)
                )
                assert again.replayed
                continue
            else:
                continue
            if op == "grant":
                sent.append((op, arg, idem.key))
            assert stored.status_code in (200, 201, 409), stored.body
            _check_invariants(database, budget, limit)
    finally:
        database.dispose()
        path.unlink(missing_ok=True)


def _check_invariants(database: object, budget: int, limit: int) -> None:
    from qianmian_core.db import Database

    assert isinstance(database, Database)
    with database.session() as session:
        right = session.get(Right, "RT-P")
        assert right is not None
        counts = (right.held_count, right.granted_count, right.redeemed_count)
        assert min(counts) >= 0
        assert sum(counts) <= budget
        assert right.held_money_fen + right.granted_money_fen + right.redeemed_money_fen == 700 * sum(counts)
        sums = LedgerRepository(session).sums("RT-P")
        assert counts == (sums.held, sums.granted, sums.redeemed)
        assert (right.held_money_fen, right.granted_money_fen, right.redeemed_money_fen) == (
            sums.held_money_fen,
            sums.granted_money_fen,
            sums.redeemed_money_fen,
        )
        usage = {u.customer_id: u.active_count for u in UsageRepository(session).all_for("RT-P")}
        assert all(0 <= n <= limit for n in usage.values())
        assert sum(usage.values()) == sum(counts)
        per_ledger = LedgerRepository(session).customer_sums("RT-P")
        assert {c: n for c, n in usage.items() if n} == {c: n for c, n in per_ledger.items() if n}
