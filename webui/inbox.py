"""Employees: the inbox (my items and my groups' queue) and the task page."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy.orm import Session
from wtforms.form import BaseForm

from engine.errors import Conflict, CrmflowError
from engine.runtime import CompletedItem
from webui import readmodel
from webui.access import engine, role_required
from webui.errors import field_messages, show_refusal
from webui.forms import INPUT_TYPES, display_value, html_attributes, step_form, submitted_values
from webui.i18n import local
from webui.readmodel import ItemStatus
from webui.visibility import may_act, may_see_item

bp = Blueprint("inbox", __name__)

PAGE_SIZE = readmodel.INBOX_PAGE_SIZE
BUCKETS = ("all", "mine", "queue", "overdue", "at_risk")


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
        items, counts, risk_until, more = readmodel.inbox_page(session, current_user, bucket, search, now,
                                                               engine().working_calendar, page, PAGE_SIZE)
    return render_template("inbox.html", items=items, counts=counts, bucket=bucket, search=search, now=now,
                           risk_until=risk_until, page=page, more=more)


def _visible_item(session: Session, item_id: int) -> readmodel.WorkItem:
    item = readmodel.work_item(session, item_id, with_instance=True)
    if item is None:
        abort(404)
    if not may_see_item(session, current_user, item):
        abort(403)
    return item


def _render_item(item_id: int, form: BaseForm | None = None, problem: str | None = None, status: int = 200):
    """The task page; after a refused POST, with ``form`` as submitted and its messages."""
    now = engine().clock()
    with engine().reading() as session:
        item = _visible_item(session, item_id)
        instance = item.instance
        process_name = instance.definition.name or instance.process_key
    fields = engine().user_task_form(item) if item.status == ItemStatus.OPEN else []
    data = engine().instance(item.instance_id).data
    shown = {**data, **(submitted_values(form, fields) if form is not None else {})}
    inputs = [
        {
            "spec": field,
            "input": INPUT_TYPES.get(field.type, "text"),
            "value": display_value(field, shown),
            "attributes": html_attributes(field),
            "error": " ".join(form[field.id].errors) if form is not None and field.id in form else None,
        }
        for field in fields
    ]
    context_data = {k: v for k, v in sorted(data.items()) if not isinstance(v, (dict, list))}
    return render_template(
        "item.html", item=item, instance=instance, process_name=process_name, inputs=inputs,
        may_act=may_act(current_user, item), now=now, problem=problem, context_data=context_data,
        form_errors=form.form_errors if form is not None else [],
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
    fields = engine().user_task_form(item) if item.status == ItemStatus.OPEN else []
    form = step_form(fields, request.form)
    if not form.validate():
        abort(400)  # no version: the page did not come from here
    try:
        done = engine().complete(item_id, submitted_values(form, fields), current_user.username,
                                 expected_version=form["version"].data)
    except Conflict as conflict:
        return _render_item(item_id, problem=_stale_message(conflict), status=409)
    except CrmflowError as refused:
        # The engine's form check, a CRM rule of the step (claim triage names a user who is
        # not one), the process itself (a script), or someone not allowed to do the step.
        status = show_refusal(form, refused)
        problem = _("Some values need fixing (see below).") if field_messages(refused) else None
        return _render_item(item_id, form, problem, status)
    return redirect(_after_completion(done))


def _stale_message(conflict: Conflict) -> str:
    return _("This item changed while you had it open — someone else completed, claimed or reassigned it. "
             "Nothing you entered was saved. Details: %(detail)s", detail=local(conflict))


def _after_completion(done: CompletedItem) -> str:
    """The next item: a step of the same process that is mine or offered to me (so the
    employee sees where the deal went), else the top of the inbox."""
    details = engine().instance(done.instance_id)
    stage = details.instance.current_stage
    if details.instance.status != "running":
        flash(_("Completed “%(name)s”. The process has finished.", name=done.name), "success")
    else:
        flash(_("Completed “%(name)s”. Current stage: %(stage)s.", name=done.name, stage=stage or "—"), "success")
    for candidate in details.open_items:
        if may_act(current_user, candidate):
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
