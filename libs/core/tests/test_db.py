import sqlite3
from pathlib import Path

import pytest
from qianmian_core.db import Database, in_list, insert_ignoring_conflicts, naming_metadata
from qianmian_core.testing import SQLITE_AND_POSTGRES, empty_database_url, temporary_postgres_database
from sqlalchemy import Column, Integer, MetaData, String, Table, UniqueConstraint, select, text
from sqlalchemy.exc import IntegrityError


def test_sqlite_file_database_has_wal_and_foreign_keys(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'sub' / 'x.db'}")
    db.ping()
    with db.session() as s:
        assert s.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert s.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        # 2 = FULL: a commit is synced to disk before it returns (an audit record survives power loss).
        assert s.execute(text("PRAGMA synchronous")).scalar() == 2
    assert db.dialect == "sqlite"
    db.dispose()


def test_session_rolls_back_on_error(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'x.db'}")
    with db.session() as s:
        s.execute(text("CREATE TABLE t (v INTEGER)"))
    try:
        with db.session() as s:
            s.execute(text("INSERT INTO t VALUES (1)"))
            raise RuntimeError("abort")
    except RuntimeError:
        pass
    with db.session() as s:
        assert s.execute(text("SELECT count(*) FROM t")).scalar() == 0


def test_postgres_database() -> None:
    with temporary_postgres_database() as url:
        db = Database(url.replace("+psycopg", ""))  # plain postgresql:// is upgraded to psycopg 3
        db.ping()
        assert db.dialect == "postgresql"
        db.dispose()


def test_sqlite_immediate_takes_the_write_lock_at_begin(tmp_path: Path) -> None:
    path = tmp_path / "lock.db"
    db = Database(f"sqlite:///{path}", sqlite_immediate=True)
    with db.session() as s:
        s.execute(text("CREATE TABLE t (v INTEGER)"))
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        with db.session() as s:
            s.execute(text("SELECT count(*) FROM t"))  # a read only, yet the write lock is taken
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
        other.execute("BEGIN IMMEDIATE")  # released at commit
        other.execute("ROLLBACK")
    finally:
        other.close()
        db.dispose()


def test_naming_metadata_names_constraints_and_takes_overrides() -> None:
    assert naming_metadata().naming_convention["pk"] == "pk_%(table_name)s"
    custom = naming_metadata(uq="uq_%(table_name)s_%(column_0_N_name)s")
    assert custom.naming_convention["uq"] == "uq_%(table_name)s_%(column_0_N_name)s"
    assert custom.naming_convention["ck"] == naming_metadata().naming_convention["ck"]
    assert in_list("status", ("a", "b")) == "status IN ('a', 'b')"


_tables = MetaData()
_keyed = Table(
    "keyed",
    _tables,
    Column("id", Integer, primary_key=True),
    Column("code", String(8), nullable=False),
    Column("note", String(20), nullable=False, server_default="-"),
    UniqueConstraint("code"),
)


@pytest.mark.parametrize("dialect", SQLITE_AND_POSTGRES)
def test_insert_ignoring_conflicts_keeps_the_first_row(dialect: str, tmp_path: Path) -> None:
    with empty_database_url(dialect, tmp_path, "core_insert_ignoring") as url:
        db = Database(url)
        try:
            _tables.create_all(db.engine)
            with db.session() as s:
                first = insert_ignoring_conflicts(s, _keyed, {"id": 1, "code": "a", "note": "first"})
                assert s.execute(first.returning(_keyed.c.id)).first() is not None
                # Same primary key, then same unique code: both ignored, nothing returned, no error.
                again = insert_ignoring_conflicts(s, _keyed, {"id": 1, "code": "b", "note": "again"})
                assert s.execute(again.returning(_keyed.c.id)).first() is None
                s.execute(insert_ignoring_conflicts(s, _keyed, {"id": 2, "code": "a", "note": "dup"}))
            with db.session() as s:
                rows = s.execute(select(_keyed.c.id, _keyed.c.code, _keyed.c.note)).all()
                assert rows == [(1, "a", "first")]
                # Naming the key limits what is ignored: a conflict on another unique key still fails.
                s.execute(insert_ignoring_conflicts(s, _keyed, {"id": 1, "code": "z"}, index_elements=["id"]))
            with pytest.raises(IntegrityError), db.session() as s:
                s.execute(insert_ignoring_conflicts(s, _keyed, {"id": 3, "code": "a"}, index_elements=["id"]))
        finally:
            db.dispose()
