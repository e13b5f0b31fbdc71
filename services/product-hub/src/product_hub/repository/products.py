"""Queries on ``products`` and ``product_status_changes``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from qianmian_core.db import insert_unique, update_one
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from product_hub.errors import ProductExistsError
from product_hub.models import Product, ProductStatusChange


class ProductRepository:
    """Product queries inside one session (the caller owns the transaction)."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def get(self, product_id: str) -> Product | None:
        """The product, or None."""
        return self._session.get(Product, product_id)

    def exists(self, product_id: str) -> bool:
        """True when a product with this id is stored."""
        stmt = select(func.count()).select_from(Product).where(Product.product_id == product_id)
        return bool(self._session.scalar(stmt))

    def add(self, product: Product) -> None:
        """Insert a new product; raise ProductExistsError if its id is taken (also under a race)."""
        insert_unique(
            self._session,
            product,
            lambda: ProductExistsError(
                f"product {product.product_id} already exists", details={"product_id": product.product_id}
            ),
        )

    def find(self, *, statuses: Sequence[str] = (), product_types: Sequence[str] = ()) -> list[Product]:
        """Products filtered by status and type, ordered by id.

        The catalogue of a bank holds hundreds of products, not millions, so the remaining filters
        (channel, sale window, eligibility) run in Python on this result.
        """
        stmt = select(Product).order_by(Product.product_id)
        if statuses:
            stmt = stmt.where(Product.status.in_(statuses))
        if product_types:
            stmt = stmt.where(Product.product_type.in_(product_types))
        return list(self._session.scalars(stmt))

    def update_if_version(self, product_id: str, version: int, values: dict[str, Any]) -> bool:
        """Apply ``values`` and bump the version, only if the stored version is ``version``.

        A single conditional UPDATE, so two concurrent edits of one version cannot both win.
        """
        stmt = (
            update(Product)
            .where(Product.product_id == product_id, Product.version == version)
            .values(**values, version=Product.version + 1)
            .execution_options(synchronize_session=False)
        )
        return update_one(self._session, stmt)

    def update_if_status(self, product_id: str, status: str, values: dict[str, Any]) -> bool:
        """Apply ``values`` and bump the version, only if the stored status is still ``status``."""
        stmt = (
            update(Product)
            .where(Product.product_id == product_id, Product.status == status)
            .values(**values, version=Product.version + 1)
            .execution_options(synchronize_session=False)
        )
        return update_one(self._session, stmt)

    def add_status_change(
        self,
        *,
        product_id: str,
        from_status: str | None,
        to_status: str,
        actor: str,
        comment: str | None,
        at: datetime,
    ) -> None:
        """Append one entry to the workflow history (entries are never updated or deleted)."""
        self._session.add(
            ProductStatusChange(
                product_id=product_id,
                from_status=from_status,
                to_status=to_status,
                actor=actor,
                comment=comment,
                at=at,
            )
        )
        self._session.flush()

    def history(self, product_id: str) -> list[ProductStatusChange]:
        """The workflow history of a product, oldest first."""
        stmt = (
            select(ProductStatusChange)
            .where(ProductStatusChange.product_id == product_id)
            .order_by(ProductStatusChange.at, ProductStatusChange.id)
        )
        return list(self._session.scalars(stmt))
