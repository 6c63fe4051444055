"""One deal (S1-S4) and one claim (C1-C4) as their people work on them: the stage plan
against the actual dates, every stage move, the open steps, the deal's or claim's own
interactions; the tasks of a project deal; a claim's investigation plan and its files.

Anyone on the staff may look (the customer base is the company's); changing a deal is the
CRM facade's decision (its curator, whoever manages the curator, admins), so a refusal
comes back from ``processes.crm`` as ``NotAuthorized`` and shows as a 403 page."""

from __future__ import annotations

from datetime import date, datetime, time
from urllib.parse import quote

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask_babel import get_timezone
from flask_babel import gettext as _
from flask_login import current_user

from engine.errors import NotFound
from processes.errors import InvalidData
from processes.models import DealKind, DealStatus
from processes.stages import LOST, LOST_REASONS, STAGES, WON
from webui import readmodel
from webui.access import crm, engine, role_required
from webui.customers import STAFF
from webui.i18n import local_errors
from webui.visibility import Visibility

bp = Blueprint("deals", __name__)
LATEST_MOVES = 50  # a manual deal may have thousands of moves: the page shows the latest


@bp.route("/deals/<int:deal_id>")
@role_required(*STAFF)
def deal(deal_id: int):
    return _deal_page(deal_id)


def _deal_page(deal_id: int, form_errors: dict | None = None, form_values: dict | None = None, status: int = 200):
    try:
        deal = crm().deal(deal_id)
    except NotFound:
        abort(404)
    project = deal.kind == DealKind.PROJECT.value
    with engine().reading() as session:
        owners = readmodel.active_users(session)
        steps = _open_steps(session, deal.instance_id) if deal.instance_id else []
    return render_template(
        "deal.html", deal=deal, project=project, now=engine().clock(),
        plan=[] if project else crm().stage_plan(deal_id),
        moves=crm().deal_moves(deal_id, latest=LATEST_MOVES), move_count=crm().deal_move_count(deal_id),
        tasks=crm().deal_tasks(deal_id) if project else [], steps=steps,
        timeline=crm().timeline(deal.customer_id, deal_id=deal_id), owners=owners,
        lost_reasons=LOST_REASONS, in_progress=deal.status == DealStatus.IN_PROGRESS.value,
        form_errors=form_errors or {}, form_values=form_values or {},
    ), status


def _open_steps(session, instance_id: int) -> list[tuple[readmodel.WorkItem, bool]]:
    """The instance's open work items, each with whether the signed-in person may open it."""
    items = readmodel.open_items_of(session, instance_id)
    return list(zip(items, Visibility(session, current_user).may_see_items(items)))


@bp.route("/deals/<int:deal_id>/plan", methods=["POST"])
@role_required(*STAFF)
def change_plan(deal_id: int):
    planned, errors = {}, {}
    for stage in STAGES:
        text = request.form.get(f"plan-{stage.code}", "").strip()
        if not text:
            continue
        try:
            planned[stage.code] = date.fromisoformat(text)
        except ValueError:
            errors[stage.code] = _("%(value)s is not a date", value=text)
    if errors:
        return _deal_page(deal_id, {"plan": errors}, {"plan": request.form.to_dict()}, 422)
    try:
        crm().set_stage_plan(deal_id, planned, current_user.username)
    except InvalidData as invalid:
        return _deal_page(deal_id, {"plan": local_errors(invalid.errors)}, {"plan": request.form.to_dict()}, 422)
    flash(_("The stage plan is saved."), "success")
    return redirect(url_for("deals.deal", deal_id=deal_id))


@bp.route("/deals/<int:deal_id>/tasks", methods=["POST"])
@role_required(*STAFF)
def add_task(deal_id: int):
    values = request.form.to_dict()
    due = _due_moment(values.get("due_on", ""), values.get("due_time", ""))
    try:
        task = crm().add_project_task(deal_id, values.get("title", ""), values.get("owner", ""), due,
                                      current_user.username, description=values.get("description", "").strip() or None)
    except InvalidData as invalid:
        return _deal_page(deal_id, {"task": local_errors(invalid.errors)}, {"task": values}, 422)
    flash(_("Task %(title)s is in %(owner)s's inbox.", title=task.title, owner=task.owner), "success")
    return redirect(url_for("deals.deal", deal_id=deal_id))


def _due_moment(day: str, clock_time: str) -> datetime | None:
    """A date and time typed in the user's time zone, as an aware moment (18:00 when no time)."""
    try:
        moment = datetime.combine(date.fromisoformat(day.strip()),
                                  time.fromisoformat(clock_time.strip()) if clock_time.strip() else time(18))
    except ValueError:
        return None
    return moment.replace(tzinfo=get_timezone())


@bp.route("/deals/<int:deal_id>/close", methods=["POST"])
@role_required(*STAFF)
def close(deal_id: int):
    outcome = request.form.get("outcome", "")
    reason = (request.form.get("lost_reason") or None) if outcome == LOST else None
    try:
        crm().close_project_deal(deal_id, outcome, current_user.username, lost_reason=reason)
    except InvalidData as invalid:
        return _deal_page(deal_id, {"close": local_errors(invalid.errors)}, {"close": request.form.to_dict()}, 422)
    flash(_("The deal is closed: %(outcome)s.", outcome=_("won") if outcome == WON else _("lost")), "success")
    return redirect(url_for("deals.deal", deal_id=deal_id))


@bp.route("/claims/<int:claim_id>")
@role_required(*STAFF)
def claim(claim_id: int):
    try:
        claim = crm().claim(claim_id)
    except NotFound:
        abort(404)
    with engine().reading() as session:
        steps = _open_steps(session, claim.instance_id) if claim.instance_id else []
    return render_template("claim.html", claim=claim, steps=steps, now=engine().clock(),
                           timeline=crm().timeline(claim.customer_id, claim_id=claim_id))


@bp.route("/claims/<int:claim_id>/attachments/<int:attachment_id>")
@role_required(*STAFF)
def attachment(claim_id: int, attachment_id: int):
    try:
        found = crm().claim_attachment(claim_id, attachment_id)
    except NotFound:
        abort(404)
    # Files come from customers: always a download, never rendered by the browser as a page.
    return Response(found.content, headers={
        "Content-Type": "application/octet-stream",
        "Content-Disposition": _disposition(found.filename),
        "X-Content-Type-Options": "nosniff",
    })


def _disposition(filename: str) -> str:
    ascii_name = filename.encode("ascii", "replace").decode().replace('"', "'").replace("?", "_")
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename)}"
