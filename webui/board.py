"""Managers: the overdue board of their department (M1), reassigning work, team workload."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_login import current_user
from sqlalchemy import case, func, or_, select
from sqlalchemy.orm import Session, joinedload, selectinload

from engine.errors import Conflict, NotAuthorized
from engine.models import ItemStatus, User, WorkItem
from webui.access import Person, candidate_filter, engine, role_required, team_ids, team_members
from webui.i18n import local

bp = Blueprint("board", __name__, url_prefix="/board")
MAX_REASON = 500


def department_condition(session: Session, person: Person):
    """Open items of the people the manager is responsible for, and the unassigned items
    offered to the groups they head; every open item for an admin."""
    if person.is_admin:
        return WorkItem.status == ItemStatus.OPEN.value
    team = team_ids(session, person)
    return (WorkItem.status == ItemStatus.OPEN.value) & or_(
        WorkItem.assignee_id.in_(team),
        WorkItem.assignee_id.is_(None) & candidate_filter(person.headed_groups),
    )


@bp.route("/")
@role_required("manager")
def index():
    grouping = request.args.get("by", "stage")
    if grouping not in ("stage", "employee"):
        abort(404)
    now = engine().clock()
    risk_until = engine().working_calendar.add_working_days(now, 1)
    with engine().reading() as session:
        items = list(session.scalars(
            select(WorkItem)
            .where(department_condition(session, current_user), WorkItem.due_at < risk_until)
            .options(joinedload(WorkItem.instance), selectinload(WorkItem.candidates))
            .order_by(WorkItem.due_at, WorkItem.priority.desc(), WorkItem.id)
        ))
        targets = _targets(session)
    groups: dict[str, list[WorkItem]] = defaultdict(list)
    for item in items:
        if grouping == "stage":
            key = item.stage
        else:
            key = item.assignee.display_name if item.assignee else _("Unassigned (queue)")
        groups[key].append(item)
    overdue = sum(1 for item in items if item.due_at < now)
    return render_template("board.html", groups=sorted(groups.items(), key=lambda g: g[1][0].due_at),
                           grouping=grouping, now=now, overdue=overdue, at_risk=len(items) - overdue,
                           targets=targets)


def _targets(session: Session) -> list[User]:
    """Who a manager may hand work to: their team and themselves."""
    people = team_members(session, current_user)
    me = session.get(User, current_user.id)
    return sorted({u.id: u for u in [*people, me]}.values(), key=lambda u: u.display_name)


@bp.route("/reassign", methods=["POST"])
@role_required("manager")
def reassign():
    """Reassign one item, a selection, or all open items of one employee. The first POST
    shows what will move (the confirmation); the second, with ``confirmed``, moves it."""
    to_username = request.form.get("to_user", "")
    from_username = request.form.get("from_user", "")
    reason = request.form.get("reason", "").strip()[:MAX_REASON]
    with engine().reading() as session:
        scope = department_condition(session, current_user)
        targets = {u.username: u for u in _targets(session)}
        query = select(WorkItem).where(scope).options(joinedload(WorkItem.instance), selectinload(WorkItem.candidates))
        source = None
        if from_username:
            source = session.scalar(select(User).where(User.username == from_username))
            if source is None or source.id not in team_ids(session, current_user) and not current_user.is_admin:
                abort(403)
            query = query.where(WorkItem.assignee_id == source.id)
        else:
            # A row's own button names just its item; "Reassign selected" sends the ticked boxes.
            only = request.form.get("only_item")
            ids = _item_ids([only] if only else request.form.getlist("item_id"))
            query = query.where(WorkItem.id.in_(ids))
        items = list(session.scalars(query.order_by(WorkItem.due_at, WorkItem.id)))
        target = targets.get(to_username)
    if not items:
        flash(_("Choose at least one item of your department."), "error")
        return redirect(request.form.get("back") if _is_board_url(request.form.get("back")) else url_for("board.index"))
    confirmed = request.form.get("confirmed") == "yes"
    if target is None and confirmed:
        flash(_("Choose who receives the work (someone in your team)."), "error")
    if target is None or not confirmed:
        choices = [u for u in targets.values() if source is None or u.id != source.id]
        return render_template("reassign_confirm.html", items=items, target=target, source=source, reason=reason,
                               targets=choices, now=engine().clock())
    moved, failed = 0, []
    for item in items:
        try:
            engine().reassign(item.id, target.username, current_user.username, reason or None)
            moved += 1
        except (Conflict, NotAuthorized) as refused:
            failed.append(f"#{item.id} {item.name}: {local(refused)}")
    if moved:
        flash(ngettext("Reassigned %(num)d item to %(name)s.", "Reassigned %(num)d items to %(name)s.", moved,
                       name=target.display_name), "success")
    for failure in failed:
        flash(_("Not reassigned: %(detail)s", detail=failure), "error")
    return redirect(url_for("board.index"))


def _item_ids(raw: list[str]) -> list[int]:
    try:
        return [int(value) for value in raw]
    except ValueError:
        abort(400)


def _is_board_url(url: str | None) -> bool:
    return bool(url) and url.startswith("/board") and "//" not in url


@bp.route("/employees/<username>/handover")
@role_required("manager")
def handover(username: str):
    """Hand every open item of one employee (ill, leaving) to someone else: pick who."""
    with engine().reading() as session:
        source = session.scalar(select(User).where(User.username == username))
        if source is None:
            abort(404)
        if source.id not in team_ids(session, current_user) and not current_user.is_admin:
            abort(403)
        count = session.scalar(select(func.count()).select_from(WorkItem).where(
            WorkItem.assignee_id == source.id, WorkItem.status == ItemStatus.OPEN.value))
        targets = [u for u in _targets(session) if u.id != source.id]
    return render_template("handover.html", source=source, count=count, targets=targets)


@bp.route("/team")
@role_required("manager")
def team():
    """Workload: open, overdue and at-risk items per person, and what they completed this week."""
    now = engine().clock()
    risk_until = engine().working_calendar.add_working_days(now, 1)
    week_ago = now - timedelta(days=7)
    with engine().reading() as session:
        people = team_members(session, current_user)
        ids = [p.id for p in people]
        open_ = WorkItem.status == ItemStatus.OPEN.value
        rows = session.execute(
            select(
                WorkItem.assignee_id,
                func.count(),
                func.sum(_flag(WorkItem.due_at < now)),
                func.sum(_flag((WorkItem.due_at >= now) & (WorkItem.due_at < risk_until))),
            ).where(open_, WorkItem.assignee_id.in_(ids)).group_by(WorkItem.assignee_id)
        ).all()
        done = dict(session.execute(
            select(WorkItem.completed_by_id, func.count())
            .where(WorkItem.status == ItemStatus.COMPLETED.value, WorkItem.completed_at >= week_ago,
                   WorkItem.completed_by_id.in_(ids))
            .group_by(WorkItem.completed_by_id)
        ).all())
    load = {assignee: (total, overdue or 0, risk or 0) for assignee, total, overdue, risk in rows}
    workload = [
        {"user": p, "open": load.get(p.id, (0, 0, 0))[0], "overdue": load.get(p.id, (0, 0, 0))[1],
         "at_risk": load.get(p.id, (0, 0, 0))[2], "done_week": done.get(p.id, 0)}
        for p in people
    ]
    return render_template("team.html", workload=workload)


def _flag(condition):
    return case((condition, 1), else_=0)
