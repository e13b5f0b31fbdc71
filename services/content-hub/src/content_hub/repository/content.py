"""Queries on ``content_items``, ``content_versions`` and ``content_transitions``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from qianmian_core.db import insert_unique, update_one
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from content_hub.errors import ContentExistsError, OpenVersionExistsError
from content_hub.models import ContentItem, ContentTransition, ContentVersion


class ContentRepository:
    """Content queries inside one session (the caller owns the transaction)."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def get_item(self, content_id: str) -> ContentItem | None:
        """The item, or None."""
        return self._session.get(ContentItem, content_id)

    def add_item(self, item: ContentItem) -> None:
        """Insert a new item; raise ContentExistsError if its id is taken (also under a race)."""
        insert_unique(
            self._session,
            item,
            lambda: ContentExistsError(
                f"content {item.content_id} already exists", details={"content_id": item.content_id}
            ),
        )

    def claim_next_version(self, content_id: str, latest: int) -> bool:
        """Move the item's version counter from ``latest`` to ``latest + 1``, only if it is still ``latest``.

        A conditional UPDATE: two concurrent "new version" requests cannot both get the same number.
        """
        stmt = (
            update(ContentItem)
            .where(ContentItem.content_id == content_id, ContentItem.latest_version == latest)
            .values(latest_version=latest + 1)
            .execution_options(synchronize_session=False)
        )
        return update_one(self._session, stmt)

    def add_version(self, version: ContentVersion) -> None:
        """Insert a version; a duplicate (content_id, version) means another writer won the race."""
        insert_unique(
            self._session,
            version,
            lambda: OpenVersionExistsError(
                f"version {version.version} of {version.content_id} was created concurrently"
            ),
        )

    def get_version(self, content_id: str, version: int) -> ContentVersion | None:
        """One version, or None."""
        stmt = select(ContentVersion).where(
            ContentVersion.content_id == content_id, ContentVersion.version == version
        )
        return self._session.scalars(stmt).one_or_none()

    def versions(self, content_id: str, statuses: Sequence[str] = ()) -> list[ContentVersion]:
        """The item's versions, oldest first, optionally only in ``statuses``."""
        stmt = (
            select(ContentVersion)
            .where(ContentVersion.content_id == content_id)
            .order_by(ContentVersion.version)
        )
        if statuses:
            stmt = stmt.where(ContentVersion.status.in_(statuses))
        return list(self._session.scalars(stmt))

    def find_versions(
        self,
        *,
        statuses: Sequence[str] = (),
        product_id: str | None = None,
        right_id: str | None = None,
    ) -> list[ContentVersion]:
        """Versions by status and links, ordered by content id then version.

        A bank holds thousands of content items, not millions: channel, segment and validity filters
        run in Python on this result.
        """
        stmt = select(ContentVersion).order_by(ContentVersion.content_id, ContentVersion.version)
        if statuses:
            stmt = stmt.where(ContentVersion.status.in_(statuses))
        if product_id is not None:
            stmt = stmt.where(ContentVersion.product_id == product_id)
        if right_id is not None:
            stmt = stmt.where(ContentVersion.right_id == right_id)
        return list(self._session.scalars(stmt))

    def update_version_if_status(
        self, content_id: str, version: int, status: str, values: dict[str, Any]
    ) -> bool:
        """Apply ``values`` to a version only if it is still in ``status`` (no lost workflow moves)."""
        stmt = (
            update(ContentVersion)
            .where(
                ContentVersion.content_id == content_id,
                ContentVersion.version == version,
                ContentVersion.status == status,
            )
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        return update_one(self._session, stmt)

    def add_transition(
        self,
        *,
        content_id: str,
        version: int,
        from_status: str | None,
        to_status: str,
        actor: str,
        comment: str | None,
        at: datetime,
    ) -> None:
        """Append one entry to the review history (entries are never updated or deleted)."""
        self._session.add(
            ContentTransition(
                content_id=content_id,
                version=version,
                from_status=from_status,
                to_status=to_status,
                actor=actor,
                comment=comment,
                at=at,
            )
        )
        self._session.flush()

    def transitions(self, content_id: str) -> list[ContentTransition]:
        """The review history of an item, oldest first."""
        stmt = (
            select(ContentTransition)
            .where(ContentTransition.content_id == content_id)
            .order_by(ContentTransition.at, ContentTransition.id)
        )
        return list(self._session.scalars(stmt))
