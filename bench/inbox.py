"""How fast an employee's inbox answers with 100,000 open work items in the database.

Fills a database with a company of 200 employees in 20 groups and 100,000 open work
items (60 % assigned, 40 % waiting in a group's queue, deadlines spread over two weeks
around now, a quarter of them overdue), then times, for employees picked at random:

- the inbox query alone (``webui.readmodel.inbox_page``: the page's items and all five counts);
- the whole server answer: ``GET /`` through the Flask app (sign-in session, the query,
  the template), as the server spends it, without the network.

Prints the median and the 95th percentile of each, in wall-clock time and in CPU time of
this process (on a shared machine other processes stretch the wall clock; the CPU time is
the work the server itself does). The target is under 100 ms.

    python bench/inbox.py [--items 100000] [--samples 200] [--database-url URL]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import insert, select

from engine.models import ProcessDefinition, ProcessInstance, User, WorkItem, WorkItemCandidate
from engine.runtime import Engine
from processes.system import build_system

BPMN = Path(__file__).resolve().parent.parent / "tests" / "bpmn" / "approval.bpmn"
NOW = datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc)
EMPLOYEES, GROUPS, ITEMS_PER_INSTANCE = 200, 20, 4
PASSWORD = "bench"


def fill(engine: Engine, items: int, rng: random.Random) -> list[str]:
    from webui.auth import hash_password

    password_hash = hash_password(PASSWORD)
    engine.add_user("head", "Head", roles=["employee", "manager"], password_hash=password_hash, locale="en")
    usernames = [f"emp{n:03}" for n in range(EMPLOYEES)]
    for username in usernames:
        engine.add_user(username, username.title(), manager="head", password_hash=password_hash, locale="en")
    for g in range(GROUPS):
        members = usernames[g * EMPLOYEES // GROUPS:(g + 1) * EMPLOYEES // GROUPS]
        engine.add_group(f"group{g:02}", f"Group {g}", head="head", members=members)
    engine.deploy([BPMN])
    with engine.reading() as session:
        definition_id = session.scalar(select(ProcessDefinition.id))
        user_ids = dict(session.execute(select(User.username, User.id)).all())

    instances = items // ITEMS_PER_INSTANCE
    with engine.db.begin() as connection:
        connection.execute(insert(ProcessInstance), [
            {"id": n + 1, "definition_id": definition_id, "process_key": "approval",
             "business_key": f"DEAL-{n + 1} Customer {rng.randrange(5000)}", "status": "running", "state": "",
             "version": 1, "current_stage": "Negotiation", "started_at": NOW, "updated_at": NOW}
            for n in range(instances)
        ])
        rows, candidates = [], []
        for n in range(items):
            assigned = rng.random() < 0.6
            rows.append({
                "id": n + 1, "instance_id": n // ITEMS_PER_INSTANCE + 1, "task_id": str(uuid.UUID(int=rng.getrandbits(128))),
                "task_spec": "request", "name": "Request discount", "stage": "Negotiation",
                "assignee_id": user_ids[rng.choice(usernames)] if assigned else None,
                "priority": rng.choice((30, 50, 70)), "status": "open", "version": 1, "created_at": NOW,
                "due_at": NOW + timedelta(minutes=rng.randrange(-3 * 24 * 60, 11 * 24 * 60)),
            })
            if not assigned:
                candidates.append({"work_item_id": n + 1, "kind": "group", "name": f"group{rng.randrange(GROUPS):02}"})
        for start in range(0, items, 10_000):
            connection.execute(insert(WorkItem), rows[start:start + 10_000])
        connection.execute(insert(WorkItemCandidate), candidates)
    # Fresh statistics, as autovacuum (PostgreSQL) or a periodic ANALYZE (SQLite) keep them.
    with engine.db.begin() as connection:
        if engine.db.dialect.name == "sqlite":
            connection.exec_driver_sql("ANALYZE")
        else:
            connection.exec_driver_sql("ANALYZE work_items")
            connection.exec_driver_sql("ANALYZE work_item_candidates")
    return usernames


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--database-url", help="an empty database (default: a new SQLite file)")
    args = parser.parse_args()

    from sqlalchemy.orm import selectinload

    from webui import create_app
    from webui.access import load_person
    from webui.readmodel import inbox_page

    rng = random.Random(2026)
    with tempfile.TemporaryDirectory() as folder:
        system = build_system(args.database_url or f"sqlite:///{folder}/bench.db", clock=lambda: NOW, webhooks=None)
        system.init_db()
        engine = system.engine
        started = time.perf_counter()
        usernames = fill(engine, args.items, rng)
        print(f"{args.items:,} open work items on {engine.db.dialect.name} "
              f"(filled in {time.perf_counter() - started:.1f} s)")

        query_ms, query_cpu = [], []
        for _ in range(args.samples):
            with engine.reading() as session:
                user = session.scalar(select(User).where(User.username == rng.choice(usernames))
                                      .options(selectinload(User.groups)))
                person = load_person(session, user)
                begun, begun_cpu = time.perf_counter(), time.process_time()
                items, counts, _risk, _more = inbox_page(session, person, "all", "", NOW, engine.working_calendar)
                query_ms.append((time.perf_counter() - begun) * 1000)
                query_cpu.append((time.process_time() - begun_cpu) * 1000)

        app = create_app({"SECRET_KEY": "bench", "WTF_CSRF_ENABLED": False}, engine=engine)
        clients = {}
        for username in rng.sample(usernames, 10):
            client = app.test_client()
            client.post("/login", data={"username": username, "password": PASSWORD})
            clients[username] = client
        page_ms, page_cpu = [], []
        for _ in range(args.samples):
            client = clients[rng.choice(list(clients))]
            begun, begun_cpu = time.perf_counter(), time.process_time()
            response = client.get("/")
            page_ms.append((time.perf_counter() - begun) * 1000)
            page_cpu.append((time.process_time() - begun_cpu) * 1000)
            assert response.status_code == 200, response.status_code
        print(f"an inbox holds {counts['all']} items ({counts['mine']} assigned, {counts['queue']} in the queue, "
              f"{counts['overdue']} overdue); the page shows {len(items)}")
        print(f"load average while measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        for name, timings in (("inbox query + counts, wall", query_ms), ("inbox query + counts, CPU", query_cpu),
                              ("GET / (whole answer), wall", page_ms), ("GET / (whole answer), CPU", page_cpu)):
            print(f"{name:30} median {statistics.median(timings):6.1f} ms   p95 {percentile(timings, 0.95):6.1f} ms"
                  f"   ({len(timings)} samples; target < 100 ms)")
        engine.dispose()


if __name__ == "__main__":
    main()
