"""The Feast implementation of ``FeaturePusher``, opened lazily (importing Feast takes seconds)."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from feast import FeatureStore
    from qianmian_features import FeatureSettings


class FeastPusher:
    """Pushes customer activity rows to Feast's ``customer_activity_push`` (online store)."""

    def __init__(self, settings: FeatureSettings | None = None, store: FeatureStore | None = None) -> None:
        self._settings = settings
        self._store = store
        self._lock = threading.Lock()

    def _open(self) -> FeatureStore:
        with self._lock:
            if self._store is None:
                from qianmian_features import open_store

                self._store = open_store(self._settings)
            return self._store

    def push_customer_activity(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Write the rows to the online store; raises when the store is unreachable."""
        from qianmian_features import push_customer_activity

        push_customer_activity(self._open(), rows)
