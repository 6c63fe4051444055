"""One call for a complete database: the engine's schema, then the CRM domain's."""

from __future__ import annotations

from engine.runtime import Engine


def init_db(engine: Engine) -> None:
    engine.init_db()
    from processes.migrations import upgrade

    upgrade(engine.db)
