from pathlib import Path

from qianmian_core.db import Database
from qianmian_core.testing import temporary_postgres_database
from sqlalchemy import text


def test_sqlite_file_database_has_wal_and_foreign_keys(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'sub' / 'x.db'}")
    db.ping()
    with db.session() as s:
        assert s.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert s.execute(text("PRAGMA journal_mode")).scalar() == "wal"
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
