"""SQLAlchemy tables of the content hub: items, their versions (the archive) and the review history.

A content item is only an id; everything a reviewer approves lives on a *version*. Versions are never
deleted and their texts never change after submission, so every version ever published can be read
back exactly as it was approved.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from qianmian_core.db import UTCDateTime, in_list, naming_metadata
from sqlalchemy import (
    JSON,
    CheckConstraint,
    ForeignKey,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

#: Review workflow of one version; see ``content_hub.service.workflow`` for the allowed moves.
#: ``superseded`` is the archive state of an approved version replaced by a newer approved one.
VERSION_STATUSES: Final[tuple[str, ...]] = (
    "draft",
    "in_review",
    "approved",
    "rejected",
    "retired",
    "superseded",
)


class Base(DeclarativeBase):
    """Declarative base of the content hub's own schema."""

    metadata = naming_metadata()


class ContentItem(Base):
    """A content item: a stable id and a counter of its versions."""

    __tablename__ = "content_items"
    __table_args__ = (CheckConstraint("latest_version >= 1", name="latest_version"),)

    content_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    latest_version: Mapped[int] = mapped_column(Integer)


class ContentVersion(Base):
    """One version of an item: links, targeting, channel variants, validity and its review state."""

    __tablename__ = "content_versions"
    __table_args__ = (
        UniqueConstraint("content_id", "version", name="uq_content_versions_content_id_version"),
        CheckConstraint(in_list("status", VERSION_STATUSES), name="status"),
        CheckConstraint("version >= 1", name="version"),
        CheckConstraint("approved_by IS NULL OR approved_by <> author", name="maker_checker"),
        CheckConstraint(
            "valid_from IS NULL OR valid_until IS NULL OR valid_from < valid_until", name="validity"
        ),
        CheckConstraint("product_id IS NOT NULL OR right_id IS NOT NULL", name="linked"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    content_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("content_items.content_id", ondelete="RESTRICT"), index=True
    )
    version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), index=True)
    title: Mapped[str] = mapped_column(String(200))
    product_id: Mapped[str | None] = mapped_column(String(64), index=True)
    right_id: Mapped[str | None] = mapped_column(String(64), index=True)
    segments: Mapped[list[str]] = mapped_column(JSON)
    variants: Mapped[dict[str, Any]] = mapped_column(JSON)
    valid_from: Mapped[datetime | None] = mapped_column(UTCDateTime)
    valid_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    author: Mapped[str] = mapped_column(String(64))
    approved_by: Mapped[str | None] = mapped_column(String(64))
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ContentTransition(Base):
    """Append-only review history: who moved which version from what to what, when, and why."""

    __tablename__ = "content_transitions"
    __table_args__ = (
        CheckConstraint(in_list("to_status", VERSION_STATUSES), name="to_status"),
        CheckConstraint(
            "from_status IS NULL OR " + in_list("from_status", VERSION_STATUSES), name="from_status"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    content_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("content_items.content_id", ondelete="RESTRICT"), index=True
    )
    version: Mapped[int] = mapped_column(Integer)
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(64))
    comment: Mapped[str | None] = mapped_column(String(500))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
