"""The Alembic migrations and the models describe the same schema."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from engine.db import Base
from engine.runtime import Engine


def test_migrations_match_the_models(database_url):
    engine = Engine(database_url)
    engine.init_db()
    with engine.db.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    engine.dispose()
    assert differences == []


def test_init_db_is_idempotent(sqlite_url):
    engine = Engine(sqlite_url)
    engine.init_db()
    engine.init_db()
    assert engine.users() == []
    engine.dispose()
