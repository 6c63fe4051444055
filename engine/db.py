"""Database connections: one place that knows SQLite's and PostgreSQL's quirks."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import DateTime, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import DeclarativeBase, sessionmaker
from sqlalchemy.types import TypeDecorator

# Marks the connections of write transactions; SQLite takes its write lock up front for them.
WRITE = {"crmflow_write": True}


class Base(DeclarativeBase):
    pass


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (SQLite keeps no offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: crmflow stores UTC-aware datetimes only")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def create_db_engine(url: str, **kwargs) -> Engine:
    if make_url(url).get_backend_name() == "sqlite":
        engine = create_engine(url, **kwargs)
        _configure_sqlite(engine)
        return engine
    return create_engine(url, pool_pre_ping=True, **kwargs)


def _configure_sqlite(engine: Engine) -> None:
    # pysqlite's own transaction handling starts transactions lazily and in DEFERRED mode:
    # two writers that both read first then deadlock with "database is locked". Take over
    # BEGIN, and make write transactions IMMEDIATE so they queue on the busy timeout instead.
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection):
        write = connection.get_execution_options().get("crmflow_write", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def session_factories(engine: Engine) -> tuple[sessionmaker, sessionmaker]:
    """A factory for read sessions and one for write sessions (SQLite: BEGIN IMMEDIATE).

    Write sessions do not autoflush: an engine step writes everything in one flush at
    commit, and its queries are written not to depend on unflushed changes.
    """
    read = sessionmaker(engine, expire_on_commit=False)
    write = sessionmaker(engine.execution_options(**WRITE), expire_on_commit=False, autoflush=False)
    return read, write
