"""A bounded load run of the REST API against gunicorn, on loopback.

Fills a database with 20 employees, each with ``--items`` open work items of the approval
process (started through the engine), starts ``crmflow serve --workers N`` on it, and
then, for ``--seconds`` seconds, ``--threads`` client threads each act as one employee:

- the inbox: ``GET /api/v1/work-items?scope=mine&limit=50``;
- the complete call: ``POST /api/v1/work-items/{id}/complete`` with the item's version,
  for the employee's next open item (one complete after every ``--inbox-per-complete``
  inbox reads, as an employee reads more than they finish).

Prints, per call: requests, requests per second, p50 / p95 / p99 latency and errors
(anything but 200). The server, the database and this script share the machine: the
figures are for that setup, not for the server alone.

    python bench/api_load.py [--seconds 30] [--threads 8] [--workers 2] [--database-url URL]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

from sqlalchemy.engine import make_url

from engine.runtime.assignment import calendar_due
from processes.system import build_system
from webui.api import tokens as token_store

BPMN = Path(__file__).resolve().parent.parent / "tests" / "bpmn" / "approval.bpmn"
CRMFLOW = Path(sys.executable).with_name("crmflow")
EMPLOYEES = 20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="How long the load runs.")
    parser.add_argument("--threads", type=int, default=8, help="Client threads, one employee each.")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes.")
    parser.add_argument("--server-threads", type=int, default=4, help="Threads per gunicorn worker.")
    parser.add_argument("--items", type=int, default=60, help="Open work items per employee at the start.")
    parser.add_argument("--inbox-per-complete", type=int, default=3)
    parser.add_argument("--database-url", help="Default: a new SQLite file in a temporary directory.")
    arguments = parser.parse_args()

    directory = Path(tempfile.mkdtemp(prefix="crmflow-api-load-"))
    url = arguments.database_url or f"sqlite:///{directory}/crmflow.db"
    tokens = seed(url, arguments.items)
    port = _free_port()
    env = {**os.environ, "CRMFLOW_DATABASE_URL": url, "CRMFLOW_SECRET_KEY": "api-load",
           "PROMETHEUS_MULTIPROC_DIR": str(directory / "metrics")}
    log = (directory / "server.log").open("w")
    server = subprocess.Popen([str(CRMFLOW), "serve", "--workers", str(arguments.workers), "--threads",
                               str(arguments.server_threads), "--port", str(port)],
                              env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_for(port)
        results = run(port, tokens[:arguments.threads], arguments.seconds, arguments.inbox_per_complete)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    print(f"{arguments.workers} gunicorn workers x {arguments.server_threads} threads, {arguments.threads} client "
          f"threads, {arguments.seconds:.0f} s, {make_url(url).get_backend_name()}, "
          f"{EMPLOYEES * arguments.items} open items at the start")
    print(f"{'call':10} {'requests':>9} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'errors':>7}")
    for call in ("inbox", "complete"):
        times, errors = results[call]["times"], results[call]["errors"]
        print(f"{call:10} {len(times) + errors:9d} {(len(times) + errors) / arguments.seconds:8.1f} "
              f"{_percentile(times, 50):8.1f} {_percentile(times, 95):8.1f} {_percentile(times, 99):8.1f} "
              f"{errors:7d}")
    for status, count in sorted(results["statuses"].items()):
        print(f"  answers {status}: {count}")


def seed(url: str, items: int) -> list[str]:
    """Employees with open items of their own; returns their tokens."""
    system = build_system(url, due_calculator=calendar_due, webhooks=None)
    system.init_db()
    engine = system.engine
    engine.add_user("boss", "Boss", roles=["employee", "manager"])
    names = [f"emp{n:02d}" for n in range(EMPLOYEES)]
    for name in names:
        engine.add_user(name, name, manager="boss")
    engine.add_group("sales", "Sales", head="boss", members=names)
    engine.add_group("heads", "Heads", members=["boss"])
    engine.deploy([BPMN])
    for name in names:
        for _ in range(items):
            engine.start("approval", {"curator": name}, started_by=name)
    tokens = [token_store.create_token(engine, name, "load").secret for name in names]
    engine.dispose()
    return tokens


def run(port: int, tokens: list[str], seconds: float, inbox_per_complete: int) -> dict:
    results: dict = {"inbox": {"times": [], "errors": 0}, "complete": {"times": [], "errors": 0},
                     "statuses": defaultdict(int)}
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def employee(token: str) -> None:
        inbox: list[dict] = []
        reads = 0
        while time.monotonic() < stop_at:
            if reads < inbox_per_complete or not inbox:
                status, body, took = _call(port, token, "GET", "/api/v1/work-items?scope=mine&limit=50")
                call = "inbox"
                reads += 1
                if status == 200:
                    inbox = body["items"]
            else:
                item = inbox.pop(0)
                status, body, took = _call(port, token, "POST", f"/api/v1/work-items/{item['id']}/complete",
                                           {"expected_version": item["version"], "data": {"discount": 5}})
                call = "complete"
                reads = 0
            with lock:
                results["statuses"][f"{call} {status}"] += 1
                if status == 200:
                    results[call]["times"].append(took)
                else:
                    results[call]["errors"] += 1

    threads = [threading.Thread(target=employee, args=(token,)) for token in tokens]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def _call(port: int, token: str, method: str, path: str, body: dict | None = None) -> tuple[int, dict, float]:
    started = time.perf_counter()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request(method, path, body=json.dumps(body) if body is not None else None,
                           headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        response = connection.getresponse()
        payload = json.loads(response.read() or b"null")
        return response.status, payload, (time.perf_counter() - started) * 1000
    except OSError:
        return 599, {}, (time.perf_counter() - started) * 1000
    finally:
        connection.close()


def _percentile(values: list[float], percent: int) -> float:
    if not values:
        return float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[percent - 1] if len(values) > 1 else values[0]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"the server did not listen on {port} within {timeout} s")


if __name__ == "__main__":
    main()
