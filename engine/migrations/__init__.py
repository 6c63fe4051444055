"""Alembic migrations of the engine's schema.

``upgrade(engine)`` brings a database to the latest revision; developers create new
revisions with ``alembic revision --autogenerate -m "..."`` from the repository root.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine

from engine.errors import CrmflowError

HERE = Path(__file__).resolve().parent


def alembic_config(engine: Engine | None = None, script_location: Path = HERE) -> Config:
    """Alembic's configuration for the migrations in ``script_location`` (the engine's by
    default; a layer above passes its own), run on ``engine``."""
    config = Config()
    config.set_main_option("script_location", str(script_location))
    if engine is not None:
        config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    command.upgrade(alembic_config(engine), revision)


@contextmanager
def migration_connection(engine: Engine) -> Iterator[Connection]:
    """A connection to run migrations on. On SQLite, with foreign keys off while they run:
    a batch migration rebuilds a table (copy, drop, rename), and dropping a parent table
    with foreign keys on would delete its children's rows by their ON DELETE CASCADE. The
    pragma only works outside a transaction, so it goes to the driver's connection before
    the migrations begin one; afterwards the foreign keys are checked and turned back on."""
    with engine.connect() as connection:
        if connection.dialect.name != "sqlite":
            yield connection
            return
        driver = connection.connection.driver_connection
        driver.execute("PRAGMA foreign_keys=OFF")
        try:
            yield connection
            broken = driver.execute("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise RuntimeError(f"the migration left rows whose foreign keys point nowhere: {broken[:5]}")
        finally:
            driver.execute("PRAGMA foreign_keys=ON")


# {table: {column: the values it may hold}}, as a revision states them: a revision keeps the
# values of its day, whatever the enums of the models say later.
AllowedValues = Mapping[str, Mapping[str, Sequence[str]]]


class MigrationRefused(CrmflowError):
    """Stored rows the new schema would not accept. The revision stops before it changes
    anything, so the database stays at the revision before it."""


def values_outside(connection: Connection, allowed: AllowedValues) -> list[str]:
    """One line per table.column that holds values outside ``allowed``: the values and how
    many rows hold each."""
    problems = []
    for table, columns in allowed.items():
        for column, values in columns.items():
            stored = sa.column(column)
            rows = connection.execute(
                sa.select(stored, sa.func.count()).select_from(sa.table(table, stored))
                .where(stored.not_in(values)).group_by(stored).order_by(stored)
            ).all()
            if rows:
                found = ", ".join(f"{value!r} ({count} {'row' if count == 1 else 'rows'})" for value, count in rows)
                problems.append(f"{table}.{column}: {found}; allowed: {', '.join(values)}")
    return problems


def refuse_unless_empty(revision: str, problems: Sequence[str]) -> None:
    if problems:
        raise MigrationRefused(
            f"The upgrade stopped before revision {revision} and changed nothing of it: the database holds "
            "values that this version of crmflow does not accept.\n  " + "\n  ".join(problems)
            + "\nCorrect or delete those rows, then run `crmflow init-db` again."
        )


def check_constraint_name(table: str, column: str) -> str:
    """The name the models' naming convention gives the CHECK constraint of an enum column."""
    return f"ck_{table}_{column}"


def add_value_checks(allowed: AllowedValues) -> None:
    """A CHECK constraint per column that it holds one of its values. SQLite cannot add a
    constraint to a table: batch mode rebuilds it (foreign keys: see ``migration_connection``)."""
    from alembic import op

    for table, columns in allowed.items():
        with op.batch_alter_table(table) as batch:
            for column, values in columns.items():
                batch.create_check_constraint(check_constraint_name(table, column), sa.column(column).in_(values))


def drop_value_checks(allowed: AllowedValues) -> None:
    from alembic import op

    for table, columns in allowed.items():
        with op.batch_alter_table(table) as batch:
            for column in columns:
                batch.drop_constraint(check_constraint_name(table, column), type_="check")
