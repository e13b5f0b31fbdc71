"""Migration 0007 turns contact_counters into contact_locks (the lock row without totals); its
downgrade rebuilds the totals from the decisions contact_events holds."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from qianmian_core.migrations import current_revision
from qianmian_core.testing import SQLITE_AND_POSTGRES, empty_database_url, table_names
from recommender.database import downgrade, migrate

AT = datetime(2026, 11, 25, 7, 0, tzinfo=UTC)


def _stamp(dialect: str, at: datetime | None) -> object:
    """A time as the models store it: naive UTC text on SQLite, ``timestamptz`` on PostgreSQL."""
    if at is None or dialect != "sqlite":
        return at
    return at.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def _read(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        value = value.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ")
    return str(value)[:19]


def _rows(url: str, query: str) -> list[tuple[object, ...]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            return [tuple(r) for r in connection.execute(sa.text(query))]
    finally:
        engine.dispose()


def _execute(url: str, statement: str, rows: list[dict[str, object]]) -> None:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(sa.text(statement), rows)
    finally:
        engine.dispose()


@pytest.mark.parametrize("dialect", SQLITE_AND_POSTGRES)
def test_0007_keeps_the_locked_customers_and_downgrades_to_counted_totals(
    dialect: str, tmp_path: Path
) -> None:
    with empty_database_url(dialect, tmp_path, "recommender_locks_migration") as url:
        migrate(url, "0006")
        before = table_names(url)
        _execute(
            url,
            "INSERT INTO contact_counters (customer_id, contacts, last_contact_at) VALUES (:c, :n, :at)",
            [{"c": "C1", "n": 2, "at": _stamp(dialect, AT)}, {"c": "C2", "n": 0, "at": None}],
        )
        migrate(url, "0007")
        assert current_revision(url) == "0007"
        assert table_names(url) == (before - {"contact_counters"}) | {"contact_locks"}
        assert sorted(_rows(url, "SELECT customer_id FROM contact_locks")) == [("C1",), ("C2",)]

        _execute(
            url,
            "INSERT INTO contact_events (customer_id, channel, product_id, decision_id, kind, at) "
            "VALUES (:c, 'app', NULL, :d, :k, :at)",
            [
                {"c": "C1", "d": "d1", "k": "decision", "at": _stamp(dialect, AT)},
                {"c": "C1", "d": "d2", "k": "decision", "at": _stamp(dialect, AT.replace(hour=8))},
                {"c": "C1", "d": "d2", "k": "impression", "at": _stamp(dialect, AT.replace(hour=9))},
                {"c": "C3", "d": "d3", "k": "decision", "at": _stamp(dialect, AT)},
            ],
        )
        downgrade(url, "0006")
        assert table_names(url) == before
        totals = {
            str(c): (int(n), _read(last))
            for c, n, last in _rows(
                url, "SELECT customer_id, contacts, last_contact_at FROM contact_counters"
            )
        }
        # C1: its two decisions (the impression is not one); C2: locked, never contacted; C3: an
        # event without a lock row (SQLite writes none).
        assert totals == {
            "C1": (2, "2026-11-25 08:00:00"),
            "C2": (0, None),
            "C3": (1, "2026-11-25 07:00:00"),
        }
