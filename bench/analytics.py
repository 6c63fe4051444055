"""How fast the analytics pages' queries answer with 100,000 deals and 20,000 claims.

Fills a database with bulk inserts: a company of 10 sales departments (a head and 20
sellers each) and a claims department under one director; 100,000 deals (typical and
manual) opened over three years, each with its stage moves (forward, skips and steps back
for manual deals, won, lost with a reason), its stage plan, its process instance and one
work item per stage it stayed in, with escalations for the late ones; 20,000 claims with
their resolutions and work items. About 3 million rows.

Then, for a head of department (20 people) and for an admin (everyone), times each
analytics page two ways: the page's queries alone (what the view runs before rendering,
calendar table prepared) and the whole server answer (GET through the Flask app, without
the network). Prints the median and the 95th percentile; the target is a median under
300 ms for the queries of each page.

    python bench/analytics.py [--deals 100000] [--claims 20000] [--samples 11] [--database-url URL]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

from sqlalchemy import insert, select

from engine.models import Escalation, ProcessDefinition, ProcessInstance, User, WorkItem
from engine.runtime import Engine
from processes.crm import CLAIM_REASONS
from processes.models import Claim, Customer, Deal, DealMove, DealStagePlan
from processes.stages import LOST_REASONS, STAGE_CODES, STAGES, move_direction, stage_index
from processes.system import build_system

LIBRARY = Path(__file__).resolve().parent.parent / "bpmn"
NOW = datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc)
HISTORY = timedelta(days=3 * 365)
DEPARTMENTS, SELLERS_PER_DEPARTMENT, OFFICERS, CUSTOMERS = 10, 20, 10, 20_000
PASSWORD = "bench"
CHUNK = 20_000
PAGES = ("funnel", "plan", "claims", "managers", "heatmap")


def fill(engine: Engine, deals: int, claims: int, rng: random.Random) -> None:
    from webui.auth import hash_password

    password_hash = hash_password(PASSWORD)
    engine.add_user("admin", "Admin", roles=["admin"], password_hash=password_hash, locale="en")
    engine.add_user("director", "Director", roles=["employee", "manager"], password_hash=password_hash, locale="en")
    sellers, officers = [], [f"officer{n:02}" for n in range(OFFICERS)]
    for d in range(DEPARTMENTS):
        head = f"head{d:02}"
        engine.add_user(head, head.title(), roles=["employee", "manager"], manager="director",
                        password_hash=password_hash, locale="en")
        members = [f"seller{d:02}{n:02}" for n in range(SELLERS_PER_DEPARTMENT)]
        for username in members:
            engine.add_user(username, username.title(), manager=head, password_hash=password_hash, locale="en")
        engine.add_group(f"sales{d:02}", f"Sales {d}", head=head, members=members)
        sellers += members
    engine.add_user("claimshead", "Claims Head", roles=["employee", "manager"], manager="director",
                    password_hash=password_hash, locale="en")
    for username in officers:
        engine.add_user(username, username.title(), manager="claimshead", password_hash=password_hash, locale="en")
    engine.add_group("claims", "Claims", head="claimshead", members=officers)
    engine.add_group("heads", "Heads", members=[f"head{d:02}" for d in range(DEPARTMENTS)] + ["claimshead"])
    engine.add_group("warehouse", "Warehouse")
    engine.deploy([LIBRARY])
    with engine.reading() as session:
        users = dict(session.execute(select(User.username, User.id)).all())
        definitions = {key: id_ for key, id_ in session.execute(select(ProcessDefinition.key, ProcessDefinition.id))}

    tables: dict[type, list[dict]] = {model: [] for model in (
        Customer, ProcessInstance, Deal, DealStagePlan, DealMove, WorkItem, Escalation, Claim)}
    tables[Customer] = [{"id": n, "kind": "organisation", "partner_role": "customer", "name": f"Customer {n}",
                         "status": "existing", "phones": [], "emails": [], "addresses": [], "properties": {},
                         "created_at": NOW - HISTORY} for n in range(1, CUSTOMERS + 1)]
    ids = {"move": 0, "item": 0}

    def work_item(instance_id: int, task_spec: str, name: str, stage: str, assignee: int | None,
                  created: datetime, due: datetime, finished: datetime | None) -> None:
        ids["item"] += 1
        item_id = ids["item"]
        tables[WorkItem].append({
            "id": item_id, "instance_id": instance_id, "task_id": f"bench-{item_id}", "task_spec": task_spec,
            "name": name, "stage": stage, "assignee_id": assignee, "priority": 50,
            "status": "completed" if finished else "open", "version": 1, "created_at": created, "due_at": due,
            "completed_at": finished, "completed_by_id": assignee if finished else None})
        # The ladder's rungs that fired: the breach at the deadline, the head four hours later.
        late_until = finished or NOW
        rungs = [(level, hours) for level, hours in (("breach", 0), ("head", 4))
                 if late_until > due + timedelta(hours=hours)]
        for level, hours in rungs if assignee is not None else []:
            tables[Escalation].append({
                "dedupe_key": f"item:{item_id}:{level}", "instance_id": instance_id, "work_item_id": item_id,
                "level": level, "due_at": due + timedelta(hours=hours), "deadline": due, "status": "done",
                "settings": {}, "fired_at": due + timedelta(hours=hours, minutes=1), "assignee_id": assignee})

    for deal_id in range(1, deals + 1):
        kind = "typical" if rng.random() < 0.6 else "manual"
        process_key = "typical_sale" if kind == "typical" else "manual_deal"
        curator = users[rng.choice(sellers)]
        created = NOW - HISTORY + timedelta(seconds=rng.randrange(int(HISTORY.total_seconds())))
        tables[ProcessInstance].append({
            "id": deal_id, "definition_id": definitions[process_key], "process_key": process_key,
            "business_key": f"D-{deal_id:06d}", "status": "running", "state": "", "version": 1,
            "started_at": created, "updated_at": created})
        deal = {"id": deal_id, "number": f"D-{deal_id:06d}", "kind": kind, "title": f"Deal {deal_id}",
                "customer_id": rng.randrange(1, CUSTOMERS + 1), "curator_id": curator,
                "amount": Decimal(rng.randrange(10_000, 5_000_000)), "status": "in_progress",
                "current_stage": None, "stage_entered_at": None, "lost_reason": None, "instance_id": deal_id,
                "created_at": created, "closed_at": None, "furthest_stage": None}
        tables[Deal].append(deal)
        first = 0 if kind == "typical" else rng.choice((0, 0, 0, 1, 2))
        planned_end = created.date()
        for stage in STAGES[first:]:
            planned_end += timedelta(days=stage.planned_days)
            tables[DealStagePlan].append({"deal_id": deal_id, "stage": stage.code, "planned_end": planned_end})
        at, stage, target, entered = created, None, STAGE_CODES[first], set()
        while True:
            ids["move"] += 1
            if stage is not None:  # what processes.crm derives for the funnel when it records a move
                previous = tables[DealMove][-1]
                previous["stay_days"] = (at - previous["moved_at"]).total_seconds() / 86400
            if target != "lost" and (deal["furthest_stage"] is None
                                     or stage_index(target) > stage_index(deal["furthest_stage"])):
                deal["furthest_stage"] = target
            tables[DealMove].append({"id": ids["move"], "deal_id": deal_id, "from_stage": stage, "to_stage": target,
                                     "direction": move_direction(stage, target), "moved_by": None, "moved_at": at,
                                     "stay_days": None, "first_entry": target not in entered, "deal_kind": kind,
                                     "deal_created_at": created})
            entered.add(target)
            if target in ("won", "lost"):
                deal.update(status=target, closed_at=at,
                            lost_reason=rng.choice(list(LOST_REASONS)) if target == "lost" else None)
                break
            stage = deal["current_stage"] = target
            deal["stage_entered_at"] = at
            planned = timedelta(days=STAGES[STAGE_CODES.index(stage)].planned_days)
            left = at + planned * rng.lognormvariate(-0.3, 0.5)  # a quarter of the stays run late
            task = stage if kind == "typical" else f"work_{stage}"
            work_item(deal_id, task, STAGES[STAGE_CODES.index(stage)].label, STAGES[STAGE_CODES.index(stage)].label,
                      curator, at, at + planned, left if left < NOW else None)
            if left >= NOW:
                break
            at, roll, position = left, rng.random(), STAGE_CODES.index(stage)
            if roll < 0.08:
                target = "lost"
            elif position == len(STAGES) - 1:
                target = "won"
            elif kind == "manual" and roll < 0.16 and position + 2 < len(STAGES):
                target = STAGE_CODES[position + 2]
            elif kind == "manual" and roll < 0.2 and position > 0:
                target = STAGE_CODES[position - 1]
            else:
                target = STAGE_CODES[position + 1]

    calendar = engine.working_calendar
    departments = [f"sales{d:02}" for d in range(DEPARTMENTS)] + ["warehouse", None]
    for claim_id in range(1, claims + 1):
        instance_id = deals + claim_id
        registered = NOW - HISTORY + timedelta(seconds=rng.randrange(int(HISTORY.total_seconds())))
        due = calendar.add_working_days(registered, 10)
        officer = rng.choice(officers)
        tables[ProcessInstance].append({
            "id": instance_id, "definition_id": definitions["claim_investigation"],
            "process_key": "claim_investigation", "business_key": f"CL-{claim_id:06d}", "status": "running",
            "state": "", "version": 1, "started_at": registered, "updated_at": registered})
        triaged = registered + timedelta(hours=rng.uniform(1, 30))
        work_item(instance_id, "triage", "Triage the claim", "Triage", None, registered, registered + timedelta(days=1),
                  triaged if triaged < NOW else None)
        resolved = registered + timedelta(days=rng.uniform(1, 25))
        done = resolved < NOW
        closed = resolved + timedelta(days=rng.uniform(0.1, 3))
        if triaged < NOW:
            work_item(instance_id, "resolve", "Resolve the claim", "Resolution", users[officer], triaged, due,
                      resolved if done else None)
        guilty = rng.choice(departments)
        tables[Claim].append({
            "id": claim_id, "number": f"CL-{claim_id:06d}", "customer_id": rng.randrange(1, CUSTOMERS + 1),
            "complainant": "Complainant", "guilty_department": guilty,
            "guilty_employee_id": users[rng.choice(sellers)] if guilty and guilty.startswith("sales") else None,
            "essence": "Essence", "reason": rng.choice(CLAIM_REASONS), "deal_id": None,
            "status": "closed" if done and closed < NOW else "resolution" if done else "investigation",
            "responsible_officer": officer if triaged < NOW else None, "registered_at": registered,
            "registered_by": None, "response_due_at": due,
            "resolution": rng.choice(("satisfied", "partly_satisfied", "rejected")) if done else None,
            "resolved_at": resolved if done else None, "closed_at": closed if done and closed < NOW else None,
            "instance_id": instance_id})

    with engine.db.begin() as connection:
        for model, rows in tables.items():
            for start in range(0, len(rows), CHUNK):
                connection.execute(insert(model), rows[start:start + CHUNK])
    # The steady state of a database in use: fresh statistics, as a periodic ANALYZE
    # (SQLite) or autovacuum (PostgreSQL) keep them, and on PostgreSQL the visibility map
    # that autovacuum keeps too, without which an index-only scan visits the table anyway.
    if engine.db.dialect.name == "postgresql":
        with engine.db.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            # A server for throwaway data (scripts/pg-throwaway) commits asynchronously, and
            # VACUUM cannot mark rows all-visible before their commit's WAL is flushed: a
            # synchronous commit (ANALYZE's) flushes it first.
            connection.exec_driver_sql("SET synchronous_commit = on")
            connection.exec_driver_sql("ANALYZE")
            connection.exec_driver_sql("VACUUM")
            connection.exec_driver_sql("RESET synchronous_commit")
    else:
        with engine.db.begin() as connection:
            connection.exec_driver_sql("ANALYZE")
    print(", ".join(f"{len(rows):,} {model.__tablename__}" for model, rows in tables.items()))


def timed(action: Callable[[], object], samples: int) -> tuple[list[float], list[float]]:
    """Wall and CPU milliseconds of ``samples`` runs, after one run that warms the caches."""
    action()
    wall, cpu = [], []
    for _ in range(samples):
        begun, begun_cpu = time.perf_counter(), time.process_time()
        action()
        wall.append((time.perf_counter() - begun) * 1000)
        cpu.append((time.process_time() - begun_cpu) * 1000)
    return wall, cpu


def page_queries(app, user_id: int, page: str) -> Callable[[], object]:
    """What the page's view runs before it renders: its filters, the viewer's scope, the queries."""
    from flask_login import login_user

    from webui.access import person_by_id
    from webui.analytics import claims, funnel, heatmap, managers, plan
    from webui.analytics.filters import filters_from_request, last_month, last_twelve_months

    runs = {
        "funnel": lambda: funnel.funnel_figures(filters_from_request(last_twelve_months)),
        "plan": lambda: plan.plan_figures(filters_from_request(last_twelve_months), plan.LIST_LIMIT),
        "claims": lambda: claims.claims_figures(filters_from_request(last_twelve_months)),
        "managers": lambda: managers.managers_figures(filters_from_request(last_month)),
        "heatmap": lambda: heatmap.heatmap_figures(filters_from_request(last_twelve_months), heatmap.HEAT_ITEMS_LIMIT),
    }

    def run() -> object:
        with app.test_request_context(f"/analytics/{page}"):
            login_user(person_by_id(user_id))
            return runs[page]()

    return run


def signed_in(app, username: str):
    client = app.test_client()
    response = client.post("/login", data={"username": username, "password": PASSWORD})
    assert response.status_code == 302, response.status_code
    return client


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def rows(report: Iterator[tuple[str, list[float]]]) -> None:
    for name, timings in report:
        print(f"  {name:38} median {statistics.median(timings):7.1f} ms   p95 {percentile(timings, 0.95):7.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deals", type=int, default=100_000)
    parser.add_argument("--claims", type=int, default=20_000)
    parser.add_argument("--samples", type=int, default=11)
    parser.add_argument("--database-url", help="an empty database (default: a new SQLite file)")
    args = parser.parse_args()

    from webui import create_app

    with tempfile.TemporaryDirectory() as folder:
        system = build_system(args.database_url or f"sqlite:///{folder}/bench.db", clock=lambda: NOW, webhooks=None)
        system.init_db()
        engine = system.engine
        started = time.perf_counter()
        fill(engine, args.deals, args.claims, random.Random(2026))
        print(f"{args.deals:,} deals and {args.claims:,} claims on {engine.db.dialect.name} "
              f"(filled in {time.perf_counter() - started:.1f} s)")
        app = create_app({"SECRET_KEY": "bench", "WTF_CSRF_ENABLED": False, "BABEL_DEFAULT_TIMEZONE": "Europe/Moscow"},
                         engine=engine)
        for username, who in (("head00", "a head of department (20 people)"), ("admin", "an admin (everyone)")):
            print(f"\n{who}, {args.samples} samples each; target: queries' median < 300 ms")
            client = signed_in(app, username)
            with engine.reading() as session:
                user_id = session.scalar(select(User.id).where(User.username == username))
            for page in PAGES:
                query_wall, query_cpu = timed(page_queries(app, user_id, page), args.samples)

                def get(page: str = page) -> None:
                    response = client.get(f"/analytics/{page}")
                    assert response.status_code == 200, response.status_code

                page_wall, _page_cpu = timed(get, args.samples)
                rows(iter([(f"{page}: queries, wall", query_wall), (f"{page}: queries, CPU", query_cpu),
                           (f"{page}: GET /analytics/{page}, wall", page_wall)]))
        print(f"\nload average while measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        engine.dispose()


if __name__ == "__main__":
    main()
