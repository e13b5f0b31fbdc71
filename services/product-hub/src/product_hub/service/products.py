"""Catalogue operations: create and edit drafts, move products along the workflow, list and evaluate."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from qianmian_core.db import Database
from qianmian_core.errors import UnprocessableError
from qianmian_rules import CustomerFacts

from product_hub.errors import (
    IllegalTransitionError,
    MakerCheckerError,
    NotAuthorError,
    NotEditableError,
    ProductExistsError,
    ProductNotFoundError,
    VersionConflictError,
)
from product_hub.facts import CustomerFactsProvider
from product_hub.models import Product
from product_hub.repository import ProductRepository
from product_hub.schemas import (
    EvaluationOut,
    ProductCreate,
    ProductFields,
    ProductHistory,
    ProductOut,
    ProductPage,
    ProductUpdate,
    ProductVerdict,
    StatusChangeOut,
    TransitionRequest,
)
from product_hub.service.offerability import in_sale_window, product_failures
from product_hub.service.workflow import can_transition


def utc_now() -> datetime:
    """The current time, timezone-aware."""
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class ProductFilter:
    """What a listing asks for. ``at`` restricts to products on sale at that time."""

    status: str | None = None
    product_type: str | None = None
    channel: str | None = None
    at: datetime | None = None
    limit: int = 50
    offset: int = 0


class ProductService:
    """The product hub's use cases. Each public method is one database transaction."""

    def __init__(
        self,
        database: Database,
        facts_provider: CustomerFactsProvider,
        *,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._db = database
        self._facts = facts_provider
        self._clock = clock

    # -- reads ---------------------------------------------------------------------------------

    def get(self, product_id: str) -> ProductOut:
        """One product; ProductNotFoundError if unknown."""
        with self._db.session() as session:
            return ProductOut.model_validate(_require(ProductRepository(session), product_id))

    def history(self, product_id: str) -> ProductHistory:
        """The workflow history of a product, oldest first."""
        with self._db.session() as session:
            repo = ProductRepository(session)
            _require(repo, product_id)
            changes = [StatusChangeOut.model_validate(c) for c in repo.history(product_id)]
        return ProductHistory(product_id=product_id, changes=changes)

    def query(self, query: ProductFilter, facts: CustomerFacts | None = None) -> ProductPage:
        """A page of products matching ``query``; with ``facts``, only those the customer may be offered.

        With facts, the listing holds exactly the active products on sale at ``query.at`` (default
        now), within quota, whose eligibility rules the customer meets and which are suitable.
        """
        at = query.at or self._clock()
        with self._db.session() as session:
            rows = ProductRepository(session).find(
                statuses=[query.status] if query.status else [],
                product_types=[query.product_type] if query.product_type else [],
            )
            products = [ProductOut.model_validate(row) for row in rows]
        if query.channel is not None:
            products = [p for p in products if query.channel in p.channels]
        if query.at is not None:
            products = [p for p in products if in_sale_window(p, query.at)]
        if facts is not None:
            products = [p for p in products if not product_failures(p, facts, channel=query.channel, at=at)]
        page = products[query.offset : query.offset + query.limit]
        return ProductPage(items=page, total=len(products), limit=query.limit, offset=query.offset)

    async def list_products(self, query: ProductFilter, *, eligible_for: str | None = None) -> ProductPage:
        """:meth:`query`, for async callers; with ``eligible_for``, facts come from the profile service."""
        facts = None if eligible_for is None else await self._facts.facts_for(eligible_for)
        return await asyncio.to_thread(self.query, query, facts)

    def evaluate(self, facts: CustomerFacts, *, channel: str | None, at: datetime | None) -> EvaluationOut:
        """A verdict, with every failed rule, for each active product (offerable ones first)."""
        when = at or self._clock()
        with self._db.session() as session:
            rows = ProductRepository(session).find(statuses=["active"])
            products = [ProductOut.model_validate(row) for row in rows]
        verdicts = []
        for product in products:
            failures = product_failures(product, facts, channel=channel, at=when)
            verdicts.append(
                ProductVerdict(
                    product_id=product.product_id,
                    product_type=product.product_type,
                    risk_rating=product.risk_rating,
                    eligible=not failures,
                    failures=failures,
                )
            )
        verdicts.sort(key=lambda v: (not v.eligible, v.product_id))
        return EvaluationOut(eligible=[v.product_id for v in verdicts if v.eligible], verdicts=verdicts)

    # -- writes --------------------------------------------------------------------------------

    def create(self, data: ProductCreate, *, author: str) -> ProductOut:
        """Store a new draft authored by ``author`` and record its creation in the history."""
        now = self._clock()
        with self._db.session() as session:
            repo = ProductRepository(session)
            if repo.exists(data.product_id):
                raise ProductExistsError(
                    f"product {data.product_id} already exists", details={"product_id": data.product_id}
                )
            product = Product(
                product_id=data.product_id,
                **_columns(data),
                sold=0,
                status="draft",
                author=author,
                approved_by=None,
                approved_at=None,
                version=1,
                created_at=now,
                updated_at=now,
            )
            repo.add(product)
            repo.add_status_change(
                product_id=data.product_id,
                from_status=None,
                to_status="draft",
                actor=author,
                comment="created",
                at=now,
            )
            return ProductOut.model_validate(product)

    def update(self, product_id: str, patch: ProductUpdate, *, actor: str) -> ProductOut:
        """Edit a draft. The client's ``version`` must be current (409 version_conflict otherwise).

        Only the author edits a draft: otherwise a second person could edit it and then approve it as
        "someone other than the author", approving their own work.
        """
        with self._db.session() as session:
            repo = ProductRepository(session)
            current = ProductOut.model_validate(_require(repo, product_id))
            if actor != current.author:
                raise NotAuthorError(
                    f"only the author ({current.author}) may edit draft {product_id}",
                    details={"author": current.author},
                )
            if current.status != "draft":
                raise NotEditableError(
                    f"product {product_id} is {current.status}; only drafts can be edited",
                    details={"status": current.status},
                )
            if patch.version != current.version:
                raise VersionConflictError(
                    f"product {product_id} is at version {current.version}, not {patch.version}",
                    details={"current_version": current.version},
                )
            merged = {
                **current.model_dump(include=set(ProductFields.model_fields)),
                **{k: _plain(v) for k, v in patch.changes().items()},
            }
            try:
                fields = ProductFields.model_validate(merged)
            except ValidationError as exc:
                raise UnprocessableError(
                    "the edited product is invalid", details=_validation_details(exc)
                ) from None
            if not repo.update_if_version(
                product_id, patch.version, {**_columns(fields), "updated_at": self._clock()}
            ):
                raise VersionConflictError(
                    f"product {product_id} was changed concurrently", details={"product_id": product_id}
                )
            return ProductOut.model_validate(_require(repo, product_id))

    def transition(self, product_id: str, request: TransitionRequest, *, actor: str) -> ProductOut:
        """Move a product along the workflow, enforcing maker-checker and the sale window."""
        now = self._clock()
        with self._db.session() as session:
            repo = ProductRepository(session)
            current = ProductOut.model_validate(_require(repo, product_id))
            target = request.to
            if not can_transition(current.status, target):
                raise IllegalTransitionError(
                    f"cannot move product {product_id} from {current.status} to {target}",
                    details={"from": current.status, "to": target},
                )
            values: dict[str, Any] = {"status": target, "updated_at": now}
            if target == "approved":
                if actor == current.author:
                    raise MakerCheckerError(
                        "the approver must not be the author", details={"author": current.author}
                    )
                values |= {"approved_by": actor, "approved_at": now}
            if target == "active" and current.sale_end is not None and current.sale_end <= now:
                raise IllegalTransitionError(
                    f"product {product_id}'s sale window ended at {current.sale_end.isoformat()}",
                    code="sale_window_ended",
                    details={"sale_end": current.sale_end.isoformat()},
                )
            if not repo.update_if_status(product_id, current.status, values):
                raise VersionConflictError(
                    f"product {product_id} changed status concurrently", details={"product_id": product_id}
                )
            repo.add_status_change(
                product_id=product_id,
                from_status=current.status,
                to_status=target,
                actor=actor,
                comment=request.comment,
                at=now,
            )
            return ProductOut.model_validate(_require(repo, product_id))


def _require(repo: ProductRepository, product_id: str) -> Product:
    product = repo.get(product_id)
    if product is None:
        raise ProductNotFoundError(f"product {product_id} not found", details={"product_id": product_id})
    return product


def _plain(value: Any) -> Any:
    return value.model_dump() if hasattr(value, "model_dump") else value


def _columns(fields: ProductFields) -> dict[str, Any]:
    """The column values of the author-written fields (JSON columns get plain JSON)."""
    data = fields.model_dump(mode="python", include=set(ProductFields.model_fields))
    data["eligibility"] = fields.eligibility.model_dump(mode="json")
    return data


def _validation_details(exc: ValidationError) -> list[dict[str, Any]]:
    # Same shape as request validation errors, and likewise never echoes the input.
    return [
        {"loc": ["body", *(str(p) for p in err["loc"])], "msg": err["msg"], "type": err["type"]}
        for err in exc.errors()
    ]
