"""Catalogue snapshots: the product catalogue as decisions saw it, stored once per distinct content."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from qianmian_core.db import insert_ignoring_conflicts
from sqlalchemy import select
from sqlalchemy.orm import Session

from recommender.models import CatalogueSnapshot


class SnapshotRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def save(self, snapshot_hash: str, products: list[dict[str, Any]], at: datetime) -> None:
        """Store a snapshot unless one with the same hash exists (concurrent writers are fine)."""
        self.session.execute(
            insert_ignoring_conflicts(
                self.session,
                CatalogueSnapshot,
                {"snapshot_hash": snapshot_hash, "created_at": at, "products": products},
                index_elements=["snapshot_hash"],
            )
        )

    def get(self, snapshot_hash: str) -> list[dict[str, Any]] | None:
        row = self.session.scalar(
            select(CatalogueSnapshot.products).where(CatalogueSnapshot.snapshot_hash == snapshot_hash)
        )
        return None if row is None else list(row)
