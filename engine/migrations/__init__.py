"""Alembic migrations of the engine's schema.

``upgrade(engine)`` brings a database to the latest revision; developers create new
revisions with ``alembic revision --autogenerate -m "..."`` from the repository root.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

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
