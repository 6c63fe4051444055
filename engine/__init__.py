"""crmflow's generic BPMN runtime; it knows nothing of deals or claims.

- ``bpmn``: the language — parsing, validation, the sandbox for scripts and expressions, forms;
- ``runtime``: the ``Engine`` facade, the unit of work, how one step runs, work items, state;
- ``deadlines``: the working-time calendar and the escalation ladder of every deadline;
- ``scheduling``: the scheduler that fires timers and rungs and sends the outbox, and its heartbeats;
- ``outbox``: notifications (in-app, e-mail) and webhooks, sent after the commit;
- ``models``, ``db``, ``migrations``: the tables, the connections, their Alembic revisions;
- ``people``: users, groups and who is responsible for whom; ``errors``: deliberate errors.

docs/architecture.md has the map of all three layers and the path of one step.
"""
