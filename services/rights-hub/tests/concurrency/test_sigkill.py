"""SIGKILL rights-hub in the middle of a grant load, restart it, replay the load: the ledger stays exact."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import orjson
import pytest
from qianmian_core.testing import temporary_postgres_database

from .conftest import Call, Server, check_consistency, fire, prepare, serve

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

CUSTOMERS = 600
BUDGET = 250
KILL_AFTER = 150  # answers received before the kill


def test_sigkill_mid_load_then_replay_leaves_the_ledger_consistent(tmp_path: Path) -> None:
    calls = [
        Call("/v1/rights/RT-KILL/grants", {"customer_id": f"cust-{i:05d}"}, f"kill-{i}")
        for i in range(CUSTOMERS)
    ]
    with temporary_postgres_database("rights_hub_sigkill") as url:
        prepare(url, [("RT-KILL", BUDGET, 1)])
        with serve(url, tmp_path / "first.log") as first:

            def kill_midway(done: int, server: Server = first) -> None:
                if done == KILL_AFTER:
                    server.kill()

            before = fire(first.base_url, calls, on_done=kill_midway)
        answered = [o for o in before if o.status is not None]
        lost = [o for o in before if o.status is None]
        assert KILL_AFTER <= len(answered) < CUSTOMERS, "the kill must land mid-load"
        assert lost, "some requests must have been cut off by the kill"
        # Whatever committed before the kill is consistent on its own.
        interim = check_consistency(url, "RT-KILL")

        with serve(url, tmp_path / "second.log") as second:
            after = fire(second.base_url, calls)
        assert all(o.status is not None for o in after)
        # Answers given before the kill are replayed byte for byte.
        replayed = {o.call.key: o for o in after}
        for outcome in answered:
            assert (replayed[outcome.call.key].status, replayed[outcome.call.key].body) == (
                outcome.status,
                outcome.body,
            )
        codes = Counter(
            "granted" if o.status == 201 else orjson.loads(o.body)["error"]["code"] for o in after
        )
        final = check_consistency(url, "RT-KILL")
    print(
        f"\nSIGKILL after {len(answered)} answers ({len(lost)} cut off, "
        f"{interim.granted_count} granted by then); after restart and replay: {dict(codes)}; "
        f"granted={final.granted_count} grant rows={final.grants_rows} "
        f"ledger grant entries={final.ledger_grants}"
    )
    assert codes == {"granted": BUDGET, "right_exhausted": CUSTOMERS - BUDGET}
    assert final.granted_count == final.grants_rows == final.ledger_grants == BUDGET
    assert final.max_per_customer == 1
