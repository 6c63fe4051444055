"""`crmflow serve`: the web UI (and, once the escalation work lands, its scheduler)."""

from __future__ import annotations

import click

from engine.cli import open_engine
from processes.setup import init_db


def start_background_jobs(app) -> None:
    """THE place where the in-process scheduler (deadline escalation, reminders, timers)
    is started next to the web server. Nothing runs here yet: the escalation work hooks
    its APScheduler set-up in here, using ``app.extensions["crmflow_engine"]``."""


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--threads", default=8, show_default=True, type=int, help="Worker threads (waitress).")
@click.option("--dev", is_flag=True, help="Werkzeug's reloading development server instead of waitress.")
def serve(host: str, port: int, threads: int, dev: bool) -> None:
    """Run the web UI on the database of CRMFLOW_DATABASE_URL (the engine's and the CRM's
    schemas are upgraded first)."""
    from webui import create_app

    engine = open_engine()
    init_db(engine)
    app = create_app(engine=engine)
    start_background_jobs(app)
    click.echo(f"crmflow web UI on http://{host}:{port}/  (database {engine.db.url.render_as_string()})")
    if dev:
        app.run(host=host, port=port, debug=True, use_reloader=True)
    else:
        from waitress import serve as waitress_serve

        waitress_serve(app, host=host, port=port, threads=threads)
