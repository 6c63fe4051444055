"""One deal (S1-S4) and one claim (C1-C4) as their people work on them: the stage plan
against the actual dates, every stage move, the open steps, the deal's or claim's own
interactions; the tasks of a project deal; a claim's investigation plan and its files.

Anyone on the staff may look (the customer base is the company's); changing a deal is for
its curator, whoever manages the curator and admins: the page asks the visibility policy
first (a 403 on the deal page, before anything typed is checked), and the CRM facade,
which decides, refuses with ``NotAuthorized`` as well."""

from __future__ import annotations

from datetime import datetime, time
from urllib.parse import quote

from flask import Blueprint, Response, abort, flash, redirect, render_template, url_for
from flask_babel import get_timezone
from flask_babel import gettext as _
from flask_babel import lazy_gettext
from flask_login import current_user
from wtforms import SelectChoice, SelectField, StringField, TextAreaField, ValidationError
from wtforms.validators import Optional

from engine.errors import CrmflowError, NotFound
from processes.models import DealKind, DealStatus
from processes.stages import LOST, LOST_REASONS, STAGES, WON
from webui import readmodel
from webui.access import crm, engine, role_required
from webui.customers import STAFF
from webui.errors import show_refusal
from webui.fields import ClockTimeField, IsoDateField, WebForm, at_most, blank_to_none, labelled, required
from webui.i18n import LOST_REASON_LABELS
from webui.visibility import Visibility, may_change_deal

bp = Blueprint("deals", __name__)
LATEST_MOVES = 50  # a manual deal may have thousands of moves: the page shows the latest
DEFAULT_DUE_TIME = time(18)


class StagePlanForm(WebForm):
    """The planned end of each sales stage (S4), in fields ``plan-<stage>``; a stage left
    empty keeps its plan."""


for _stage in STAGES:
    setattr(StagePlanForm, f"plan-{_stage.code}", IsoDateField(lazy_gettext("Planned end"), [Optional()]))


class ProjectTaskForm(WebForm):
    """A task of a project deal (S3); ``owner`` offers the active users."""

    title = StringField(lazy_gettext("Title"), [required(), at_most(300)])
    owner = SelectField(lazy_gettext("Owner"), [required()])
    due_on = IsoDateField(lazy_gettext("Due on"), [required()])
    due_time = ClockTimeField(lazy_gettext("at"), [Optional()])
    description = TextAreaField(lazy_gettext("Description"))


class CloseDealForm(WebForm):
    outcome = SelectField(lazy_gettext("Outcome"), choices=labelled((WON, LOST)))
    lost_reason = SelectField(lazy_gettext("Reason, if lost"), default="",
                              choices=[SelectChoice("", "—"), *labelled(LOST_REASONS, LOST_REASON_LABELS)])

    def validate_lost_reason(self, field) -> None:
        if self.outcome.data == LOST and not field.data:
            raise ValidationError(_("Choose why the deal was lost."))


DEAL_FORMS = {"plan": StagePlanForm, "task": ProjectTaskForm, "close": CloseDealForm}


@bp.route("/deals/<int:deal_id>")
@role_required(*STAFF)
def deal(deal_id: int):
    return _deal_page(deal_id)


def _deal_page(deal_id: int, status: int = 200, problem: str | None = None, **submitted: WebForm):
    """The deal with its forms: empty ones, and the one just ``submitted`` as it came,
    with its messages; ``problem`` is said at the top."""
    deal = crm().deal(deal_id)
    project = deal.kind == DealKind.PROJECT
    plan = [] if project else crm().stage_plan(deal_id)
    with engine().reading() as session:
        owners = readmodel.active_users(session)
        steps = _open_steps(session, deal.instance_id) if deal.instance_id else []
    forms = {name: submitted.get(name) or form(formdata=None) for name, form in DEAL_FORMS.items()}
    for row in plan:  # what the plan is, where nothing was typed
        planned = forms["plan"][f"plan-{row.stage}"]
        if not planned.raw_data:
            planned.data = row.planned_end
    forms["task"].owner.choices = _owner_choices(owners)
    if not forms["task"].owner.raw_data:
        forms["task"].owner.data = current_user.username
    in_progress = deal.status == DealStatus.IN_PROGRESS
    # A refusal of a form the page does not show (the plan of a project deal, closing a deal
    # that is closed already) is said at the top.
    if project:
        shown = {"task", "close"} if in_progress else set()
    else:
        shown = {"plan"}
    problems = [*([problem] if problem else []),
                *(message for name, form in forms.items() if name not in shown for message in _all_messages(form))]
    return render_template(
        "deal.html", deal=deal, project=project, now=engine().clock(), plan=plan,
        moves=crm().deal_moves(deal_id, latest=LATEST_MOVES), move_count=crm().deal_move_count(deal_id),
        tasks=crm().deal_tasks(deal_id) if project else [], steps=steps,
        timeline=crm().timeline(deal.customer_id, deal_id=deal_id),
        in_progress=in_progress, forms=forms, problems=problems,
    ), status


def _all_messages(form: WebForm) -> list[str]:
    return [*form.form_errors, *(message for field in form for message in field.errors)]


def _owner_choices(owners) -> list[SelectChoice]:
    return [SelectChoice(user.username, user.display_name) for user in owners]


def _open_steps(session, instance_id: int) -> list[tuple[readmodel.WorkItem, bool]]:
    """The instance's open work items, each with whether the signed-in person may open it."""
    items = readmodel.open_items_of(session, instance_id)
    return list(zip(items, Visibility(session, current_user).may_see_items(items)))


def _unless_may_change(deal_id: int):
    """The deal page saying so (403) when the signed-in person may not change the deal:
    they are told that before anything they typed is checked."""
    deal = crm().deal(deal_id)
    with engine().reading() as session:
        if may_change_deal(session, current_user, deal.curator_id):
            return None
    return _deal_page(deal_id, 403, problem=_(
        "Only the curator of %(number)s (%(curator)s), whoever manages them and admins may change it.",
        number=deal.number, curator=deal.curator.display_name))


@bp.route("/deals/<int:deal_id>/plan", methods=["POST"])
@role_required(*STAFF)
def change_plan(deal_id: int):
    if refused := _unless_may_change(deal_id):
        return refused
    form = StagePlanForm()
    if not form.validate():
        return _deal_page(deal_id, 422, plan=form)
    planned = {stage.code: form[f"plan-{stage.code}"].data for stage in STAGES
               if form[f"plan-{stage.code}"].data is not None}
    try:
        crm().set_stage_plan(deal_id, planned, current_user.username)
    except CrmflowError as refused:
        return _deal_page(deal_id, show_refusal(form, refused, {stage.code: f"plan-{stage.code}" for stage in STAGES}),
                          plan=form)
    flash(_("The stage plan is saved."), "success")
    return redirect(url_for("deals.deal", deal_id=deal_id))


@bp.route("/deals/<int:deal_id>/tasks", methods=["POST"])
@role_required(*STAFF)
def add_task(deal_id: int):
    if refused := _unless_may_change(deal_id):
        return refused
    form = ProjectTaskForm()
    with engine().reading() as session:
        form.owner.choices = _owner_choices(readmodel.active_users(session))
    if not form.validate():
        return _deal_page(deal_id, 422, task=form)
    # A date and time typed in the user's time zone, as an aware moment (18:00 when no time).
    due = datetime.combine(form.due_on.data, form.due_time.data or DEFAULT_DUE_TIME).replace(tzinfo=get_timezone())
    try:
        task = crm().add_project_task(deal_id, form.title.data, form.owner.data, due, current_user.username,
                                      description=blank_to_none(form.description.data))
    except CrmflowError as refused:
        return _deal_page(deal_id, show_refusal(form, refused, {"due_at": "due_on"}), task=form)
    flash(_("Task %(title)s is in %(owner)s's inbox.", title=task.title, owner=task.owner), "success")
    return redirect(url_for("deals.deal", deal_id=deal_id))


@bp.route("/deals/<int:deal_id>/close", methods=["POST"])
@role_required(*STAFF)
def close(deal_id: int):
    if refused := _unless_may_change(deal_id):
        return refused
    form = CloseDealForm()
    if not form.validate():
        return _deal_page(deal_id, 422, close=form)
    outcome = form.outcome.data
    try:
        crm().close_project_deal(deal_id, outcome, current_user.username,
                                 lost_reason=form.lost_reason.data if outcome == LOST else None)
    except CrmflowError as refused:
        return _deal_page(deal_id, show_refusal(form, refused), close=form)
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
