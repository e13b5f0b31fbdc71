"""Bounded memos for the decision path: values kept per live object (a catalogue product, a customer's
facts, a kept candidate set and ranker read, a catalogue snapshot and model) and a hashable key.

An entry is found by the objects' ids and holds the objects themselves: while it exists none of them
can be freed, so no other object can take one of their ids, and a hit is always for the very same
objects. The oldest entry goes first beyond the bound.
"""

from __future__ import annotations

import contextlib
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Hashable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from typing import Any, Generic, TypeVar

V = TypeVar("V")


def evict_oldest(cache: dict[Any, Any]) -> None:
    """Drop the oldest entry; reads run in worker threads, so another may have dropped it first."""
    with contextlib.suppress(StopIteration, RuntimeError):  # empty, or resized by another thread
        cache.pop(next(iter(cache)), None)


#: Values kept inside :func:`transient`, per memo (by id), apart from the memos' own entries.
_SCRATCH: ContextVar[dict[int, dict[Any, Any]] | None] = ContextVar("qianmian_memo_scratch", default=None)
#: The most values one memo keeps inside one :func:`transient` (oldest first out).
TRANSIENT_MAX = 20_000


@contextmanager
def transient() -> Iterator[None]:
    """Within it (this thread or task, and threads started from it), memos keep new values apart
    and drop them at the end; values kept before are read as ever.

    For one-off work over many objects (an outbound list scores 100,000 customers once each): kept
    in the memos, its entries would evict what live requests share (measured: a tenth of such a
    list's time went to keeping and evicting entries), while the work still reuses what it derives
    from shared objects (a hub snapshot's windows, a page's common candidates).
    """
    token = _SCRATCH.set({})
    try:
        yield
    finally:
        _SCRATCH.reset(token)


class IdentityMemo(Generic[V]):
    """Values kept per (live objects, hashable key), at most ``max_entries`` of them."""

    def __init__(self, max_entries: int) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.max_entries = max_entries
        self._entries: dict[tuple[tuple[int, ...], Hashable], tuple[tuple[object, ...], V]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, objects: tuple[object, ...], key: Hashable = None) -> V | None:
        """The value kept for exactly these objects and ``key``, or None."""
        ids = (tuple(map(id, objects)), key)
        entry = self._entries.get(ids)
        if entry is None:
            scratch = _SCRATCH.get()
            if scratch:
                entry = scratch.get(id(self), {}).get(ids)
        return None if entry is None else entry[1]

    def put(self, objects: tuple[object, ...], key: Hashable, value: V) -> None:
        """Keep ``value`` for these objects and ``key`` (holding the objects with it); nothing is kept
        in the memo inside :func:`transient` (kept apart there, until it ends)."""
        scratch = _SCRATCH.get()
        if scratch is not None:
            mine = scratch.get(id(self))
            if mine is None:
                mine = scratch.setdefault(id(self), {})
            if len(mine) >= min(self.max_entries, TRANSIENT_MAX):
                evict_oldest(mine)
            mine[(tuple(map(id, objects)), key)] = (objects, value)
            return
        if len(self._entries) >= self.max_entries:
            evict_oldest(self._entries)
        self._entries[(tuple(map(id, objects)), key)] = (objects, value)

    def clear(self) -> None:
        self._entries.clear()


class BoundaryEpochs:
    """Which epoch a moment falls in among a live object's time boundaries (window starts and ends,
    staleness deadlines), the boundaries sorted once per object.

    Two moments in the same epoch see every window of the object open or shut alike, so what is
    derived from the object can be kept per epoch. ``inclusive``: a boundary equal to the moment
    counts as passed (a window ``[start, end)`` opens and shuts at its boundary); otherwise only a
    boundary strictly before it does (a value goes stale only once the moment is past its deadline).
    """

    def __init__(self, max_entries: int, *, inclusive: bool = True) -> None:
        self._bounds: IdentityMemo[tuple[datetime, ...]] = IdentityMemo(max_entries)
        self._bisect = bisect_right if inclusive else bisect_left

    def epoch(
        self, objects: tuple[object, ...], at: datetime, boundaries: Callable[[], Iterable[datetime | None]]
    ) -> int:
        """How many of the boundaries ``boundaries()`` gives for ``objects`` (None: no boundary) are
        passed at ``at``; ``boundaries`` is called once per objects."""
        bounds = self._bounds.get(objects)
        if bounds is None:
            bounds = tuple(sorted({b for b in boundaries() if b is not None}))
            self._bounds.put(objects, None, bounds)
        return self._bisect(bounds, at)


__all__ = ["BoundaryEpochs", "IdentityMemo", "evict_oldest", "transient"]
