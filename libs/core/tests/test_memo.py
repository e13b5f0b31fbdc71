"""The decision path's memos: a value is found only for the very objects (and key) it was kept for."""

from __future__ import annotations

import asyncio
import gc

import pytest
from qianmian_core.memo import IdentityMemo, transient


class Snapshot:
    """Stands in for a catalogue snapshot or a model: compared by identity only."""


def test_a_value_is_kept_per_objects_and_key_and_the_oldest_goes_first() -> None:
    memo: IdentityMemo[str] = IdentityMemo(2)
    a, b = Snapshot(), Snapshot()
    memo.put((a, None), "k", "a-k")
    assert memo.get((a, None), "k") == "a-k"
    assert memo.get((a, None), "other") is None
    assert memo.get((b, None), "k") is None  # another object, even an equal-looking one
    assert memo.get((None, a), "k") is None  # order matters
    memo.put((b,), None, "b")
    memo.put((a,), None, "a")  # beyond the bound: the oldest entry goes
    assert len(memo) == 2
    assert memo.get((a, None), "k") is None
    assert memo.get((b,)) == "b"
    memo.clear()
    assert len(memo) == 0
    with pytest.raises(ValueError, match="max_entries"):
        IdentityMemo(0)


def test_an_entry_keeps_its_objects_alive_so_their_ids_are_never_reused() -> None:
    memo: IdentityMemo[int] = IdentityMemo(10)
    kept = Snapshot()
    memo.put((kept,), None, 1)
    ident = id(kept)
    del kept
    gc.collect()
    fresh = [Snapshot() for _ in range(1000)]  # none can take the kept object's id
    assert all(id(s) != ident for s in fresh)
    assert all(memo.get((s,)) is None for s in fresh)


def test_boundary_epochs_sort_an_objects_boundaries_once_and_place_a_moment_among_them() -> None:
    from datetime import UTC, datetime, timedelta

    from qianmian_core.memo import BoundaryEpochs

    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    calls: list[int] = []

    def boundaries() -> list[datetime | None]:
        calls.append(1)
        return [t0 + timedelta(hours=2), None, t0, t0 + timedelta(hours=2)]

    owner, other = Snapshot(), Snapshot()
    windows = BoundaryEpochs(4)  # [start, end): a boundary equal to the moment is passed
    deadlines = BoundaryEpochs(4, inclusive=False)  # stale only once past the deadline
    moments = [t0 - timedelta(seconds=1), t0, t0 + timedelta(hours=1), t0 + timedelta(hours=2)]
    assert [windows.epoch((owner,), at, boundaries) for at in moments] == [0, 1, 1, 2]
    assert [deadlines.epoch((owner,), at, boundaries) for at in moments] == [0, 0, 1, 1]
    assert len(calls) == 2  # once per memo and object, whatever the moment
    assert windows.epoch((other,), t0, list) == 0  # another object: its own (here no) boundaries


def test_transient_work_keeps_its_values_apart_and_drops_them_at_the_end() -> None:
    memo: IdentityMemo[str] = IdentityMemo(10)
    shared, passing = object(), object()
    memo.put((shared,), "k", "kept")
    with transient():
        assert memo.get((shared,), "k") == "kept"
        memo.put((passing,), "k", "one-off")
        assert memo.get((passing,), "k") == "one-off"  # the work reuses what it derived
        assert len(memo) == 1  # nothing evicted or added for live callers

        async def in_a_thread() -> str | None:  # worker threads started within it share it
            await asyncio.to_thread(memo.put, (passing,), "t", "from a thread")
            return memo.get((passing,), "t")

        assert asyncio.run(in_a_thread()) == "from a thread"
        assert len(memo) == 1
    assert memo.get((passing,), "k") is None
    assert memo.get((shared,), "k") == "kept"
    memo.put((passing,), "k", "now kept")
    assert memo.get((passing,), "k") == "now kept"


def test_transient_values_are_bounded_per_memo() -> None:
    memo: IdentityMemo[int] = IdentityMemo(3)
    objects = [object() for _ in range(5)]
    with transient():
        for i, o in enumerate(objects):
            memo.put((o,), None, i)
        assert [memo.get((o,)) for o in objects] == [None, None, 2, 3, 4]
    assert len(memo) == 0
