from __future__ import annotations

import os

from alembic import context

from engine.db import Base, create_db_engine
from engine.migrations import migration_connection
from engine import models  # noqa: F401  (registers the tables on Base.metadata)

config = context.config


def run_migrations() -> None:
    db_engine = config.attributes.get("engine")
    if db_engine is None:
        db_engine = create_db_engine(os.environ.get("CRMFLOW_DATABASE_URL", "sqlite:///instance/crmflow.db"))
    with migration_connection(db_engine) as connection:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


run_migrations()
