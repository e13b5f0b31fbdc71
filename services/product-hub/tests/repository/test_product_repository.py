"""The repository on both dialects we ship: SQLite (embedded) and PostgreSQL (production)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from product_hub.database import migrate
from product_hub.errors import ProductExistsError
from product_hub.models import Product
from product_hub.repository import ProductRepository
from qianmian_core.db import Database
from qianmian_core.testing import SQLITE_AND_POSTGRES, migrated_database
from sqlalchemy.exc import IntegrityError

T0 = datetime(2030, 1, 1, 8, tzinfo=timezone(timedelta(hours=8)))


@pytest.fixture(params=SQLITE_AND_POSTGRES)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    with migrated_database(request.param, tmp_path, "product_hub_repo", migrate) as db:
        yield db


def product(product_id: str, **overrides: object) -> Product:
    values: dict[str, object] = {
        "product_id": product_id,
        "name": "定期存款三个月",
        "name_en": "3-month time deposit",
        "product_type": "deposit",
        "risk_rating": None,
        "eligibility": {"min_aum": 1000.0},
        "channels": ["app", "sms"],
        "sale_start": T0,
        "sale_end": None,
        "quota": None,
        "sold": 0,
        "margin_rate": 0.012,
        "value": 35.5,
        "attributes": {"tenor_days": 90, "tags": ["safe"]},
        "status": "draft",
        "author": "console-alice",
        "approved_by": None,
        "approved_at": None,
        "version": 1,
        "created_at": T0,
        "updated_at": T0,
    }
    values.update(overrides)
    return Product(**values)


def test_round_trip_keeps_json_and_aware_timestamps(database: Database) -> None:
    with database.session() as session:
        ProductRepository(session).add(product("DEP-3M"))
    with database.session() as session:
        stored = ProductRepository(session).get("DEP-3M")
        assert stored is not None
        assert stored.eligibility == {"min_aum": 1000.0}
        assert stored.attributes == {"tenor_days": 90, "tags": ["safe"]}
        assert stored.channels == ["app", "sms"]
        assert stored.sale_start == T0
        assert stored.sale_start is not None
        assert stored.sale_start.tzinfo is not None
        assert ProductRepository(session).get("NOPE") is None


def test_find_filters_and_orders(database: Database) -> None:
    with database.session() as session:
        repo = ProductRepository(session)
        repo.add(product("B", status="active"))
        repo.add(product("A", product_type="fund", risk_rating=3))
        repo.add(product("C", status="active", product_type="credit_card"))
    with database.session() as session:
        repo = ProductRepository(session)
        assert [p.product_id for p in repo.find()] == ["A", "B", "C"]
        assert [p.product_id for p in repo.find(statuses=["active"])] == ["B", "C"]
        assert [p.product_id for p in repo.find(product_types=["fund", "deposit"])] == ["A", "B"]
        assert repo.exists("A")
        assert not repo.exists("Z")


def test_duplicate_ids_are_refused(database: Database) -> None:
    with database.session() as session:
        ProductRepository(session).add(product("DUP"))
    with pytest.raises(ProductExistsError), database.session() as session:
        ProductRepository(session).add(product("DUP"))


def test_conditional_updates_are_optimistic(database: Database) -> None:
    with database.session() as session:
        ProductRepository(session).add(product("P"))
    with database.session() as session:
        repo = ProductRepository(session)
        assert repo.update_if_version("P", 1, {"name": "新名"})
        assert not repo.update_if_version("P", 1, {"name": "lost update"})
        assert not repo.update_if_status("P", "approved", {"status": "active"})
        assert repo.update_if_status("P", "draft", {"status": "approved", "approved_by": "console-bob"})
    with database.session() as session:
        stored = ProductRepository(session).get("P")
        assert stored is not None
        assert (stored.name, stored.version, stored.status) == ("新名", 3, "approved")


def test_history_is_ordered(database: Database) -> None:
    with database.session() as session:
        repo = ProductRepository(session)
        repo.add(product("H"))
        repo.add_status_change(
            product_id="H", from_status=None, to_status="draft", actor="a", comment=None, at=T0
        )
        repo.add_status_change(
            product_id="H", from_status="draft", to_status="approved", actor="b", comment="ok",
            at=T0 + timedelta(minutes=1),
        )  # fmt: skip
    with database.session() as session:
        history = ProductRepository(session).history("H")
        assert [(c.from_status, c.to_status) for c in history] == [(None, "draft"), ("draft", "approved")]
        assert history[1].at == (T0 + timedelta(minutes=1)).astimezone(UTC)


@pytest.mark.parametrize(
    "overrides",
    [
        {"status": "pending"},
        {"product_type": "lottery"},
        {"risk_rating": 7},
        {"approved_by": "console-alice"},  # maker-checker holds in the schema too
        {"sale_start": T0, "sale_end": T0 - timedelta(days=1)},
        {"quota": 0},
    ],
)
def test_check_constraints_guard_the_table(database: Database, overrides: dict[str, object]) -> None:
    with pytest.raises(IntegrityError), database.session() as session:
        ProductRepository(session).add(product("BAD", **overrides))
    with database.session() as session:
        assert ProductRepository(session).get("BAD") is None
