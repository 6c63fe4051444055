"""The ``crmflow`` command: the engine's commands (engine/cli.py), the domain's
(processes/cli.py) and the web UI's (``serve`` here, ``tokens`` in webui/api/cli.py), all on
crmflow as ``processes.system`` builds it from the environment."""

from __future__ import annotations

import atexit
import os

import click

from engine.cli import command_group, pass_system
from processes.cli import demo, import_customers
from processes.system import System, system_from_environment


def start_background_jobs(app):
    """The in-process scheduler next to the web server: BPMN timers, deadline escalation,
    the e-mail outbox. Several servers and ``crmflow worker`` processes may run it at once;
    each rung and timer still fires exactly once."""
    from engine.scheduling.scheduler import start_embedded

    system = app.extensions["crmflow"]
    scheduler = start_embedded(system.engine, system.escalation, webhooks=system.webhooks)
    atexit.register(scheduler.shutdown)
    return scheduler


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--threads", default=8, show_default=True, type=int,
              help="Threads (waitress; with --workers, per worker process).")
@click.option("--workers", type=click.IntRange(min=1),
              help="Serve with gunicorn and this many worker processes (production; no embedded scheduler: "
                   "run `crmflow worker`).")
@click.option("--dev", is_flag=True, help="Werkzeug's reloading development server instead of waitress.")
@click.option("--no-scheduler", is_flag=True,
              help="Serve pages only; timers and escalations are left to `crmflow worker` processes.")
@pass_system
def serve(system: System, host: str, port: int, threads: int, workers: int | None, dev: bool,
          no_scheduler: bool) -> None:
    """Run the web UI on the database of CRMFLOW_DATABASE_URL (the engine's and the CRM's
    schemas are upgraded first)."""
    from webui import create_app

    system.init_db()
    engine = system.engine
    if workers is not None:
        if dev:
            raise click.UsageError("--dev and --workers exclude each other: one is for development, one for production.")
        engine.dispose()  # the workers open their own connections after the fork
        serve_with_gunicorn(host, port, workers, threads)
        return
    app = create_app(system=system)
    # Werkzeug's reloader runs the app in a child process; the scheduler belongs there only.
    if not no_scheduler and (not dev or os.environ.get("WERKZEUG_RUN_MAIN") == "true"):
        start_background_jobs(app)
    click.echo(f"crmflow web UI on http://{host}:{port}/  (database {engine.db.url.render_as_string()})")
    if dev:
        app.run(host=host, port=port, debug=True, use_reloader=True)
    else:
        from waitress import serve as waitress_serve

        waitress_serve(app, host=host, port=port, threads=threads)


def serve_with_gunicorn(host: str, port: int, workers: int, threads: int) -> None:
    """gunicorn with ``workers`` processes of ``threads`` threads, each building the app
    from the environment (webui/gunicorn_conf.py has the rest of the settings)."""
    if not os.environ.get("CRMFLOW_SECRET_KEY"):
        raise click.UsageError("--workers needs CRMFLOW_SECRET_KEY: every worker process must sign sessions "
                               "with the same key, or people are signed out from one request to the next.")
    from gunicorn.app.base import BaseApplication

    from webui import gunicorn_conf

    class CrmflowGunicorn(BaseApplication):
        def load_config(self) -> None:
            for name, value in vars(gunicorn_conf).items():
                if name in self.cfg.settings and value is not None:
                    self.cfg.set(name, value)
            self.cfg.set("bind", f"{host}:{port}")
            self.cfg.set("workers", workers)
            self.cfg.set("threads", threads)

        def load(self):
            from webui import create_app

            return create_app()

    click.echo(f"crmflow web UI on http://{host}:{port}/ with {workers} gunicorn workers; timers and "
               "escalations run in `crmflow worker` processes.")
    CrmflowGunicorn().run()


def command_line():
    """The ``crmflow`` command with every layer's commands."""
    from webui.api.cli import tokens

    return command_group(system_from_environment, [import_customers, demo, serve, tokens])


def main() -> None:
    command_line()()
