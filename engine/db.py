"""Database connections: one place that knows SQLite's and PostgreSQL's quirks."""

from __future__ import annotations

import enum
import json
import os
from collections.abc import Sequence
from datetime import datetime, timezone

from sqlalchemy import Connection, DateTime, Engine, Enum, MetaData, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import DeclarativeBase, sessionmaker
from sqlalchemy.types import TypeDecorator

# Marks the connections of write transactions; SQLite takes its write lock up front for them.
WRITE = {"crmflow_write": True}
DEFAULT_DATABASE_URL = "sqlite:///instance/crmflow.db"


def database_url() -> str:
    """The database crmflow works on: CRMFLOW_DATABASE_URL, else a SQLite file under ./instance/."""
    return os.environ.get("CRMFLOW_DATABASE_URL", DEFAULT_DATABASE_URL)


class Base(DeclarativeBase):
    # Named CHECK constraints (those of the ``string_enum`` columns): a migration can drop
    # them by name, and SQLite's batch mode keeps only named ones when it rebuilds a table.
    metadata = MetaData(naming_convention={"ix": "ix_%(column_0_label)s",
                                           "ck": "ck_%(table_name)s_%(column_0_name)s"})


def string_enum(enum_class: type[enum.StrEnum], length: int) -> Enum:
    """The type of a column that holds one of ``enum_class``'s members: stored as its value
    in a VARCHAR(length) with a CHECK constraint listing the values (no database enum
    type, so adding a member is a plain migration on every backend), read back as the
    member. A plain string that is one of the values binds as that member; any other
    string is refused before it reaches the database."""
    # name=None: the constraint is named by the metadata's convention, not after the class
    # (several tables share an enum).
    return Enum(enum_class, name=None, native_enum=False, values_callable=lambda members: [m.value for m in members],
                validate_strings=True, create_constraint=True, length=length)


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
        # The default 2 MB page cache also bounds SQLite's sorter: the analytics' sorts and
        # groupings of a year of a company's moves spill past it. Pages are allocated as needed.
        cursor.execute("PRAGMA cache_size=-65536")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection):
        write = connection.get_execution_options().get("crmflow_write", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def sqlite_percentiles(connection: Connection, fractions: Sequence[tuple[int, int]]) -> str:
    """The name of an aggregate of one value, registered on this SQLite connection, that
    answers what PostgreSQL's ``percentile_cont(ARRAY[fractions]) WITHIN GROUP (ORDER BY
    value)`` does, as a JSON array; SQLite has no percentile aggregate (its extension is not
    compiled into Debian's SQLite). Each fraction is exact, ``(numerator, denominator)``.

    One aggregate per set of fractions, rather than the fractions as an argument: SQLite
    then hands each row's value straight to the list's own ``append``, with no Python call
    per row, which halves the cost of a year of a company's stage stays."""
    name = "percentiles_" + "_".join(f"{numerator}_{denominator}" for numerator, denominator in fractions)
    connection.connection.driver_connection.create_aggregate(name, 1, lambda: _Percentiles(fractions))
    return name


class _Percentiles:
    """For each fraction p, linear interpolation between the two values around rank
    ``(n - 1) * p`` (integer arithmetic: p is exact); null for a group without values, whose
    NULLs are skipped as by SQL aggregates. Ranking the values in SQL with window functions
    cost several times more than this sort."""

    def __init__(self, fractions: Sequence[tuple[int, int]]) -> None:
        self.fractions = fractions
        self.values: list[float | None] = []
        self.step = self.values.append

    def finalize(self) -> str:
        values = sorted(value for value in self.values if value is not None)
        results = []
        for numerator, denominator in self.fractions:
            if not values:
                results.append(None)
                continue
            lower, remainder = divmod((len(values) - 1) * numerator, denominator)
            upper = values[min(lower + 1, len(values) - 1)]
            results.append(values[lower] + (upper - values[lower]) * remainder / denominator)
        return json.dumps(results)


def session_factories(engine: Engine) -> tuple[sessionmaker, sessionmaker]:
    """A factory for read sessions and one for write sessions (SQLite: BEGIN IMMEDIATE).

    Write sessions do not autoflush: an engine step writes everything in one flush at
    commit, and its queries are written not to depend on unflushed changes.
    """
    read = sessionmaker(engine, expire_on_commit=False)
    write = sessionmaker(engine.execution_options(**WRITE), expire_on_commit=False, autoflush=False)
    return read, write
