"""The Alembic migrations and the models describe the same schema."""

from __future__ import annotations

import re

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Enum, inspect

import processes.analytics  # noqa: F401  (registers the domain's tables on Base.metadata)
from engine.db import Base
from engine.runtime import Engine
from processes.system import build_system


def engine_tables_only(obj, name, type_, reflected, compare_to):
    # The domain layer keeps its tables on the same metadata, with migrations of its own.
    table = obj if type_ == "table" else getattr(obj, "table", None)
    return table is None or table.name in ENGINE_TABLES


ENGINE_TABLES = {m.local_table.name for m in Base.registry.mappers if m.class_.__module__ == "engine.models"}


def test_migrations_match_the_models(database_url):
    engine = Engine(database_url)
    engine.init_db()
    with engine.db.connect() as connection:
        context = MigrationContext.configure(connection, opts={"include_object": engine_tables_only})
        differences = compare_metadata(context, Base.metadata)
    engine.dispose()
    assert differences == []


def test_init_db_is_idempotent(sqlite_url):
    engine = Engine(sqlite_url)
    engine.init_db()
    engine.init_db()
    assert engine.users() == []
    engine.dispose()


def test_every_enum_column_has_the_check_constraint_of_its_values(database_url):
    # Alembic's comparison leaves CHECK constraints out: the migrations must state the
    # values of the models' enums themselves.
    system = build_system(database_url, webhooks=None)
    system.init_db()
    engine = system.engine
    inspector = inspect(engine.db)
    for table in Base.metadata.sorted_tables:
        expected = {f"ck_{table.name}_{column.name}": set(column.type.enums)
                    for column in table.columns if isinstance(column.type, Enum)}
        found = {check["name"]: set(re.findall(r"'([^']*)'", check["sqltext"]))
                 for check in inspector.get_check_constraints(table.name)}
        assert found == expected, table.name
    engine.dispose()
