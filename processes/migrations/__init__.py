"""Alembic migrations of the CRM domain's tables.

They keep their own version table (``processes_alembic_version``) beside the engine's, so
the engine and the domain migrate independently; the engine's tables are the engine's
migrations' job. A new revision, compared against an up-to-date database (default: the
one CRMFLOW_DATABASE_URL names):

    python -m processes.migrations "what changed"
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

from engine import migrations as engine_migrations

HERE = Path(__file__).resolve().parent
VERSION_TABLE = "processes_alembic_version"


def alembic_config(engine: Engine | None = None) -> Config:
    return engine_migrations.alembic_config(engine, HERE)


def upgrade(engine: Engine, revision: str = "head") -> None:
    command.upgrade(alembic_config(engine), revision)


def autogenerate(engine: Engine, message: str) -> None:
    """Write a revision with the differences between the models and the database."""
    command.revision(alembic_config(engine), message=message, autogenerate=True)
