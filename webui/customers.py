"""Customers (D1-D4) and claims (C1, C5), through the CRM facade ``processes.crm.Crm``:
the customer card, registering with the duplicate check, interactions, deals, claims,
and the public self-service claim form."""

from __future__ import annotations

from flask import Blueprint, Response, abort, flash, make_response, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from engine.errors import NotFound
from processes.crm import CLAIM_REASONS, ClaimDraft
from processes.customers import CustomerDraft
from processes.errors import DuplicateCustomer, InvalidData
from processes.models import CustomerKind, DealKind, InteractionKind, InteractionStatus
from processes.normalize import normal_email, normal_inn, normal_phone
from webui import limits
from webui.access import crm, engine, role_required
from webui.i18n import local_errors

bp = Blueprint("customers", __name__)
STAFF = ("employee", "manager")
MAX_ATTACHMENTS = 5


def init_app(app) -> None:
    """The self-service form's limit per client address, counted by every web process
    together (webui/limits.py); a bot's post caught by the honeypot is not counted."""
    limits.limit_endpoint(app, "customers.self_service", f"{app.config['CRMFLOW_CLAIMS_PER_HOUR']} per hour",
                          methods=["POST"], exempt_when=lambda: bool(request.form.get(HONEYPOT)),
                          on_breach=_too_many_claims)


@bp.route("/customers/")
@role_required(*STAFF)
def index():
    query = request.args.get("q", "").strip()[:100]
    found = crm().search_customers(query) if query else []
    return render_template("customers.html", query=query, found=found)


@bp.route("/customers/<int:customer_id>")
@role_required(*STAFF)
def card(customer_id: int):
    try:
        card = crm().customer_card(customer_id)
    except NotFound:
        abort(404)
    return render_template("customer.html", card=card, now=engine().clock(), **_choices())


def _choices() -> dict:
    return {"interaction_kinds": [k.value for k in InteractionKind],
            "interaction_statuses": [s.value for s in InteractionStatus],
            "deal_kinds": [k.value for k in DealKind], "claim_reasons": CLAIM_REASONS}


def _lines(name: str) -> list[str]:
    return [line.strip() for line in request.form.get(name, "").replace(",", "\n").splitlines() if line.strip()]


@bp.route("/customers/new", methods=["GET", "POST"])
@role_required(*STAFF)
def register():
    if request.method == "GET":
        return render_template("customer_new.html", values={}, errors={}, duplicates=[])
    values = request.form.to_dict()
    draft = CustomerDraft(
        name=values.get("name", "").strip(), kind=values.get("kind", CustomerKind.ORGANISATION.value),
        inn=values.get("inn", "").strip() or None, phones=_lines("phones"), emails=_lines("emails"),
        category=values.get("category", "").strip() or None, curator=current_user.username,
    )
    deliberate = values.get("deliberate") == "yes"
    try:
        registration = crm().register_customer(draft, current_user.username, allow_duplicates=deliberate)
    except DuplicateCustomer as duplicates:
        # D2: the likely duplicates are shown before saving; registering anyway is a deliberate second click.
        return render_template("customer_new.html", values=values, errors={},
                               duplicates=duplicates.candidates), 409
    except InvalidData as invalid:
        return render_template("customer_new.html", values=values, errors=local_errors(invalid.errors),
                               duplicates=[]), 422
    flash(_("Registered %(name)s.", name=registration.customer.name), "success")
    return redirect(url_for("customers.card", customer_id=registration.customer.id))


def _after(customer_id: int, message: str):
    flash(message, "success")
    return redirect(url_for("customers.card", customer_id=customer_id))


def _refused(customer_id: int, invalid: InvalidData, form: str):
    card = crm().customer_card(customer_id)
    return render_template("customer.html", card=card, now=engine().clock(),
                           form_errors={form: local_errors(invalid.errors)},
                           form_values={form: request.form.to_dict()}, **_choices()), 422


@bp.route("/customers/<int:customer_id>/interactions", methods=["POST"])
@role_required(*STAFF)
def log_interaction(customer_id: int):
    try:
        crm().log_interaction(customer_id, request.form.get("kind", ""), request.form.get("subject", ""),
                              current_user.username, status=request.form.get("status", "done"),
                              notes=request.form.get("notes", "").strip() or None)
    except InvalidData as invalid:
        return _refused(customer_id, invalid, "interaction")
    return _after(customer_id, _("The interaction is on the timeline."))


@bp.route("/customers/<int:customer_id>/deals", methods=["POST"])
@role_required(*STAFF)
def start_deal(customer_id: int):
    try:
        deal = crm().start_deal(request.form.get("kind", ""), customer_id, current_user.username,
                                request.form.get("title", ""), current_user.username,
                                amount=request.form.get("amount", "").strip() or None)
    except InvalidData as invalid:
        return _refused(customer_id, invalid, "deal")
    return _after(customer_id, _("Deal %(number)s started.", number=getattr(deal, "number", None) or deal.id))


@bp.route("/customers/<int:customer_id>/claims", methods=["POST"])
@role_required(*STAFF)
def register_claim(customer_id: int):
    try:
        claim = crm().register_claim(_claim_draft(customer_id), current_user.username)
    except InvalidData as invalid:
        return _refused(customer_id, invalid, "claim")
    return _after(customer_id, _("Claim %(number)s registered; its investigation has started.", number=claim.number))


def _claim_draft(customer_id: int) -> ClaimDraft:
    attachments = [(f.filename, f.mimetype, f.read()) for f in request.files.getlist("attachments")[:MAX_ATTACHMENTS]
                   if f.filename]
    return ClaimDraft(customer_id=customer_id, complainant=request.form.get("complainant", ""),
                      essence=request.form.get("essence", ""), reason=request.form.get("reason", ""),
                      attachments=attachments)


# -- self-service (C5) --------------------------------------------------------------------


HONEYPOT = "website"  # hidden from people by CSS; bots fill every field


@bp.route("/claim", methods=["GET", "POST"])
def self_service():
    """A customer files a claim without a staff login. They identify themselves by an
    e-mail, phone or tax id the company has on file."""
    if request.method == "GET":
        return render_template("claim_form.html", values={}, errors={}, reasons=CLAIM_REASONS)
    values = request.form.to_dict()
    if values.get(HONEYPOT):
        # Answer as if accepted, so a bot learns nothing; nothing is stored.
        return render_template("claim_done.html", number=None)
    errors = {}
    identity = values.get("identity", "").strip()
    if not identity:
        errors["identity"] = _("Enter the e-mail, phone or tax id (INN) we know you by.")
    customers = crm().search_customers(identity, limit=2) if identity else []
    exact = [c for c in customers if _identifies(c, identity)]
    if identity and len(exact) != 1:
        errors["identity"] = _("We could not find a customer with these details. Check them, or call us.")
    if not errors:
        try:
            claim = crm().register_claim(_claim_draft(exact[0].id), None)
        except InvalidData as invalid:
            errors = local_errors(invalid.errors)
        else:
            return render_template("claim_done.html", number=claim.number)
    return render_template("claim_form.html", values=values, errors=errors, reasons=CLAIM_REASONS), 422


def _too_many_claims(_limit) -> Response:
    return make_response(render_template(
        "claim_form.html", values=request.form.to_dict(), reasons=CLAIM_REASONS,
        errors={"form": _("Too many claims from your address; please try again in an hour or call us.")}), 429)


def _identifies(customer, identity: str) -> bool:
    """Only an exact e-mail, phone or INN identifies: a part of a name is not proof. The
    customer's own values are stored normalised (processes.customers.check_draft)."""
    for normalise, known in ((normal_email, customer.emails), (normal_phone, customer.phones),
                             (normal_inn, [customer.inn] if customer.inn else [])):
        try:
            if normalise(identity) in known:
                return True
        except ValueError:
            continue
    return False
