from __future__ import annotations

import os

from alembic import context

from engine.db import Base, create_db_engine
from engine.migrations import migration_connection
from engine import models as engine_models  # noqa: F401  (the domain's foreign keys name the engine's tables)
from processes import models as domain_models  # noqa: F401  (registers the domain's tables on Base.metadata)

config = context.config

DOMAIN_TABLES = {m.local_table.name for m in Base.registry.mappers if m.class_.__module__ == "processes.models"}


def domain_tables_only(obj, name, type_, reflected, compare_to):
    # The engine's tables share the metadata; its own migrations create and change them.
    table = obj if type_ == "table" else getattr(obj, "table", None)
    return table is None or table.name in DOMAIN_TABLES


def run_migrations() -> None:
    db_engine = config.attributes.get("engine")
    if db_engine is None:
        db_engine = create_db_engine(os.environ.get("CRMFLOW_DATABASE_URL", "sqlite:///instance/crmflow.db"))
    with migration_connection(db_engine) as connection:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            version_table="processes_alembic_version",
            include_object=domain_tables_only,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


run_migrations()
