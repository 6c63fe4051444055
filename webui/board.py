"""Managers: the overdue board of their department (M1), reassigning work, team workload."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_login import current_user

from engine.errors import Conflict, NotAuthorized
from engine.runtime.queries import Buckets, Counts
from webui import readmodel
from webui.access import engine, role_required
from webui.i18n import local

bp = Blueprint("board", __name__, url_prefix="/board")
MAX_REASON = 500


@bp.route("/")
@role_required("manager")
def index():
    grouping = request.args.get("by", "stage")
    if grouping not in ("stage", "employee"):
        abort(404)
    now = engine().clock()
    risk_until = engine().working_calendar.add_working_days(now, 1)
    with engine().reading() as session:
        items = readmodel.board_items(session, current_user, risk_until)
        targets = readmodel.reassign_targets(session, current_user)
    groups: dict[str, list[readmodel.WorkItem]] = defaultdict(list)
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


@bp.route("/reassign", methods=["POST"])
@role_required("manager")
def reassign():
    """Reassign one item, a selection, or all open items of one employee. The first POST
    shows what will move (the confirmation); the second, with ``confirmed``, moves it."""
    to_username = request.form.get("to_user", "")
    from_username = request.form.get("from_user", "")
    reason = request.form.get("reason", "").strip()[:MAX_REASON]
    with engine().reading() as session:
        targets = {u.username: u for u in readmodel.reassign_targets(session, current_user)}
        source = None
        if from_username:
            source = readmodel.user_named(session, from_username)
            if source is None or (source.id not in readmodel.team_ids(session, current_user)
                                  and not current_user.is_admin):
                abort(403)
            items = readmodel.department_items(session, current_user, assignee_id=source.id)
        else:
            # A row's own button names just its item; "Reassign selected" sends the ticked boxes.
            only = request.form.get("only_item")
            ids = _item_ids([only] if only else request.form.getlist("item_id"))
            items = readmodel.department_items(session, current_user, ids=ids)
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
        source = readmodel.user_named(session, username)
        if source is None:
            abort(404)
        if source.id not in readmodel.team_ids(session, current_user) and not current_user.is_admin:
            abort(403)
        count = readmodel.open_item_count(session, source.id)
        targets = [u for u in readmodel.reassign_targets(session, current_user) if u.id != source.id]
    return render_template("handover.html", source=source, count=count, targets=targets)


@bp.route("/team")
@role_required("manager")
def team():
    """Workload: open, overdue and at-risk items per person, and what they completed this week."""
    now = engine().clock()
    risk_until = engine().working_calendar.add_working_days(now, 1)
    week_ago = now - timedelta(days=7)
    with engine().reading() as session:
        people = readmodel.team_members(session, current_user)
        load, done = readmodel.workload(session, [p.id for p in people], Buckets(now, risk_until), week_ago)
    workload = []
    for person in people:
        counts = load.get(person.id, Counts())
        workload.append({"user": person, "open": counts.total, "overdue": counts.overdue, "at_risk": counts.at_risk,
                         "done_week": done.get(person.id, 0)})
    return render_template("team.html", workload=workload)
