"""The Alembic migrations and the models describe the same schema."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from engine.db import Base
from engine.runtime import Engine


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
