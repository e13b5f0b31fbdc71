"""Explicit id maps: external ids (customer ``C000000042``, product ``DEP-3M-01``) <-> matrix rows."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from numpy.typing import NDArray


class IdMap:
    """An ordered, duplicate-free list of ids and the inverse lookup."""

    __slots__ = ("_ids", "_index")

    def __init__(self, ids: Iterable[str]) -> None:
        self._ids: tuple[str, ...] = tuple(str(i) for i in ids)
        self._index: dict[str, int] = {value: i for i, value in enumerate(self._ids)}
        if len(self._index) != len(self._ids):
            raise ValueError("an id map cannot hold duplicate ids")

    @classmethod
    def from_values(cls, values: Iterable[str]) -> IdMap:
        """The sorted distinct ids of ``values`` (deterministic whatever the input order)."""
        return cls(sorted(set(values)))

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, item: object) -> bool:
        return item in self._index

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IdMap) and self._ids == other._ids

    def __hash__(self) -> int:
        return hash(self._ids)

    @property
    def ids(self) -> tuple[str, ...]:
        """The ids in index order."""
        return self._ids

    def index(self, value: str) -> int:
        """The index of one id; ``KeyError`` if unknown."""
        return self._index[value]

    def get(self, value: str) -> int | None:
        """The index of one id, or None if it is unknown (a cold id)."""
        return self._index.get(value)

    def indices(self, values: Sequence[str], *, missing: int = -1) -> NDArray[np.int64]:
        """Indices of many ids; unknown ids get ``missing``."""
        get = self._index.get
        return np.fromiter((get(v, missing) for v in values), dtype=np.int64, count=len(values))

    def to_list(self) -> list[str]:
        """JSON-ready form."""
        return list(self._ids)
