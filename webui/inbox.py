"""Employees: the inbox (my items and my groups' queue) and the task page."""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from datetime import datetime, timezone

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import case, func, or_, select
from sqlalchemy.orm import Session, joinedload, selectinload

from engine.deadlines.calendar import WorkingCalendar
from engine.errors import Conflict, InvalidFormData, NotAuthorized, ProcessFailed
from engine.models import ItemStatus, ProcessInstance, WorkItem, WorkItemCandidate
from webui.access import Person, candidate_condition, engine, may_see_item, role_required
from webui.forms import INPUT_TYPES, display_value, field_message, html_attributes, submitted_values
from webui.i18n import local, local_errors

bp = Blueprint("inbox", __name__)

PAGE_SIZE = 50
BUCKETS = ("all", "mine", "queue", "overdue", "at_risk")


@dataclass(frozen=True)
class Scope:
    """The two halves of a person's inbox: items assigned to them, and the unassigned
    items offered to them (by name or through a group). Disjoint by construction.

    Each half narrows a query. The queue starts from the candidate rows (a few thousand
    for a busy group) and joins the items by key: asking the items table "unassigned and
    offered to me" instead makes the database walk every unassigned item."""

    person: Person

    def mine(self, query):
        return query.where(WorkItem.assignee_id == self.person.id)

    def queue(self, query):
        offered = (
            select(WorkItemCandidate.work_item_id)
            .where(candidate_condition(self.person.groups, self.person.username))
            .distinct()
            .subquery()
        )
        return query.join(offered, WorkItem.id == offered.c.work_item_id).where(WorkItem.assignee_id.is_(None))


def _scope(person: Person) -> Scope:
    return Scope(person)


def _bucket_conditions(bucket: str, now: datetime, risk_until: datetime) -> list:
    if bucket == "overdue":
        return [WorkItem.due_at < now]
    if bucket == "at_risk":
        return [WorkItem.due_at >= now, WorkItem.due_at < risk_until]
    return []


def _search_condition(text: str):
    """Search by customer or deal: the instance's business key (deal or claim number,
    customer) or the step's name."""
    pattern = f"%{text.replace('%', '').replace('_', '')}%"
    return or_(
        WorkItem.instance_id.in_(select(ProcessInstance.id).where(ProcessInstance.business_key.ilike(pattern))),
        WorkItem.name.ilike(pattern),
    )


def _halves(bucket: str) -> tuple[str, ...]:
    return {"mine": ("mine",), "queue": ("queue",)}.get(bucket, ("mine", "queue"))


def inbox_page(session: Session, person: Person, bucket: str, search: str, now: datetime, calendar: WorkingCalendar,
               page: int = 0):
    """The items of one bucket, soonest deadline first, and the count of every bucket.

    Each half is queried on its own (an OR of the two would defeat the indexes on a
    database of 100,000 open items), sorting only keys, and the two sorted lists are
    merged."""
    scope = _scope(person)
    risk_until = calendar.add_working_days(now, 1)
    extra = [_search_condition(search)] if search else []
    open_ = WorkItem.status == ItemStatus.OPEN.value

    overdue = case((WorkItem.due_at < now, 1), else_=0)
    at_risk = case(((WorkItem.due_at >= now) & (WorkItem.due_at < risk_until), 1), else_=0)
    wanted = (page + 1) * PAGE_SIZE
    order = (WorkItem.due_at.is_(None), WorkItem.due_at, WorkItem.priority.desc(), WorkItem.id)
    counts = dict.fromkeys(BUCKETS, 0)
    keys = []
    for half in ("mine", "queue"):
        narrow = getattr(scope, half)
        listed = half in _halves(bucket)
        if listed and not _bucket_conditions(bucket, now, risk_until):
            # The page's keys and the half's counts in one pass: window sums over the rows
            # before the LIMIT (the queue half is the costly join; this does it once).
            rows = session.execute(
                narrow(select(WorkItem.due_at, WorkItem.priority, WorkItem.id, func.count().over().label("total"),
                              func.sum(overdue).over().label("overdue"), func.sum(at_risk).over().label("at_risk")))
                .where(open_, *extra).order_by(*order).limit(wanted)
            ).all()
            totals = (rows[0].total, rows[0].overdue, rows[0].at_risk) if rows else (0, 0, 0)
        else:
            totals = session.execute(
                narrow(select(func.count(), func.coalesce(func.sum(overdue), 0), func.coalesce(func.sum(at_risk), 0))
                       .select_from(WorkItem)).where(open_, *extra)
            ).one()
            rows = session.execute(
                narrow(select(WorkItem.due_at, WorkItem.priority, WorkItem.id))
                .where(open_, *_bucket_conditions(bucket, now, risk_until), *extra).order_by(*order).limit(wanted)
            ).all() if listed else []
        if listed:
            keys.append(rows)
        counts[half] = totals[0]
        counts["all"] += totals[0]
        counts["overdue"] += totals[1] or 0
        counts["at_risk"] += totals[2] or 0

    # Only the page's items are loaded with what the page shows of them (joining instances
    # and users before the sort would join every item of a busy queue).
    page_ids = [row.id for row in heapq.merge(*keys, key=_inbox_order)][page * PAGE_SIZE:wanted]
    loaded = {item.id: item for item in session.scalars(
        select(WorkItem).where(WorkItem.id.in_(page_ids))
        .options(joinedload(WorkItem.instance), selectinload(WorkItem.candidates))
    )}
    return [loaded[item_id] for item_id in page_ids], counts, risk_until, counts[bucket] > wanted


_NO_DEADLINE = datetime.max.replace(tzinfo=timezone.utc)


def _inbox_order(row):
    """The SQL order in Python, to merge the two halves: no deadline last."""
    return (row.due_at is None, row.due_at or _NO_DEADLINE, -row.priority, row.id)


@bp.route("/")
@role_required()
def index():
    bucket = request.args.get("bucket", "all")
    if bucket not in BUCKETS:
        abort(404)
    search = request.args.get("q", "").strip()[:100]
    try:
        page = max(0, int(request.args.get("page", "0")))
    except ValueError:
        page = 0
    now = engine().clock()
    with engine().reading() as session:
        items, counts, risk_until, more = inbox_page(session, current_user, bucket, search, now,
                                                     engine().working_calendar, page)
    return render_template("inbox.html", items=items, counts=counts, bucket=bucket, search=search, now=now,
                           risk_until=risk_until, page=page, more=more)


def _visible_item(session: Session, item_id: int) -> WorkItem:
    item = session.get(WorkItem, item_id, options=[selectinload(WorkItem.candidates), joinedload(WorkItem.instance)])
    if item is None:
        abort(404)
    if not may_see_item(session, current_user, item):
        abort(403)
    return item


def _may_act(item: WorkItem) -> bool:
    if item.status != ItemStatus.OPEN.value:
        return False
    if item.assignee_id == current_user.id:
        return True
    return item.assignee_id is None and (
        current_user.username in item.candidate_users or bool(set(item.candidate_groups) & set(current_user.groups))
    )


def _render_item(item_id: int, values: dict | None = None, errors: dict | None = None, problem: str | None = None,
                 status: int = 200):
    now = engine().clock()
    with engine().reading() as session:
        item = _visible_item(session, item_id)
        instance = item.instance
        process_name = instance.definition.name or instance.process_key
    fields = engine().user_task_form(item) if item.status == ItemStatus.OPEN.value else []
    data = engine().instance(item.instance_id).data
    shown = {**data, **(values or {})}
    inputs = [
        {
            "spec": field,
            "input": INPUT_TYPES.get(field.type, "text"),
            "value": display_value(field, shown),
            "attributes": html_attributes(field),
            "error": field_message(errors[field.id]) if errors and field.id in errors else None,
        }
        for field in fields
    ]
    context_data = {k: v for k, v in sorted(data.items()) if not isinstance(v, (dict, list))}
    return render_template(
        "item.html", item=item, instance=instance, process_name=process_name, inputs=inputs,
        may_act=_may_act(item), now=now, problem=problem, context_data=context_data,
        unknown_errors=local_errors({k: v for k, v in (errors or {}).items() if k not in {f.id for f in fields}}),
    ), status


@bp.route("/items/<int:item_id>")
@role_required()
def item(item_id: int):
    return _render_item(item_id)


@bp.route("/items/<int:item_id>", methods=["POST"])
@role_required()
def complete(item_id: int):
    with engine().reading() as session:
        item = _visible_item(session, item_id)
    fields = engine().user_task_form(item) if item.status == ItemStatus.OPEN.value else []
    values = submitted_values(fields, request.form)
    try:
        expected = int(request.form.get("version", ""))
    except ValueError:
        abort(400)
    try:
        done = engine().complete(item_id, values, current_user.username, expected_version=expected)
    except InvalidFormData as invalid:
        return _render_item(item_id, values, invalid.errors, _("Some values need fixing (see below)."), 422)
    except Conflict as conflict:
        return _render_item(item_id, problem=_stale_message(conflict), status=409)
    except (NotAuthorized, ProcessFailed) as refused:
        return _render_item(item_id, values, problem=local(refused), status=403 if isinstance(refused, NotAuthorized)
                            else 422)
    return redirect(_after_completion(done))


def _stale_message(conflict: Conflict) -> str:
    return _("This item changed while you had it open — someone else completed, claimed or reassigned it. "
             "Nothing you entered was saved. Details: %(detail)s", detail=local(conflict))


def _after_completion(done: WorkItem) -> str:
    """The next item: a step of the same process that is mine or offered to me (so the
    employee sees where the deal went), else the top of the inbox."""
    details = engine().instance(done.instance_id)
    stage = details.instance.current_stage
    if details.instance.status != "running":
        flash(_("Completed “%(name)s”. The process has finished.", name=done.name), "success")
    else:
        flash(_("Completed “%(name)s”. Current stage: %(stage)s.", name=done.name, stage=stage or "—"), "success")
    for candidate in details.open_items:
        if _may_act(candidate):
            return url_for("inbox.item", item_id=candidate.id)
    return url_for("inbox.index")


@bp.route("/items/<int:item_id>/claim", methods=["POST"])
@role_required()
def claim(item_id: int):
    with engine().reading() as session:
        _visible_item(session, item_id)
    try:
        engine().claim(item_id, current_user.username)
    except Conflict as conflict:
        flash(_("Could not take it: %(detail)s", detail=local(conflict)), "error")
        return redirect(url_for("inbox.index"))
    flash(_("The item is yours now."), "success")
    return redirect(url_for("inbox.item", item_id=item_id))
