"""gunicorn's settings for the crmflow web app, from the environment only.

    gunicorn -c python:webui.gunicorn_conf 'webui:create_app()'

or ``crmflow serve --workers N`` (which also upgrades the schema first). The web
processes run no scheduler: ``crmflow worker`` processes handle timers, escalations,
e-mail and webhooks (docs/deploy.md).

CRMFLOW_BIND           address:port to listen on (default 127.0.0.1:8000)
CRMFLOW_WEB_WORKERS    worker processes (default 2)
CRMFLOW_WEB_THREADS    threads per worker process (default 4)
PROMETHEUS_MULTIPROC_DIR  where the workers keep their metrics for /metrics to add up
                       (default: a fresh directory under the system's temporary one)
CRMFLOW_LOG_FORMAT     json or text (engine/logs.py)
"""

from __future__ import annotations

import os
import shutil
import tempfile

from engine.logs import configure_logging, formatter_from_environment

bind = os.environ.get("CRMFLOW_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("CRMFLOW_WEB_WORKERS", "2"))
threads = int(os.environ.get("CRMFLOW_WEB_THREADS", "4"))
worker_class = "gthread"
# A request waits at most this long for the database; a worker stuck longer is replaced.
timeout = 60
graceful_timeout = 30
# Requests are logged by the API itself, with the instance and work item they touched.
accesslog = None
# gunicornc's control socket sits at one path per user: two servers on a machine would clash over it.
control_socket_disable = True
errorlog = "-"
formatter_from_environment()  # a wrong CRMFLOW_LOG_FORMAT stops the server before it starts

# prometheus_client reads this when it is first imported: in the workers, after the fork.
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="crmflow-metrics-"))


def on_starting(server) -> None:
    """Start with no metrics left by an earlier run (they would be added to this one's)."""
    directory = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    shutil.rmtree(directory, ignore_errors=True)
    os.makedirs(directory, exist_ok=True)
    configure_logging()


def child_exit(server, worker) -> None:
    """A worker that ended keeps its counters in the sum, but its gauges go."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
