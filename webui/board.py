"""Managers: the overdue board of their department (M1), reassigning work, team workload."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext, ngettext
from flask_login import current_user
from wtforms import HiddenField, IntegerField, SelectChoice, SelectField, SelectMultipleField, StringField
from wtforms.validators import Optional

from engine.errors import CrmflowError
from engine.runtime.queries import Buckets, Counts
from webui import readmodel
from webui.access import engine, role_required
from webui.errors import message, status_of
from webui.fields import WebForm, at_most, blank_to_none

bp = Blueprint("board", __name__, url_prefix="/board")
MAX_REASON = 500


class ReassignForm(WebForm):
    """Who gets the work and why, for one item (a row's own button sends ``only_item``), a
    selection (the ticked ``item_id`` boxes) or all open items of one employee
    (``from_user``, from the hand-over page). The confirmation page sends it again with
    ``confirmed``. The receiver is someone of the manager's team (``with_targets``)."""

    to_user = SelectField(lazy_gettext("Give to"), validate_choice=False)
    reason = StringField(lazy_gettext("Reason"), [at_most(MAX_REASON)])
    from_user = HiddenField()
    only_item = IntegerField(validators=[Optional()])
    item_id = SelectMultipleField(coerce=int, validate_choice=False)
    back = HiddenField()
    confirmed = HiddenField()

    def with_targets(self, targets) -> ReassignForm:
        self.to_user.choices = [SelectChoice("", "—"), *(SelectChoice(u.username, u.display_name) for u in targets)]
        return self


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
                           form=ReassignForm(formdata=None).with_targets(targets))


@bp.route("/reassign", methods=["POST"])
@role_required("manager")
def reassign():
    """Reassign one item, a selection, or all open items of one employee. The first POST
    shows what will move (the confirmation); the second, with ``confirmed``, moves it."""
    form = ReassignForm()
    if form.only_item.process_errors or form.item_id.process_errors:
        abort(400)  # item numbers that are none: not sent by a page of this site
    with engine().reading() as session:
        targets = {u.username: u for u in readmodel.reassign_targets(session, current_user)}
        source = None
        if form.from_user.data:
            source = readmodel.user_named(session, form.from_user.data)
            if source is None or (source.id not in readmodel.team_ids(session, current_user)
                                  and not current_user.is_admin):
                abort(403)
            items = readmodel.department_items(session, current_user, assignee_id=source.id)
        else:
            ids = [form.only_item.data] if form.only_item.data is not None else form.item_id.data or []
            items = readmodel.department_items(session, current_user, ids=ids)
        target = targets.get(form.to_user.data)
    if not items:
        flash(_("Choose at least one item of your department."), "error")
        return redirect(form.back.data if _is_board_url(form.back.data) else url_for("board.index"))
    form.with_targets([u for u in targets.values() if source is None or u.id != source.id])
    valid = form.validate()
    confirmed = form.confirmed.data == "yes"
    if confirmed and target is None:
        form.to_user.errors.append(_("Choose who receives the work (someone in your team)."))
        valid = False
    if not valid or target is None or not confirmed:
        return _confirmation(form, items, target, source, 200 if valid else 422)
    moved, refused = 0, []
    for item in items:
        try:
            engine().reassign(item.id, target.username, current_user.username, blank_to_none(form.reason.data))
            moved += 1
        except CrmflowError as refusal:  # someone was quicker, or the engine's own rules
            refused.append((item, refusal))
    said = [_("#%(id)d %(name)s: %(problem)s", id=item.id, name=item.name, problem=message(refusal))
            for item, refusal in refused]
    if not moved:
        form.form_errors.extend(said)
        return _confirmation(form, items, target, source, status_of(refused[0][1]))
    flash(ngettext("Reassigned %(num)d item to %(name)s.", "Reassigned %(num)d items to %(name)s.", moved,
                   name=target.display_name), "success")
    for text in said:
        flash(_("Not reassigned: %(detail)s", detail=text), "error")
    return redirect(url_for("board.index"))


def _confirmation(form: ReassignForm, items, target, source, status: int):
    """What will move, asking for the receiver (and the reason) until both are given and fit."""
    ask = target is None or bool(form.errors)
    return render_template("reassign_confirm.html", form=form, items=items, target=target, source=source, ask=ask,
                           now=engine().clock()), status


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
    return render_template("handover.html", source=source, count=count,
                           form=ReassignForm(formdata=None).with_targets(targets))


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
