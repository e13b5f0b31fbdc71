"""Names the catalogue snapshot of each decision, storing each distinct snapshot once.

The hub cache hands out the same mapping object until its next refresh, so the hash is computed once
per refresh (by object identity) and the row is written once per distinct content; a decision then
costs a dictionary lookup.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from qianmian_core.db import Database

from recommender.repository.snapshots import SnapshotRepository
from recommender.service.hub_cache import CatalogueProduct
from recommender.service.pipeline import catalogue_to_json, snapshot_hash


class SnapshotStore:
    def __init__(self, database: Database) -> None:
        self.database = database
        self._last: tuple[object, str] | None = None
        self._stored: set[str] = set()
        self._lock = asyncio.Lock()

    async def key_of(self, catalogue: Mapping[str, CatalogueProduct]) -> str:
        """The snapshot hash of ``catalogue``, stored durably before it is returned."""
        last = self._last
        if last is not None and last[0] is catalogue:
            return last[1]
        async with self._lock:
            last = self._last
            if last is not None and last[0] is catalogue:
                return last[1]
            rows = catalogue_to_json(catalogue)
            key = snapshot_hash(rows)
            if key not in self._stored:
                await asyncio.to_thread(self._save, key, rows)
                self._stored.add(key)
            self._last = (catalogue, key)
            return key

    def _save(self, key: str, rows: list[dict[str, Any]]) -> None:
        with self.database.session() as session:
            SnapshotRepository(session).save(key, rows, datetime.now(UTC))

    def load(self, key: str) -> list[dict[str, Any]] | None:
        with self.database.session() as session:
            return SnapshotRepository(session).get(key)
