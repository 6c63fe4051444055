"""The composition root: crmflow as it runs, the engine with what listens to its steps.

Every process that runs crmflow (``crmflow serve``, a gunicorn worker, ``crmflow worker``,
any other ``crmflow`` command, the demo, the tests) builds it here, so they all keep the
same records in step with the processes:

1. the ``Engine`` on the database;
2. the escalation ladder (``engine.deadlines.escalation``): each new work item with a
   deadline gets its rungs planned, each closed item's pending rungs are cancelled;
3. the CRM (``processes.crm``): deal, claim and project-task records follow the steps of
   their processes;
4. webhooks, when ``CRMFLOW_WEBHOOK_URLS`` is set (``engine.outbox.webhooks``): the events
   of each step, as the CRM left it, into the outbox.

The step listeners run in this order inside every step's transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

from engine.db import database_url
from engine.deadlines.calendar import business_calendars_of
from engine.deadlines.escalation import EscalationService
from engine.outbox.webhooks import EventWriter, WebhookSettings
from engine.runtime import Engine
from engine.runtime.assignment import DueCalculator
from engine.runtime.facade import utcnow
from processes import migrations as crm_migrations
from processes.crm import Crm
from processes.crm.following import FOLLOWED_PROCESSES, follow_processes


@dataclass(frozen=True)
class System:
    """The parts of one running crmflow, built by ``build_system``."""

    engine: Engine
    escalation: EscalationService
    crm: Crm
    webhooks: WebhookSettings | None  # the scheduler's webhook sender posts what the listener wrote

    def init_db(self) -> None:
        """Create or upgrade the schema: the engine's tables, then the CRM's."""
        self.engine.init_db()
        crm_migrations.upgrade(self.engine.db)

    def dispose(self) -> None:
        self.engine.dispose()


# ``build_system``'s default for ``webhooks``: the settings of the environment.
FROM_ENVIRONMENT = object()


def build_system(database_url: str, *, clock: Callable[[], datetime] = utcnow,
                 due_calculator: DueCalculator | None = None, webhooks: WebhookSettings | None | object = FROM_ENVIRONMENT,
                 **engine_options: Any) -> System:
    """crmflow on ``database_url``. ``clock`` and ``due_calculator`` go to the Engine (tests
    pass a fake clock, calendar time); ``webhooks`` are CRMFLOW_WEBHOOK_* unless given (None:
    no webhooks)."""
    engine = Engine(database_url, clock=clock, due_calculator=due_calculator, **engine_options)
    escalation = EscalationService(engine, calendars=business_calendars_of(engine.due_calculator))
    crm = Crm(engine)
    settings = WebhookSettings.from_environment() if webhooks is FROM_ENVIRONMENT else webhooks

    engine.add_listener(escalation.on_step)
    engine.add_listener(partial(follow_processes, engine), process_keys=FOLLOWED_PROCESSES)
    if settings is not None:
        engine.add_listener(EventWriter(settings).on_step)
    return System(engine, escalation, crm, settings)


def system_from_environment() -> System:
    """crmflow on the database of CRMFLOW_DATABASE_URL (default: a SQLite file under
    ./instance/, whose folder is made if missing)."""
    url = database_url()
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return build_system(url)
