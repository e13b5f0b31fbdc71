"""Budget safety under real concurrency (issue 4's "Done when"), on PostgreSQL and on SQLite.

rights-hub runs under uvicorn in a subprocess; requests come over ~48 concurrent connections.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
from qianmian_core.testing import temporary_postgres_database

from .conftest import Call, Server, check_consistency, fire, prepare, serve

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Scenario:
    database_url: str
    server: Server
    many_customers: int  # requests against a budget of ``budget``
    budget: int
    one_customer: int  # requests by one customer against a limit of 1
    replays: int  # replays of one key


@pytest.fixture(scope="module", params=[pytest.param("postgresql", marks=pytest.mark.postgres), "sqlite"])
def scenario(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    tmp = tmp_path_factory.mktemp(f"concurrency-{request.param}")
    if request.param == "postgresql":
        sizes = (2000, 500, 200, 500)
        with temporary_postgres_database("rights_hub_concurrency") as url:
            yield from _scenario(url, tmp, sizes)
    else:
        yield from _scenario(f"sqlite:///{tmp / 'rights-hub.db'}", tmp, (300, 75, 100, 50))


def _scenario(url: str, tmp: Path, sizes: tuple[int, int, int, int]) -> Iterator[Scenario]:
    many, budget, one, replays = sizes
    prepare(url, [("RT-BUDGET", budget, 1), ("RT-LIMIT", 10_000, 1), ("RT-REPLAY", 10_000, 1)])
    with serve(url, tmp / "server.log") as server:
        yield Scenario(url, server, many, budget, one, replays)


def _codes(outcomes: list) -> Counter[str]:  # type: ignore[type-arg]
    codes: Counter[str] = Counter()
    for outcome in outcomes:
        if outcome.status == 201:
            codes["granted"] += 1
        else:
            codes[orjson.loads(outcome.body)["error"]["code"] if outcome.body else str(outcome.error)] += 1
    return codes


def test_parallel_grants_from_many_customers_grant_exactly_the_budget(scenario: Scenario) -> None:
    calls = [
        Call("/v1/rights/RT-BUDGET/grants", {"customer_id": f"cust-{i:05d}"}, f"many-{i}")
        for i in range(scenario.many_customers)
    ]
    started = time.perf_counter()
    outcomes = fire(scenario.server.base_url, calls)
    elapsed = time.perf_counter() - started
    codes = _codes(outcomes)
    print(f"\n{scenario.many_customers} grants, budget {scenario.budget}: {dict(codes)} in {elapsed:.1f}s")
    assert codes == {"granted": scenario.budget, "right_exhausted": scenario.many_customers - scenario.budget}
    state = check_consistency(scenario.database_url, "RT-BUDGET")
    assert state.granted_count == state.grants_rows == state.ledger_grants == scenario.budget


def test_parallel_grants_by_one_customer_respect_the_per_customer_limit(scenario: Scenario) -> None:
    calls = [
        Call("/v1/rights/RT-LIMIT/grants", {"customer_id": "cust-greedy"}, f"greedy-{i}")
        for i in range(scenario.one_customer)
    ]
    codes = _codes(fire(scenario.server.base_url, calls))
    assert codes == {"granted": 1, "customer_limit_reached": scenario.one_customer - 1}
    state = check_consistency(scenario.database_url, "RT-LIMIT")
    assert state.granted_count == state.grants_rows == state.ledger_grants == 1


def test_parallel_replays_of_one_key_grant_once_with_identical_answers(scenario: Scenario) -> None:
    call = Call("/v1/rights/RT-REPLAY/grants", {"customer_id": "cust-retry"}, "one-key-for-all")
    outcomes = fire(scenario.server.base_url, [call] * scenario.replays)
    assert {o.status for o in outcomes} == {201}
    assert len({o.body for o in outcomes}) == 1
    state = check_consistency(scenario.database_url, "RT-REPLAY")
    assert state.granted_count == state.grants_rows == state.ledger_grants == 1
