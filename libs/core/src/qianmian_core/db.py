"""Database engines and sessions: SQLite by default, PostgreSQL by URL (SQLAlchemy 2)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import orjson
from sqlalchemy import (
    Connection,
    DateTime,
    Dialect,
    Engine,
    Insert,
    MetaData,
    Update,
    create_engine,
    event,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.pool import StaticPool
from sqlalchemy.types import TypeDecorator


class Base(DeclarativeBase):
    """Declarative base; each service defines its own subclass so that schemas stay separate."""


#: Deterministic constraint names, so that migrations can address them on every dialect.
NAMING_CONVENTION: Final[Mapping[str, str]] = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def naming_metadata(**overrides: str) -> MetaData:
    """A service's own ``MetaData`` with :data:`NAMING_CONVENTION` (``overrides`` replace entries).

    Use it as ``metadata = naming_metadata()`` on the service's ``DeclarativeBase`` subclass.
    """
    return MetaData(naming_convention={**NAMING_CONVENTION, **overrides})


def in_list(column: str, values: tuple[str, ...]) -> str:
    """SQL of a CHECK constraint: ``column IN ('a', 'b')``."""
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def is_unique_violation(exc: IntegrityError) -> bool:
    """True when ``exc`` is a unique-key violation on PostgreSQL or SQLite."""
    # PostgreSQL reports SQLSTATE 23505; SQLite only says so in the message.
    return getattr(exc.orig, "sqlstate", None) == "23505" or "UNIQUE constraint failed" in str(exc.orig)


def insert_unique(session: Session, row: object, conflict: Callable[[], Exception]) -> None:
    """Insert ``row`` now; if its unique key is taken (also under a race) raise ``conflict()`` instead."""
    session.add(row)
    try:
        session.flush()
    except IntegrityError as exc:
        if not is_unique_violation(exc):
            raise
        raise conflict() from exc


def dialect_insert(session: Session, table: Any) -> postgresql.Insert | sqlite.Insert:
    """An INSERT into ``table`` for the session's dialect, with its ``on_conflict_*`` methods."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def insert_ignoring_conflicts(
    session: Session,
    table: Any,
    values: Mapping[str, Any],
    *,
    index_elements: Sequence[str] | None = None,
) -> Insert:
    """``INSERT … ON CONFLICT DO NOTHING`` of ``values`` for the session's dialect (PostgreSQL or SQLite).

    ``index_elements`` names the unique key whose conflict is ignored (any unique key when omitted).
    Callers execute the statement, optionally after ``.returning(...)``: a returned row means the
    insert happened. On PostgreSQL an INSERT that meets an uncommitted row with the same key waits for
    that transaction, so the caller then sees the committed row: this is what serialises concurrent
    creators of one row.
    """
    insert = dialect_insert(session, table).values(**values)
    return insert.on_conflict_do_nothing(index_elements=index_elements)


def update_one(session: Session, stmt: Update) -> bool:
    """Run a conditional UPDATE; True when it changed exactly one row (then the session is expired).

    Callers build ``stmt`` with its guard in the WHERE clause (a version or a status), so that of two
    concurrent writers only one wins; expiring makes the winner's next read see the stored row.
    """
    changed: bool = session.execute(stmt).rowcount == 1  # type: ignore[attr-defined]
    if changed:
        session.expire_all()
    return changed


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware timestamp on every dialect: stored in UTC, always read back with tzinfo=UTC.

    SQLite has no time zones and returns naive values; without this they would silently compare
    wrongly against aware datetimes. Naive input is refused rather than guessed.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers run beside the single writer; foreign keys are off by default in SQLite.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    # FULL: a commit is on disk (the WAL is synced) before it returns, so a decision answered after
    # its audit record's commit survives a power loss too; NORMAL would only survive a crash of the
    # process. With group commit it cost no measurable throughput (one sync per batch, 0.2 ms here).
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.close()


def _driver_autocommit(dbapi_connection: Any, _record: Any) -> None:
    # Stop pysqlite from issuing its own (deferred) BEGIN; SQLAlchemy's begin event issues ours.
    dbapi_connection.isolation_level = None


def _begin_immediate(connection: Connection) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def begins_immediate(engine: Engine) -> bool:
    """Whether ``engine``'s SQLite transactions start with ``BEGIN IMMEDIATE`` (``make_engine``'s
    ``sqlite_immediate``): each holds the database's write lock from its first statement."""
    return engine.dialect.name == "sqlite" and event.contains(engine, "begin", _begin_immediate)


def _json_text(value: object) -> str:
    """JSON columns are written with orjson (several times faster than ``json.dumps`` on audit records);
    non-string keys become strings as ``json.dumps`` makes them."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY).decode()


def make_engine(url: str, *, echo: bool = False, sqlite_immediate: bool = False) -> Engine:
    """Create an engine with the right options for the URL's dialect.

    ``sqlite_immediate=True`` starts every SQLite transaction with ``BEGIN IMMEDIATE``: it takes the
    database's write lock up front, so two read-then-write transactions can never interleave
    (SQLite's deferred default lets both read, then one fails or, worse, races). It has no effect
    on PostgreSQL, which relies on conditional updates and row locks instead.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(
                url,
                echo=echo,
                connect_args={"check_same_thread": False},
                json_serializer=_json_text,
                json_deserializer=orjson.loads,
            )
        else:
            engine = create_engine(
                url,
                echo=echo,
                connect_args={"check_same_thread": False},
                poolclass=StaticPool,
                json_serializer=_json_text,
                json_deserializer=orjson.loads,
            )
        event.listen(engine, "connect", _sqlite_pragmas)
        if sqlite_immediate:
            event.listen(engine, "connect", _driver_autocommit)
            event.listen(engine, "begin", _begin_immediate)
        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        # Use psycopg 3, the driver we ship, whatever the URL's short form says.
        url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return create_engine(
        url,
        echo=echo,
        pool_pre_ping=True,
        pool_size=10,
        max_overflow=10,
        json_serializer=_json_text,
        json_deserializer=orjson.loads,
    )


class Database:
    """One engine and its session factory for a service."""

    def __init__(self, url: str, *, echo: bool = False, sqlite_immediate: bool = False) -> None:
        self.url = url
        self.engine = make_engine(url, echo=echo, sqlite_immediate=sqlite_immediate)
        self.session_factory = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

    @property
    def shareable(self) -> bool:
        """Whether another process can open the same database from :attr:`url` (not an in-memory
        SQLite database)."""
        parsed = make_url(self.url)
        if parsed.get_backend_name() != "sqlite":
            return True
        database = parsed.database or ""
        return database not in ("", ":memory:") and "mode=memory" not in self.url

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session committed on success and rolled back on any error."""
        session = self.session_factory()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def ping(self) -> None:
        """Raise if the database cannot answer a trivial query."""
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()
