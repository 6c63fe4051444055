"""Alembic migrations of the engine's schema.

``upgrade(engine)`` brings a database to the latest revision; developers create new
revisions with ``alembic revision --autogenerate -m "..."`` from the repository root.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine

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
