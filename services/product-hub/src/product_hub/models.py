"""SQLAlchemy tables of the product hub: the catalogue and its append-only status history."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from qianmian_core.db import UTCDateTime, in_list, naming_metadata
from qianmian_rules import PRODUCT_TYPES
from sqlalchemy import (
    JSON,
    CheckConstraint,
    Double,
    ForeignKey,
    Integer,
    SmallInteger,
    String,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

#: The approval workflow; see ``product_hub.service.workflow`` for the allowed moves.
PRODUCT_STATUSES: Final[tuple[str, ...]] = ("draft", "approved", "active", "retired")


class Base(DeclarativeBase):
    """Declarative base of the product hub's own schema."""

    metadata = naming_metadata()


class Product(Base):
    """One catalogue product. Eligibility rules are data (``qianmian_rules.EligibilityRules`` as JSON)."""

    __tablename__ = "products"
    __table_args__ = (
        CheckConstraint(in_list("product_type", PRODUCT_TYPES), name="product_type"),
        CheckConstraint(in_list("status", PRODUCT_STATUSES), name="status"),
        CheckConstraint("risk_rating IS NULL OR (risk_rating BETWEEN 1 AND 5)", name="risk_rating"),
        CheckConstraint("quota IS NULL OR quota >= 1", name="quota"),
        CheckConstraint("sold >= 0", name="sold"),
        CheckConstraint(
            "sale_start IS NULL OR sale_end IS NULL OR sale_start < sale_end", name="sale_window"
        ),
        CheckConstraint("approved_by IS NULL OR approved_by <> author", name="maker_checker"),
        CheckConstraint("version >= 1", name="version"),
    )

    product_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str | None] = mapped_column(String(200))
    product_type: Mapped[str] = mapped_column(String(32), index=True)
    risk_rating: Mapped[int | None] = mapped_column(SmallInteger)
    eligibility: Mapped[dict[str, Any]] = mapped_column(JSON)
    channels: Mapped[list[str]] = mapped_column(JSON)
    sale_start: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sale_end: Mapped[datetime | None] = mapped_column(UTCDateTime)
    quota: Mapped[int | None] = mapped_column(Integer)
    sold: Mapped[int] = mapped_column(Integer, default=0)
    margin_rate: Mapped[float] = mapped_column(Double)
    value: Mapped[float] = mapped_column(Double)
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), index=True)
    author: Mapped[str] = mapped_column(String(64))
    approved_by: Mapped[str | None] = mapped_column(String(64))
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ProductStatusChange(Base):
    """Append-only audit of the workflow: who moved which product from what to what, and why."""

    __tablename__ = "product_status_changes"
    __table_args__ = (
        CheckConstraint(in_list("to_status", PRODUCT_STATUSES), name="to_status"),
        CheckConstraint(
            "from_status IS NULL OR " + in_list("from_status", PRODUCT_STATUSES), name="from_status"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    product_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("products.product_id", ondelete="RESTRICT"), index=True
    )
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(64))
    comment: Mapped[str | None] = mapped_column(String(500))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
