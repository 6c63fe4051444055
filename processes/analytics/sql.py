"""SQL building blocks that the two backends spell differently (days between moments,
percentiles), and the small aggregates every figure is made of."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import Date, Float, Integer, and_, case, func, literal, select, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement, Subquery
from sqlalchemy.sql.functions import FunctionElement

from engine.db import UTCDateTime, sqlite_percentiles
from processes.analytics.periods import Window

MEDIAN, P90 = (1, 2), (9, 10)  # percentiles as exact fractions: integer SQL arithmetic picks the ranks


class days_between(FunctionElement):
    """``later - earlier`` in days, with the fraction: one expression, two dialects."""

    type = Float()
    name = "days_between"
    inherit_cache = True


@compiles(days_between, "sqlite")
def _days_between_sqlite(element, compiler, **kw):
    later, earlier = (compiler.process(argument, **kw) for argument in element.clauses)
    return f"(julianday({later}) - julianday({earlier}))"


@compiles(days_between, "postgresql")
def _days_between_postgresql(element, compiler, **kw):
    later, earlier = (compiler.process(argument, **kw) for argument in element.clauses)
    # Double precision, not EXTRACT's numeric: percentiles sort these values, and numeric sorts slowly.
    return f"(CAST(EXTRACT(EPOCH FROM ({later} - {earlier})) AS DOUBLE PRECISION) / 86400)"


class dates_apart(FunctionElement):
    """Whole days from one ``DATE`` to a later one."""

    type = Integer()
    name = "dates_apart"
    inherit_cache = True


@compiles(dates_apart, "sqlite")
def _dates_apart_sqlite(element, compiler, **kw):
    later, earlier = (compiler.process(argument, **kw) for argument in element.clauses)
    return f"CAST(julianday({later}) - julianday({earlier}) AS INTEGER)"


@compiles(dates_apart, "postgresql")
def _dates_apart_postgresql(element, compiler, **kw):
    later, earlier = (compiler.process(argument, **kw) for argument in element.clauses)
    return f"({later} - {earlier})"


def bound_moment(value: datetime) -> ColumnElement[datetime]:
    """A bound UTC moment (stored naive on SQLite, as the columns are)."""
    return literal(value, UTCDateTime())


def bound_day(value: date) -> ColumnElement[date]:
    return literal(value, Date())


def flag(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return case((condition, 1), else_=0)


def count_if(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return func.coalesce(func.sum(flag(condition)), 0)


def within(column, window: Window) -> ColumnElement[bool]:
    return and_(column >= window.start, column < window.end)


def percentiles(session: Session, samples: Subquery, fractions: Sequence[tuple[int, int]]
                ) -> dict[Any, list[float | None]]:
    """Percentiles of ``samples.c.value`` per group of the samples' other columns (the
    dictionary's key: that column's value, or a tuple of several); see ``percentiles_of``."""
    keys = [column for column in samples.c if column.name != "value"]
    query = (select(*keys, percentiles_of(session, samples.c.value, fractions))
             .where(samples.c.value.is_not(None)).group_by(*keys))
    return {key[0] if len(keys) == 1 else tuple(key): percentile_values(values, fractions)
            for *key, values in session.execute(query)}


def percentiles_of(session: Session, value: ColumnElement, fractions: Sequence[tuple[int, int]]) -> ColumnElement:
    """An aggregate of ``value`` (NULLs skipped) that gives its percentiles by linear
    interpolation between the values around rank ``(n - 1) * p``, read by
    ``percentile_values``: PostgreSQL's ``percentile_cont`` over an array of fractions; on
    SQLite the aggregate that ``engine.db`` registers on the session's connection for these
    fractions, which answers the same as a JSON array. ``p`` is an exact fraction
    ``numerator / denominator``."""
    if session.get_bind().dialect.name == "postgresql":
        wanted = postgresql.array([literal(numerator / denominator, Float) for numerator, denominator in fractions])
        return func.percentile_cont(wanted).within_group(value)
    return getattr(func, sqlite_percentiles(session.connection(), fractions))(value)


def percentile_values(values: list | str | None, fractions: Sequence[tuple[int, int]]) -> list[float | None]:
    if values is None:  # PostgreSQL, for a group whose values are all NULL
        return [None] * len(fractions)
    values = values if isinstance(values, list) else json.loads(values)
    return [None if value is None else float(value) for value in values]


def for_analysis(session: Session) -> Session:
    """The session's read transaction set up for these queries on PostgreSQL: the sort
    memory they need (at the default 4 MB a year of a company's stage moves sorts on
    disk), no JIT compilation, which costs each of these short queries more than it saves,
    and the cost of a random page read as on an SSD or from memory rather than a spinning
    disk (the default 4): otherwise the planner scans whole tables where looking up the
    few thousand rows a page needs costs a fraction (it scanned all the work items to
    join a month's escalations to them). (SQLite needs none of these.)"""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET LOCAL work_mem = '64MB'"))
        session.execute(text("SET LOCAL jit = off"))
        session.execute(text("SET LOCAL random_page_cost = 1.1"))
    return session


def share(part: int | float, whole: int | float) -> float | None:
    return part / whole if whole else None
