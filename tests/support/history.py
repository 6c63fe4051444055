"""A seeded, generated history of deals, claims, work items and escalations, written straight
into the tables, for the analytics' tests and screenshots."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import insert, select

from engine.deadlines.calendar import WorkingCalendar
from engine.deadlines.escalation import BREACH, HEAD, REMINDER
from engine.models import Escalation, ProcessDefinition, ProcessInstance, User, WorkItem
from processes.analytics import Period
from processes.crm import CLAIM_REASONS
from processes.models import Claim, Customer, Deal, DealMove, DealStagePlan
from processes.stages import LOST_REASONS, STAGE_CODES, STAGES

ZONE = ZoneInfo("Europe/Moscow")
NOW = datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc)
CALENDAR = WorkingCalendar()  # the Russian production calendar: holidays count
HISTORY_START = datetime(2025, 1, 1, tzinfo=timezone.utc)
PERIOD = Period(date(2026, 5, 1), date(2026, 10, 31))
SELLERS = ("ann", "bob", "cat")
RESOLUTIONS = ("satisfied", "partly_satisfied", "rejected")
PROCESSES = {"typical": "typical_sale", "manual": "manual_deal"}
POSITION = {code: index for index, code in enumerate(STAGE_CODES)} | {"won": len(STAGES)}


@dataclass
class History:
    users: dict[str, int]
    deals: list[dict] = field(default_factory=list)
    moves: dict[int, list[dict]] = field(default_factory=lambda: defaultdict(list))
    plans: list[dict] = field(default_factory=list)
    claims: list[dict] = field(default_factory=list)
    items: list[dict] = field(default_factory=list)
    escalations: list[dict] = field(default_factory=list)


def random_moment(rng: random.Random, start: datetime, end: datetime) -> datetime:
    return start + timedelta(seconds=rng.randrange(int((end - start).total_seconds())))


def generate(rng: random.Random, users: dict[str, int], definitions: dict[str, int],
             sellers: Sequence[str] = SELLERS, officer: str = "olga") -> tuple[History, list[dict], list[dict]]:
    """Deals (typical and manual, with forward, skip and back moves, won and lost) of
    ``sellers``, claims, work items and escalations from January 2025 to now."""
    history = History(users)
    customers = [{"id": n, "kind": "organisation", "partner_role": "customer", "name": f"Customer {n}",
                  "status": "existing", "phones": [], "emails": [], "addresses": [], "properties": {},
                  "created_at": HISTORY_START} for n in range(1, 11)]
    instances = []
    move_id = 0
    for deal_id in range(1, 241):
        kind = rng.choice(("typical", "manual"))
        created = random_moment(rng, HISTORY_START, NOW - timedelta(days=1))
        process_key = PROCESSES[kind]
        instances.append({"id": deal_id, "definition_id": definitions[process_key], "process_key": process_key,
                          "business_key": f"D-{deal_id:06d}", "status": "running", "state": "", "version": 1,
                          "started_at": created, "updated_at": created})
        deal = {"id": deal_id, "number": f"D-{deal_id:06d}", "kind": kind, "title": f"Deal {deal_id}",
                "customer_id": rng.randrange(1, 11), "curator_id": users[rng.choice(sellers)],
                "amount": Decimal(rng.randrange(1000, 500000)) / 4, "status": "in_progress", "current_stage": None,
                "stage_entered_at": None, "lost_reason": None, "instance_id": deal_id, "created_at": created,
                "closed_at": None, "furthest_stage": None}
        history.deals.append(deal)
        first = 0 if kind == "typical" else rng.randrange(3)
        end = created.date()
        for stage in STAGES[first:]:
            end += timedelta(days=stage.planned_days)
            history.plans.append({"deal_id": deal_id, "stage": stage.code, "planned_end": end})
        at, stage = created, None
        target = STAGE_CODES[first]
        while True:
            move_id += 1
            direction = "start" if stage is None else (
                "lost" if target == "lost" else "won" if target == "won" else
                "forward" if POSITION[target] == POSITION[stage] + 1 else
                "skip" if POSITION[target] > POSITION[stage] else "back")
            # What processes.crm derives for the funnel when it records a move.
            earlier = history.moves[deal_id]
            if earlier:
                earlier[-1]["stay_days"] = (at - earlier[-1]["moved_at"]).total_seconds() / 86400
            if target in POSITION and POSITION[target] > POSITION.get(deal["furthest_stage"], -1):
                deal["furthest_stage"] = target
            earlier.append({"id": move_id, "deal_id": deal_id, "from_stage": stage, "to_stage": target,
                            "direction": direction, "moved_at": at, "stay_days": None,
                            "first_entry": all(move["to_stage"] != target for move in earlier),
                            "deal_kind": kind, "deal_created_at": created})
            if target in ("won", "lost"):
                deal["status"], deal["closed_at"] = target, at
                if target == "lost":
                    deal["lost_reason"] = rng.choice([*LOST_REASONS, None])
                break
            stage = deal["current_stage"] = target
            deal["stage_entered_at"] = at
            at = at + timedelta(hours=rng.randrange(2, 24 * 12), minutes=rng.randrange(60))
            if at >= NOW:
                break
            roll = rng.random()
            if roll < 0.15:
                target = "lost"
            elif stage == STAGE_CODES[-1]:
                target = "won"
            elif kind == "manual" and roll < 0.25 and POSITION[stage] + 2 < len(STAGES):
                target = STAGE_CODES[POSITION[stage] + 2]  # a skip
            elif kind == "manual" and roll < 0.32 and POSITION[stage] > 0:
                target = STAGE_CODES[POSITION[stage] - 1]  # a step back
            else:
                target = STAGE_CODES[POSITION[stage] + 1]

    for claim_id in range(1, 161):
        registered = random_moment(rng, HISTORY_START, NOW - timedelta(hours=1))
        claim = {"id": claim_id, "number": f"CL-{claim_id:06d}", "customer_id": rng.randrange(1, 11),
                 "complainant": "Someone", "essence": "Broken", "reason": rng.choice(CLAIM_REASONS),
                 "guilty_department": rng.choice(("sales", "warehouse", None)),
                 "guilty_employee_id": rng.choice([users[sellers[0]], users[sellers[1]], None]),
                 "status": "investigation", "responsible_officer": rng.choice((officer, None)),
                 "registered_at": registered, "response_due_at": CALENDAR.add_working_days(registered, 10),
                 "resolution": None, "resolved_at": None, "closed_at": None}
        resolved = registered + timedelta(hours=rng.randrange(1, 24 * 25))
        if resolved < NOW and rng.random() < 0.85:
            claim.update(resolution=rng.choice(RESOLUTIONS), resolved_at=resolved, status="resolution")
            closed = resolved + timedelta(hours=rng.randrange(1, 24 * 4))
            if closed < NOW and rng.random() < 0.8:
                claim.update(status="closed", closed_at=closed)
        history.claims.append(claim)

    task_specs = ("first_contact", "needs_analysis", "commercial_offer", "approve_discount")
    for item_id in range(1, 901):
        created = random_moment(rng, HISTORY_START, NOW - timedelta(hours=2))
        due = created + timedelta(hours=rng.randrange(4, 24 * 10))
        roll = rng.random()
        if due > NOW - timedelta(days=20) and roll < 0.5:
            status, completed = "open", None
        elif roll < 0.9:
            status, completed = "completed", min(NOW, created + timedelta(hours=rng.randrange(1, 24 * 14)))
        else:
            status, completed = "cancelled", None
        task = rng.choice(task_specs)
        history.items.append({
            "id": item_id, "instance_id": rng.randrange(1, 241), "task_id": f"task-{item_id}", "task_spec": task,
            "name": task.replace("_", " ").title(), "stage": "Stage", "assignee_id":
                None if task == "approve_discount" else users[rng.choice((*sellers, officer))],
            "priority": 50, "status": status, "version": 1, "created_at": created, "due_at": due,
            "completed_at": completed})
    late_items = [i for i in history.items if i["assignee_id"] and (
        (i["completed_at"] and i["completed_at"] > i["due_at"]) or (i["status"] == "open" and i["due_at"] < NOW))]
    for n, item in enumerate(late_items):
        held_by = item["assignee_id"]
        for level, status in ((REMINDER, "done"), (BREACH, "done"), (HEAD, rng.choice(("done", "pending")))):
            fired = item["due_at"] + timedelta(hours=4 if level == HEAD else 0)
            history.escalations.append({
                "dedupe_key": f"{item['id']}:{level}", "instance_id": item["instance_id"], "work_item_id": item["id"],
                "level": level, "due_at": fired, "deadline": item["due_at"], "status": status, "settings": {},
                "fired_at": fired + timedelta(minutes=1) if status == "done" else None,
                "assignee_id": held_by if status == "done" else None})
        if n % 7 == 0:  # handed to someone else after its escalations (by the head of department, say)
            item["assignee_id"] = users[rng.choice([seller for seller in sellers if users[seller] != held_by])]
    return history, customers, instances


def write_history(engine, sellers: Sequence[str] = SELLERS, officer: str = "olga") -> History:
    """A generated history in the database of ``engine`` (its people and processes exist)."""
    with engine.reading() as session:
        users = dict(session.execute(select(User.username, User.id)).all())
        definitions = dict(session.execute(select(ProcessDefinition.key, ProcessDefinition.id)).all())
    generated, customers, instances = generate(random.Random(20261123), users, definitions, sellers, officer)
    with engine.db.begin() as connection:
        for model, rows in ((Customer, customers), (ProcessInstance, instances), (Deal, generated.deals),
                            (DealStagePlan, generated.plans),
                            (DealMove, [m for moves in generated.moves.values() for m in moves]),
                            (Claim, generated.claims), (WorkItem, generated.items),
                            (Escalation, generated.escalations)):
            connection.execute(insert(model), rows)
    return generated
