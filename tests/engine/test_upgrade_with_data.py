"""An existing database upgrades with ``crmflow init-db`` without loss.

A database is brought to the schema of commit 05685a4 (engine revision 0006, processes
0003) and filled with plain SQL the way that commit's code wrote its rows: every table,
every status and kind, the history of every type, and process instances whose states
that commit's engine wrote (``tests/data/upgrade/states_0006.json``). Then the real
``Engine.init_db()`` upgrades it to the newest revisions, whatever they are: a
revision added later is covered by these tests as it stands. Every row must survive with
its values, the engine and the CRM facade must go on with the work, and a downgrade to
that schema and an upgrade again must round-trip.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from alembic import command
from click.testing import CliRunner
from sqlalchemy import Connection, inspect, select, text
from sqlalchemy.exc import IntegrityError, StatementError

from engine import migrations as engine_migrations
from engine.db import Base, create_db_engine
from engine.migrations import MigrationRefused
from engine.models import EventType, ItemStatus, Role, WorkItem
from engine.runtime.assignment import calendar_due
from processes import migrations as processes_migrations
from processes.models import DealStatus, MoveDirection
from processes.system import build_system
from support import DATA
from support.engine import Clock
from webui.cli import command_line

ENGINE_BEFORE, PROCESSES_BEFORE = "0006", "0003"
CAPTURED = json.loads((DATA / "upgrade" / "states_0006.json").read_text())
T0 = datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc)
HOUR, DAY = timedelta(hours=1), timedelta(days=1)
# Columns the upgrade moves elsewhere, each checked where it went.
MOVED = {("users", "roles")}
ROLES_BEFORE = {1: "employee,manager", 2: "employee", 3: "employee", 4: "designer", 5: "admin,employee", 6: ""}

# (instance, work item, type, actor, task spec, detail): every type the history held.
HISTORY = [
    (1, None, "instance_started", "ann", None, {"version": 1, "business_key": "crmflow-pending-9ed9ead0e99041"}),
    (1, None, "task_completed", "ann", "start", {"name": "Deal opened"}),
    (1, 1, "work_item_created", None, "first_contact",
     {"assignee": None, "due_at": (T0 + 2 * DAY).isoformat(), "candidate_groups": ["sales"],
      "candidate_users": []}),
    (1, None, "stage_entered", None, None, {"stage": "First contact"}),
    (1, 1, "work_item_claimed", "bob", "first_contact", None),
    (1, 1, "work_item_reassigned", "boss", "first_contact", {"from": "bob", "to": "ann", "reason": "Holiday"}),
    (1, None, "timer_fired", None, "wait_for_answer", {"timer": "wait_for_answer"}),
    (1, 1, "escalated", "escalation", "first_contact", {"level": "reminder", "deadline": (T0 + 2 * DAY).isoformat()}),
    (2, None, "instance_started", "ann", None, {"version": 1, "business_key": "crmflow-pending-9665d757ef2f56"}),
    (2, 2, "work_item_created", None, "do_task", {"assignee": "ann"}),
    (2, 2, "work_item_completed", "ann", "do_task", {"data": {"result": "Surveyed"}}),
    (2, 4, "work_item_cancelled", None, "review", None),
    (2, None, "task_completed", "ann", "do_task", {"name": "Project task"}),
    (2, None, "stage_left", None, None, {"stage": "Project task"}),
    (2, None, "instance_completed", "ann", None, None),
    (3, None, "instance_started", "ann", None, {"version": 1, "business_key": "crmflow-pending-599f135a86354f"}),
    (3, 3, "work_item_completed", "ann", "work_first_contact",
     {"data": {"next_stage": "won", "move_reason": "Signed at the first meeting", "stage_notes": None}}),
    (3, None, "instance_completed", "ann", None, None),
]


# -- the database as 05685a4 left it ---------------------------------------------------------


def stored(dialect: str, value):
    """A value as 05685a4's column types bound it: SQLite keeps UTC moments as naive text,
    dates as ISO text and amounts as floats; JSON is text on both."""
    if isinstance(value, datetime):
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f") if dialect == "sqlite" else value
    if isinstance(value, date):
        return value.isoformat() if dialect == "sqlite" else value
    if isinstance(value, Decimal):
        return float(value) if dialect == "sqlite" else value
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return value


def insert(connection: Connection, table: str, *rows: dict) -> None:
    columns = list(rows[0])
    json_columns = {c for c in columns if any(isinstance(row[c], (dict, list)) for row in rows)}
    # PostgreSQL takes text for a json column only through a cast; SQLite's JSON is text.
    cast = "CAST(:{} AS json)" if connection.dialect.name == "postgresql" else ":{}"
    values = ", ".join(cast.format(c) if c in json_columns else f":{c}" for c in columns)
    names = ", ".join(f'"{c}"' for c in columns)
    connection.execute(text(f"INSERT INTO {table} ({names}) VALUES ({values})"),
                       [{c: stored(connection.dialect.name, row[c]) for c in columns} for row in rows])


def fill(connection: Connection) -> None:
    """A small company as 05685a4 wrote it: the sale at its first step is the one that goes on."""
    definitions = CAPTURED["definitions"]
    sale, task, manual = (CAPTURED["instances"][key] for key in ("typical_sale", "project_task", "manual_deal"))

    users = [
        (1, "boss", "Boris Head", "boss@example.test", None, "ru"),
        (2, "ann", "Anna Sales", "ann@example.test", 1, "en"),
        (3, "bob", "Bob Sales", None, 1, "ru"),
        (4, "dora", "Dora Designer", None, None, "ru"),
        (5, "root", "Root Admin", None, None, "en"),
        (6, "ghost", "Left the company", None, 1, "ru"),
    ]
    insert(connection, "users", *(
        {"id": id_, "username": name, "display_name": display, "email": email,
         "password_hash": f"scrypt:32768:8:1$salt{id_}$" + "ab" * 32, "roles": ROLES_BEFORE[id_],
         "active": name != "ghost", "manager_id": manager, "locale": locale, "created_at": T0 - 30 * DAY}
        for id_, name, display, email, manager, locale in users))
    insert(connection, "groups", {"id": 1, "name": "sales", "display_name": "Sales", "head_id": 1},
           {"id": 2, "name": "heads", "display_name": "Heads of department", "head_id": None})
    insert(connection, "memberships", {"user_id": 2, "group_id": 1}, {"user_id": 3, "group_id": 1},
           {"user_id": 1, "group_id": 2})
    insert(connection, "process_definitions", *(
        {"id": id_, "key": d["key"], "version": d["version"], "name": d["name"], "content_hash": d["content_hash"],
         "sources": d["sources"], "deployed_at": T0 - DAY, "deployed_by": "dora"}
        for id_, d in enumerate(definitions, start=1)))
    insert(connection, "process_instances",
           {"id": 1, "definition_id": 1, "process_key": "typical_sale", "business_key": "D-000001",
            "status": sale["status"], "state": sale["state"], "version": sale["version"],
            "current_stage": "First contact", "started_by": "ann", "started_at": T0, "updated_at": T0,
            "ended_at": None, "next_wakeup_at": None},
           {"id": 2, "definition_id": 2, "process_key": "project_task", "business_key": "D-000002",
            "status": task["status"], "state": task["state"], "version": task["version"], "current_stage": None,
            "started_by": "ann", "started_at": T0, "updated_at": T0 + HOUR, "ended_at": T0 + HOUR,
            "next_wakeup_at": None},
           {"id": 3, "definition_id": 3, "process_key": "manual_deal", "business_key": "D-000003",
            "status": manual["status"], "state": manual["state"], "version": manual["version"],
            "current_stage": None, "started_by": "ann", "started_at": T0, "updated_at": T0 + HOUR,
            "ended_at": T0 + HOUR, "next_wakeup_at": None})

    def item(id_, instance_id, task_id, task_spec, name, status, version, assignee, **more):
        return {"id": id_, "instance_id": instance_id, "task_id": task_id, "task_spec": task_spec, "name": name,
                "stage": more.get("stage", name), "lane": "sales", "assignee_id": assignee, "priority": 50,
                "status": status, "version": version, "created_at": T0, "due_at": T0 + 2 * DAY,
                "completed_at": more.get("completed_at"), "completed_by_id": more.get("completed_by_id"),
                "submitted_data": more.get("submitted_data")}

    insert(connection, "work_items",
           item(1, 1, sale["task_id"], sale["task_spec"], sale["task_name"], "open", 1, 2),
           item(2, 2, task["task_id"], task["task_spec"], task["task_name"], "completed", 2, 2,
                completed_at=T0 + HOUR, completed_by_id=2, submitted_data={"result": "Surveyed"}),
           item(3, 3, manual["task_id"], manual["task_spec"], manual["task_name"], "completed", 2, 2,
                completed_at=T0 + HOUR, completed_by_id=2,
                submitted_data={"next_stage": "won", "move_reason": "Signed at the first meeting"}),
           item(4, 2, "0b6c1d0e-6f0c-4d8e-9b8f-3a1c2b4d5e6f", "review", "Review the survey", "cancelled", 2, None,
                completed_at=T0 + HOUR))
    insert(connection, "work_item_candidates", *(
        {"work_item_id": item_id, "kind": kind, "name": name}
        for item_id, kind, name in [(1, "group", "sales"), (2, "group", "sales"), (3, "group", "sales"),
                                    (4, "group", "heads"), (4, "user", "bob")]))

    insert(connection, "history_events", *(
        {"id": id_, "instance_id": instance_id, "work_item_id": item_id, "type": type_, "at": T0 + id_ * timedelta(minutes=1),
         "actor": actor, "task_spec": spec, "detail": detail}
        for id_, (instance_id, item_id, type_, actor, spec, detail) in enumerate(HISTORY, start=1)))
    # A JSON null, as the ORM writes a None detail, beside the SQL NULLs above.
    connection.execute(text("UPDATE history_events SET detail = 'null' WHERE type = 'instance_completed'"))

    settings = {"channels": ["in_app", "email"], "teams": ["sales"]}
    insert(connection, "escalations", *(
        {"id": id_, "dedupe_key": key, "instance_id": instance_id, "work_item_id": item_id, "level": level,
         "due_at": due, "deadline": T0 + 2 * DAY, "status": status, "settings": settings,
         "fired_at": T0 + 1.6 * DAY if status == "done" else None, "fired_by": "worker-1" if status == "done" else None,
         "outcome": {"notified": ["ann"], "channels": ["in_app"]} if status == "done" else None,
         "assignee_id": 2 if status == "done" else None}
        for id_, key, instance_id, item_id, level, due, status in [
            (1, "item:1:reminder", 1, 1, "reminder", T0 + 1.6 * DAY, "done"),
            (2, "item:1:breach", 1, 1, "breach", T0 + 2 * DAY, "pending"),
            (3, "item:1:head", 1, 1, "head", T0 + 2 * DAY + 4 * HOUR, "pending"),
            (4, "item:2:reminder", 2, 2, "reminder", T0 + 1.6 * DAY, "skipped"),
            (5, "item:2:breach", 2, 2, "breach", T0 + 2 * DAY, "cancelled"),
            (6, "instance:1:response:breach", 1, None, "breach", T0 + 5 * DAY, "pending"),
        ]))
    insert(connection, "instance_deadlines",
           {"id": 1, "instance_id": 1, "name": "response", "due_at": T0 + 5 * DAY, "responsible": "ann",
            "team": "sales", "created_at": T0, "met_at": None})
    insert(connection, "notifications", *(
        {"id": id_, "user_id": user_id, "kind": "escalation.reminder", "subject": "First contact is due soon",
         "body": "D-000001: First contact is due on 25 November.", "instance_id": 1, "work_item_id": 1,
         "escalation_id": 1, "created_at": T0 + 1.6 * DAY, "read_at": read_at}
        for id_, user_id, read_at in [(1, 2, None), (2, 1, T0 + 1.7 * DAY)]))
    insert(connection, "outbox_messages", *(
        {"id": id_, "channel": channel, "recipient": recipient, "subject": "First contact is due soon",
         "body": "D-000001", "notification_id": 1 if channel == "email" else None, "status": status,
         "attempts": attempts, "next_attempt_at": T0 + 1.6 * DAY, "created_at": T0 + 1.6 * DAY,
         "claimed_at": T0 + 1.6 * DAY if status != "pending" else None,
         "claimed_by": "worker-1" if status != "pending" else None,
         "sent_at": T0 + 1.6 * DAY if status == "sent" else None, "result": result}
        for id_, channel, recipient, status, attempts, result in [
            (1, "email", "ann@example.test", "pending", 0, None),
            (2, "email", "ann@example.test", "sending", 1, None),
            (3, "email", "boss@example.test", "sent", 1, "250 OK"),
            (4, "webhook", "https://hooks.example.test/crm", "failed", 5, "HTTP 503"),
            (5, "email", "bob@example.test", "uncertain", 1, "the sender stopped before recording the result"),
        ]))
    insert(connection, "api_tokens", *(
        {"id": id_, "user_id": 2, "name": name, "token_hash": f"{id_:064x}", "prefix": f"cf_{id_:04d}",
         "created_at": T0, "expires_at": T0 + 90 * DAY if id_ == 2 else None, "last_used_at": T0 + HOUR,
         "revoked_at": T0 + DAY if id_ == 2 else None, "revoked_by": "root" if id_ == 2 else None}
        for id_, name in [(1, "laptop"), (2, "old script")]))
    insert(connection, "scheduler_heartbeats", {"worker": "host-1:4242", "started_at": T0, "beat_at": T0 + HOUR})

    def customer(id_, kind, role, name, status, curator, **more):
        return {"id": id_, "kind": kind, "partner_role": role, "name": name, "inn": more.get("inn"), "status": status,
                "curator_id": curator, "relationship_stage": more.get("relationship_stage"),
                "importance": more.get("importance"), "category": more.get("category"),
                "phones": more.get("phones", []), "emails": more.get("emails", []),
                "addresses": more.get("addresses", []), "properties": more.get("properties", {}),
                "created_at": T0 - 10 * DAY, "created_by": "ann"}

    insert(connection, "customers",
           customer(1, "organisation", "customer", "OOO Romashka", "existing", 2, inn="7707083893",
                    relationship_stage="active", importance="A", category="Industry", phones=["74951234567"],
                    emails=["info@romashka.test"], addresses=[{"kind": "legal", "text": "Moscow, Tverskaya 1"}],
                    properties={"source": "import"}),
           customer(2, "person", "supplier", "Ivan Petrov", "potential", None),
           customer(3, "organisation", "competitor", "OOO Vasilek", "former", 3, importance="C"),
           customer(4, "person", "other", "Maria Ivanova", "existing", 2))
    insert(connection, "contact_persons",
           {"id": 1, "customer_id": 1, "name": "Olga Smirnova", "position": "Buyer", "decision_role": "decision maker",
            "phones": ["79161234567"], "emails": ["olga@romashka.test"], "birthday": date(1985, 4, 12)})
    insert(connection, "customer_keys", *(
        {"id": id_, "customer_id": customer_id, "kind": kind, "value": value}
        for id_, (customer_id, kind, value) in enumerate([
            (1, "name", "romashka"), (1, "inn", "7707083893"), (1, "phone", "74951234567"),
            (1, "email", "info@romashka.test"), (1, "phone", "79161234567"), (2, "name", "ivan petrov"),
        ], start=1)))

    def deal(id_, kind, title, customer_id, curator, amount, status, stage, instance_id, **more):
        return {"id": id_, "number": f"D-{id_:06d}", "kind": kind, "title": title, "customer_id": customer_id,
                "curator_id": curator, "amount": amount, "status": status, "current_stage": stage,
                "stage_entered_at": T0 if stage else None, "lost_reason": more.get("lost_reason"),
                "lost_comment": more.get("lost_comment"), "instance_id": instance_id, "created_at": T0,
                "created_by": "ann", "closed_at": T0 + HOUR if status != "in_progress" else None,
                "furthest_stage": more.get("furthest_stage", stage)}

    # Deals 5 and 6 leave out their finished processes: nothing of the upgrade reads that link.
    insert(connection, "deals",
           deal(1, "typical", "Pumps", 1, 2, Decimal("120000.00"), "in_progress", "first_contact", 1),
           deal(2, "project", "Warehouse project", 1, 2, None, "in_progress", None, None),
           deal(3, "manual", "Spare parts", 1, 2, Decimal("5000.50"), "won", "first_contact", 3, furthest_stage="won"),
           deal(4, "project", "Old tender", 3, 3, Decimal("990.00"), "lost", None, None, lost_reason="price",
                lost_comment="They chose a cheaper offer"),
           deal(5, "manual", "Valves", 4, 3, None, "lost", "first_contact", None, lost_reason="no_budget",
                furthest_stage="needs_analysis"),
           deal(6, "typical", "Compressors", 1, 2, Decimal("75000.00"), "won", "shipment", None, furthest_stage="won"))
    plan_end = T0.date()
    plan = []
    for stage, days in [("first_contact", 2), ("needs_analysis", 5), ("classification", 2), ("commercial_offer", 3),
                        ("negotiation", 7), ("contract", 3), ("payment", 10), ("shipment", 5)]:
        plan_end += timedelta(days=days)
        plan.append({"deal_id": 1, "stage": stage, "planned_end": plan_end})
    insert(connection, "deal_stage_plans", *plan)
    moves = [
        (1, None, "first_contact", "start", None, None, None, True, "typical"),
        (3, None, "first_contact", "start", None, None, 0.0, True, "manual"),
        (3, "first_contact", "won", "skip", "ann", "Signed at the first meeting", None, True, "manual"),
        (5, None, "first_contact", "start", None, None, 1.5, True, "manual"),
        (5, "first_contact", "needs_analysis", "forward", "bob", None, 2.25, True, "manual"),
        (5, "needs_analysis", "first_contact", "back", "bob", "The buyer changed", 3.0, False, "manual"),
        (5, "first_contact", "lost", "lost", "bob", "No budget", None, True, "manual"),
        (6, None, "shipment", "start", None, None, 4.0, True, "typical"),
        (6, "shipment", "won", "won", "ann", None, None, True, "typical"),
    ]
    insert(connection, "deal_moves", *(
        {"id": id_, "deal_id": deal_id, "from_stage": from_stage, "to_stage": to_stage, "direction": direction,
         "moved_by": by, "moved_at": T0 + id_ * HOUR, "reason": reason, "stay_days": stay, "first_entry": first,
         "deal_kind": kind, "deal_created_at": T0}
        for id_, (deal_id, from_stage, to_stage, direction, by, reason, stay, first, kind)
        in enumerate(moves, start=1)))
    insert(connection, "deal_tasks",
           {"id": 1, "deal_id": 2, "instance_id": 2, "title": "Survey the site", "description": None, "owner": "ann",
            "due_at": T0 + 3 * DAY, "result": "Surveyed", "done_at": T0 + HOUR, "created_by": "ann"})

    def claim(id_, status, **more):
        return {"id": id_, "number": f"C-{id_:06d}", "customer_id": 1, "complainant": "Olga Smirnova",
                "guilty_department": more.get("guilty_department"), "guilty_employee_id": more.get("guilty"),
                "essence": f"Pump {id_} leaks", "reason": "quality", "deal_id": 1, "status": status,
                "responsible_officer": more.get("officer"), "registered_at": T0 - id_ * DAY,
                "registered_by": more.get("registered_by"), "response_due_at": T0 + (10 - id_) * DAY,
                "resolution": more.get("resolution"), "outcome": more.get("outcome"),
                "resolved_at": more.get("resolved_at"), "closed_at": more.get("closed_at"), "instance_id": None}

    # Claims leave out their processes, as deals 5 and 6 do.
    insert(connection, "claims",
           claim(1, "triage"),
           claim(2, "investigation", guilty_department="warehouse", guilty=3, officer="boss", registered_by="ann"),
           claim(3, "resolution", officer="boss", registered_by="ann"),
           claim(4, "informing", officer="boss", resolution="partly_satisfied", outcome="Half of the price back",
                 resolved_at=T0 - DAY),
           claim(5, "closed", officer="boss", resolution="satisfied", outcome="Replaced the pump",
                 resolved_at=T0 - 2 * DAY, closed_at=T0 - DAY))
    insert(connection, "claim_activities",
           {"id": 1, "claim_id": 2, "work_item_id": None, "owner": "bob", "due_on": T0.date() + 2 * DAY,
            "description": "Check the batch", "result": None, "done_at": None},
           {"id": 2, "claim_id": 2, "work_item_id": 2, "owner": "ann", "due_on": T0.date() + DAY,
            "description": "Ask the customer for photos", "result": "Photos received", "done_at": T0 + HOUR})
    insert(connection, "claim_attachments",
           {"id": 1, "claim_id": 2, "filename": "leak.jpg", "content_type": "image/jpeg", "size": 6,
            "content": b"\xff\xd8\xff\xe0\x00\x10"})
    insert(connection, "interactions", *(
        {"id": id_, "customer_id": 1, "kind": kind, "status": status, "subject": subject, "notes": None,
         "at": T0 + (id_ - 3) * DAY, "employee": "ann", "contact_person_id": 1 if id_ < 3 else None,
         "deal_id": 1 if id_ % 2 else None, "claim_id": 2 if id_ == 4 else None, "created_at": T0}
        for id_, kind, status, subject in [
            (1, "meeting", "done", "First meeting"), (2, "call_in", "done", "She called about prices"),
            (3, "call_out", "cancelled", "Call back"), (4, "email", "done", "Photos of the leak"),
            (5, "letter", "planned", "Contract by post"), (6, "note", "done", "Prefers mornings"),
        ]))
    insert(connection, "curator_changes",
           {"id": 1, "customer_id": 1, "from_user": "bob", "to_user": "ann", "changed_by": "boss", "changed_at": T0,
            "reason": "Bob moved to claims", "moved_work_items": [1]})
    insert(connection, "analytics_calendar_days", *(
        {"calendar": "3f2a9c", "day": T0.date() + n * DAY, "starts_at": T0 - 12 * HOUR + n * DAY,
         "working_day_number": n + 1}
        for n in range(2)))

    if connection.dialect.name == "postgresql":
        # As if the rows had taken their ids from the sequences, as the code's inserts do.
        for table, column in connection.execute(text(
                "SELECT table_name, column_name FROM information_schema.columns "
                "WHERE table_schema = current_schema() AND column_default LIKE 'nextval(%'")).all():
            connection.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), "
                                    f"(SELECT max({column}) FROM {table}))"))


def filled_at_05685a4(url: str):
    """A new database at 05685a4's revisions, filled; the caller disposes of the engine."""
    db = create_db_engine(url)
    engine_migrations.upgrade(db, ENGINE_BEFORE)
    processes_migrations.upgrade(db, PROCESSES_BEFORE)
    with db.begin() as connection:
        fill(connection)
    return db


@pytest.fixture
def old_database(database_url):
    db = filled_at_05685a4(database_url)
    yield database_url, db
    db.dispose()


# -- reading it back -----------------------------------------------------------------------------


def snapshot(db) -> dict[str, list[dict]]:
    """Every row of every table as the driver returns it, in primary key order."""
    with db.connect() as connection:
        inspector = inspect(connection)
        tables = {}
        for table in inspector.get_table_names():
            if table.endswith("alembic_version"):
                continue
            key = ", ".join(f'"{c}"' for c in inspector.get_pk_constraint(table)["constrained_columns"])
            tables[table] = [dict(row) for row in connection.execute(text(f"SELECT * FROM {table} ORDER BY {key}"))
                             .mappings()]
        return tables


def outline(db) -> dict[str, dict]:
    """Each table's keys, indexes and constraints, as the database reports them."""
    with db.connect() as connection:
        inspector = inspect(connection)

        def listed(items):
            return sorted(json.dumps(item, sort_keys=True, default=str) for item in items)

        return {table: {"primary key": inspector.get_pk_constraint(table)["constrained_columns"],
                        "indexes": listed(inspector.get_indexes(table)),
                        "unique": listed(inspector.get_unique_constraints(table)),
                        "foreign keys": listed(inspector.get_foreign_keys(table)),
                        "checks": listed(inspector.get_check_constraints(table))}
                for table in inspector.get_table_names()}


def kept(before: dict[str, list[dict]], after: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """``after`` cut to the tables and columns of ``before``, less the moved columns (a
    table or column that went missing fails the comparison)."""
    return {table: [{column: row.get(column, "<column gone>") for column in before_rows[0]
                     if (table, column) not in MOVED}
                    for row in after.get(table, [])]
            for table, before_rows in before.items()}


def without_moved(tables: dict[str, list[dict]]) -> dict[str, list[dict]]:
    return {table: [{c: v for c, v in row.items() if (table, c) not in MOVED} for row in rows]
            for table, rows in tables.items()}


def roles_by_user(db) -> dict[int, set[str]]:
    with db.connect() as connection:
        roles: dict[int, set[str]] = {user_id: set() for (user_id,) in connection.execute(text("SELECT id FROM users"))}
        for user_id, role in connection.execute(text("SELECT user_id, role FROM user_roles")):
            roles[user_id].add(role)
        return roles


def revisions(db) -> tuple[str, str]:
    with db.connect() as connection:
        return (connection.scalar(text("SELECT version_num FROM alembic_version")),
                connection.scalar(text("SELECT version_num FROM processes_alembic_version")))


def downgrade_to_before(db) -> None:
    command.downgrade(processes_migrations.alembic_config(db), PROCESSES_BEFORE)
    command.downgrade(engine_migrations.alembic_config(db), ENGINE_BEFORE)


def role_sets(text_by_user: dict[int, str]) -> dict[int, set[str]]:
    return {user_id: {role for role in roles.split(",") if role} for user_id, roles in text_by_user.items()}


# -- the tests -----------------------------------------------------------------------------------


def test_the_data_covers_every_table(old_database):
    _url, db = old_database
    empty = [table for table, rows in snapshot(db).items() if not rows]
    assert empty == []


def test_init_db_upgrades_every_row_unchanged_and_round_trips(old_database):
    url, db = old_database
    before, schema_before = snapshot(db), outline(db)

    system = build_system(url, webhooks=None)
    system.init_db()
    engine = system.engine
    upgraded, schema_upgraded = snapshot(db), outline(db)
    assert kept(before, upgraded) == without_moved(before)
    assert roles_by_user(db) == role_sets(ROLES_BEFORE)

    # Every row reads through the models: no stored value their types refuse.
    with engine.reading() as session:
        for mapper in Base.registry.mappers:
            table = mapper.local_table.name
            assert len(session.scalars(select(mapper.class_)).unique().all()) == len(upgraded[table]), table
    engine.dispose()

    downgrade_to_before(db)
    assert revisions(db) == (ENGINE_BEFORE, PROCESSES_BEFORE)
    downgraded = snapshot(db)
    assert without_moved(downgraded) == without_moved(before)
    assert outline(db) == schema_before
    # The roles come back in the order of Role: the same set, perhaps written in another order.
    assert role_sets({row["id"]: row["roles"] for row in downgraded["users"]}) == role_sets(ROLES_BEFORE)

    system = build_system(url, webhooks=None)
    system.init_db()
    engine = system.engine
    assert snapshot(db) == upgraded
    assert outline(db) == schema_upgraded
    engine.dispose()


def test_the_engine_and_the_crm_go_on_with_the_upgraded_work(old_database):
    url, _db = old_database
    clock = Clock(T0 + DAY)
    system = build_system(url, clock=clock, due_calculator=calendar_due, webhooks=None)
    system.init_db()
    engine, crm = system.engine, system.crm

    assert engine.user("boss").role_set == {Role.EMPLOYEE, Role.MANAGER}
    assert engine.user("root").role_set == {"admin", "employee"}
    assert engine.user("ghost").role_set == frozenset()

    card = crm.customer_card(1)
    assert [(p.kind, p.number, p.status) for p in card.processes] == [
        ("typical", "D-000001", "in_progress"), ("project", "D-000002", "in_progress"),
        ("manual", "D-000003", "won"), ("typical", "D-000006", "won"),
        *((("claim", f"C-{n:06d}", status) for n, status in
           enumerate(["triage", "investigation", "resolution", "informing", "closed"], start=1))),
    ]
    assert card.processes[0].next_step == "First contact"
    assert str(card.summary) == "2 running deals, 2 won, 0 lost, 4 open claims"
    assert [i.kind for i in card.timeline] == ["note", "letter", "email", "call_out", "call_in", "meeting"]

    [item] = engine.work_items(instance_id=1)
    assert (item.id, item.status, item.version, item.assignee.username) == (1, ItemStatus.OPEN, 1, "ann")
    assert sorted((c.kind, c.name) for c in item.candidates) == [("group", "sales")]
    engine.complete(item.id, {"contact_summary": "Wants 40 pumps", "outcome": "continue"}, "ann",
                    expected_version=item.version)

    [following] = engine.work_items(instance_id=1)
    assert following.task_spec == "needs_analysis"
    details = engine.instance(1)
    assert details.instance.version == CAPTURED["instances"]["typical_sale"]["version"] + 1
    recorded = [(e.type, e.work_item_id, e.actor) for e in details.history if e.id > len(HISTORY)]
    assert (EventType.WORK_ITEM_COMPLETED, 1, "ann") in recorded
    assert (EventType.WORK_ITEM_CREATED, following.id, None) in recorded
    deal = crm.deal(1)
    assert (deal.status, deal.current_stage, deal.furthest_stage) == (DealStatus.IN_PROGRESS, "needs_analysis",
                                                                      "needs_analysis")
    first, moved = crm.deal_moves(1)
    assert (moved.from_stage, moved.to_stage, moved.direction, moved.moved_by) == (
        "first_contact", "needs_analysis", MoveDirection.FORWARD, "ann")
    assert first.stay_days == pytest.approx(23 / 24)  # moved in at T0 + 1 h, on at T0 + 1 day
    engine.dispose()


def test_the_upgraded_schema_refuses_values_outside_the_enums(old_database):
    url, db = old_database
    system = build_system(url, webhooks=None)
    system.init_db()
    engine = system.engine
    for statement in ["UPDATE work_items SET status = 'stalled' WHERE id = 1",
                      "INSERT INTO user_roles (user_id, role) VALUES (3, 'sales')",
                      "UPDATE deal_moves SET direction = 'sideways' WHERE id = 1"]:
        with pytest.raises(IntegrityError), db.begin() as connection:
            connection.execute(text(statement))
    # The models refuse them before the database does.
    with pytest.raises(StatementError, match="stalled"), engine.reading() as session:
        session.execute(select(WorkItem.id).where(WorkItem.status == "stalled"))
    engine.dispose()


def test_an_engine_row_outside_its_enum_stops_the_upgrade_and_changes_nothing(old_database):
    url, db = old_database
    with db.begin() as connection:
        connection.execute(text("UPDATE work_items SET status = 'stalled' WHERE id IN (2, 3)"))
        connection.execute(text("UPDATE history_events SET type = 'note_added' WHERE id = 1"))
        connection.execute(text("UPDATE users SET roles = 'employee,sales' WHERE id IN (2, 3)"))
    before = snapshot(db)

    system = build_system(url, webhooks=None)
    engine = system.engine
    with pytest.raises(MigrationRefused) as refused:
        system.init_db()
    message = str(refused.value)
    assert "stopped before revision 0007" in message
    assert "work_items.status: 'stalled' (2 rows)" in message
    assert "history_events.type: 'note_added' (1 row)" in message
    assert "users.roles: 'sales' (users 2, 3)" in message
    assert snapshot(db) == before
    assert revisions(db) == (ENGINE_BEFORE, PROCESSES_BEFORE)

    with db.begin() as connection:
        connection.execute(text("UPDATE work_items SET status = 'completed' WHERE id IN (2, 3)"))
        connection.execute(text("UPDATE history_events SET type = 'instance_started' WHERE id = 1"))
        connection.execute(text("UPDATE users SET roles = 'employee' WHERE id IN (2, 3)"))
    system.init_db()
    assert revisions(db) != (ENGINE_BEFORE, PROCESSES_BEFORE)
    engine.dispose()


def test_a_domain_row_outside_its_enum_stops_the_domain_upgrade(old_database):
    url, db = old_database
    with db.begin() as connection:
        connection.execute(text("UPDATE deals SET status = 'frozen' WHERE id = 2"))
    domain_tables = {m.local_table.name for m in Base.registry.mappers if m.class_.__module__.startswith("processes")}
    before = {table: rows for table, rows in snapshot(db).items() if table in domain_tables}

    system = build_system(url, webhooks=None)
    engine = system.engine
    with pytest.raises(MigrationRefused, match=r"stopped before revision 0004(.|\n)*deals\.status: 'frozen' \(1 row\)"):
        system.init_db()
    assert {table: rows for table, rows in snapshot(db).items() if table in domain_tables} == before
    assert revisions(db)[1] == PROCESSES_BEFORE

    with db.begin() as connection:
        connection.execute(text("UPDATE deals SET status = 'in_progress' WHERE id = 2"))
    system.init_db()
    assert revisions(db)[1] != PROCESSES_BEFORE
    engine.dispose()


def test_crmflow_init_db_names_the_rows_it_cannot_upgrade(sqlite_url, monkeypatch):
    db = filled_at_05685a4(sqlite_url)
    with db.begin() as connection:
        connection.execute(text("UPDATE escalations SET level = 'panic' WHERE id = 3"))
    db.dispose()
    monkeypatch.setenv("CRMFLOW_DATABASE_URL", sqlite_url)

    result = CliRunner().invoke(command_line(), ["init-db"])
    assert result.exit_code == 1
    assert result.output.startswith("Error: The upgrade stopped before revision 0007")
    assert "escalations.level: 'panic' (1 row); allowed: reminder, breach, head" in result.output
    assert "Traceback" not in result.output
